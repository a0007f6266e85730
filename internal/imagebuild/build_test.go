package imagebuild_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/shardkeeper/shardkeeper/internal/imagebuild"
)

const testVersion = "v0.0.0-imagetest"

// fakeCABundle stands in for the host's bundle, so the test can tell it was copied as is.
const fakeCABundle = "-----BEGIN CERTIFICATE-----\nshardkeeper test bundle\n-----END CERTIFICATE-----\n"

// helpMentions is, per image, what the binary's --help must print: proof that the
// entrypoint runs, and for the operator that -X main.version reached it.
var helpMentions = map[string][]string{
	"operator": {"Usage of", "-default-bot-image", "ghcr.io/shardkeeper/bot:" + testVersion,
		"-gateway-proxy-image", "ghcr.io/shardkeeper/gateway-proxy:" + testVersion},
	"bot":              {"Usage of bot", "-token-file"},
	"gateway-proxy":    {"Usage of gateway-proxy", "-client-token-file", "-listen"},
	"discord-emulator": {"Usage of discord-emulator", "-control-listen"},
	"pause":            {"Usage of pause"},
	"clustercheck":     {"Usage of clustercheck"},
}

var elfMachines = map[string]elf.Machine{
	"amd64":   elf.EM_X86_64,
	"arm64":   elf.EM_AARCH64,
	"ppc64le": elf.EM_PPC64,
	"riscv64": elf.EM_RISCV,
	"s390x":   elf.EM_S390,
}

func testOptions(t *testing.T) imagebuild.Options {
	t.Helper()
	bundle := filepath.Join(t.TempDir(), "ca-certificates.crt")
	if err := os.WriteFile(bundle, []byte(fakeCABundle), 0o644); err != nil {
		t.Fatal(err)
	}
	return imagebuild.Options{
		RepositoryPrefix: "registry.test/shardkeeper",
		Tag:              "imagetest",
		Version:          testVersion,
		OutDir:           t.TempDir(),
		CABundle:         bundle,
	}
}

func TestBuildRefusesBadOptionsBeforeCompiling(t *testing.T) {
	tests := map[string]struct {
		change  func(*imagebuild.Options)
		wantErr []string
	}{
		"no CA bundle on the host": {
			change:  func(o *imagebuild.Options) { o.CABundle = "/nonexistent/ca-certificates.crt" },
			wantErr: []string{"/nonexistent/ca-certificates.crt", "Debian package ca-certificates"},
		},
		"unknown image": {
			change:  func(o *imagebuild.Options) { o.Only = []string{"bot", "discord"} },
			wantErr: []string{`"discord"`, "operator, bot"},
		},
		"architecture without an image platform": {
			change:  func(o *imagebuild.Options) { o.GOARCH = "mips" },
			wantErr: []string{`"mips"`, "amd64"},
		},
		"version that would split -ldflags": {
			change:  func(o *imagebuild.Options) { o.Version = "1.0 beta" },
			wantErr: []string{`"1.0 beta"`},
		},
		"no tag": {
			change:  func(o *imagebuild.Options) { o.Tag = "" },
			wantErr: []string{"no tag"},
		},
		"image with both a Go package and Debian packages": {
			change: func(o *imagebuild.Options) {
				o.Images = []imagebuild.Image{{Name: "both", Package: "./cmd/bot", Entrypoint: "/bot", Debian: []string{"python3"}}}
			},
			wantErr: []string{"image both", "one of the two"},
		},
		"app directory on a Go image": {
			change: func(o *imagebuild.Options) {
				o.Images = []imagebuild.Image{{Name: "goapp", Debian: nil, Package: "./cmd/bot", Entrypoint: "/bot", App: "examples/python-bot"}}
			},
			wantErr: []string{"image goapp", "App directory"},
		},
		"Debian packages for another architecture": {
			change: func(o *imagebuild.Options) {
				o.GOARCH = map[string]string{"amd64": "arm64"}[runtime.GOARCH]
				if o.GOARCH == "" {
					o.GOARCH = "amd64"
				}
				o.Only = []string{"python-runtime"}
			},
			wantErr: []string{"python-runtime", "this host's architecture"},
		},
		"tag that is not a tag": {
			change:  func(o *imagebuild.Options) { o.Tag = "not a tag" },
			wantErr: []string{"registry.test/shardkeeper/operator:not a tag"},
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			o := testOptions(t)
			// A module dir that cannot build: reaching go build would fail differently.
			o.ModuleDir = t.TempDir()
			tt.change(&o)
			_, err := imagebuild.Build(context.Background(), o)
			if err == nil {
				t.Fatal("Build succeeded, want an error")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			if tarballs, _ := filepath.Glob(filepath.Join(o.OutDir, "*.tar")); len(tarballs) > 0 {
				t.Errorf("wrote %v despite the error", tarballs)
			}
		})
	}
}

// TestImages builds every image once, checks what a cluster would run from each tarball,
// then rebuilds to check the digests do not change.
func TestImages(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the operator and the bot")
	}
	o := testOptions(t)
	var wantNames []string
	for _, img := range imagebuild.GoImages() {
		wantNames = append(wantNames, img.Name)
	}
	o.Only = wantNames // TestDebianImages builds the others
	results, err := imagebuild.Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range results {
		names = append(names, r.Image.Name)
	}
	if !slices.Equal(names, wantNames) {
		t.Fatalf("built %v, want every Go image: %v", names, wantNames)
	}

	for _, r := range results {
		t.Run(r.Image.Name, func(t *testing.T) {
			checkImage(t, o, r)
		})
	}

	t.Run("rebuilding gives the same digests and bytes", func(t *testing.T) {
		checkRebuild(t, o, results)
	})

	t.Run("the created time is the one given", func(t *testing.T) {
		later := o
		later.OutDir = t.TempDir()
		later.Only = []string{"bot"}
		later.Created = time.Unix(1700000000, 0)
		rebuilt, err := imagebuild.Build(context.Background(), later)
		if err != nil {
			t.Fatal(err)
		}
		if len(rebuilt) != 1 || rebuilt[0].Image.Name != "bot" {
			t.Fatalf("built %+v, want only the bot", rebuilt)
		}
		first := results[slices.IndexFunc(results, func(r imagebuild.Result) bool { return r.Image.Name == "bot" })]
		if rebuilt[0].Digest == first.Digest {
			t.Errorf("digest %s did not change with the created time", first.Digest)
		}
		cf := loadImage(t, rebuilt[0]).configFile
		if !cf.Created.Time.Equal(later.Created) {
			t.Errorf("created %s, want %s", cf.Created.Time, later.Created)
		}
	})
}

type loaded struct {
	image      v1.Image
	configFile *v1.ConfigFile
}

// loadImage reads a tarball back as `docker load` would: by its manifest and repo tag.
func loadImage(t *testing.T, r imagebuild.Result) loaded {
	t.Helper()
	manifest, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(r.Path) })
	if err != nil {
		t.Fatal(err)
	}
	if len(manifest) != 1 || !slices.Equal(manifest[0].RepoTags, []string{r.Ref.String()}) {
		t.Fatalf("manifest.json: %+v, want one image tagged %s", manifest, r.Ref)
	}
	tag, err := name.NewTag(r.Ref.String())
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(r.Path, &tag)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	return loaded{image: img, configFile: cf}
}

func checkImage(t *testing.T, o imagebuild.Options, r imagebuild.Result) {
	wantRef := "registry.test/shardkeeper/" + r.Image.Name + ":imagetest"
	if r.Ref.String() != wantRef {
		t.Errorf("ref %s, want %s", r.Ref, wantRef)
	}
	if want := filepath.Join(o.OutDir, r.Image.Name+".tar"); r.Path != want {
		t.Errorf("path %s, want %s", r.Path, want)
	}
	img := loadImage(t, r)
	if d, err := img.image.Digest(); err != nil || d != r.Digest {
		t.Errorf("digest read back %s (%v), Build reported %s", d, err, r.Digest)
	}
	cfg := img.configFile.Config

	if img.configFile.OS != "linux" || img.configFile.Architecture != runtime.GOARCH {
		t.Errorf("platform %s/%s, want linux/%s", img.configFile.OS, img.configFile.Architecture, runtime.GOARCH)
	}
	if !slices.Equal(cfg.Entrypoint, []string{r.Image.Entrypoint}) {
		t.Errorf("entrypoint %q, want [%q]", cfg.Entrypoint, r.Image.Entrypoint)
	}
	if cfg.WorkingDir != "/" {
		t.Errorf("working dir %q, want /", cfg.WorkingDir)
	}
	for label, want := range map[string]string{
		"org.opencontainers.image.source":  imagebuild.Source,
		"org.opencontainers.image.version": testVersion,
		"org.opencontainers.image.title":   "shardkeeper-" + r.Image.Name,
	} {
		if got := cfg.Labels[label]; got != want {
			t.Errorf("label %s = %q, want %q", label, got, want)
		}
	}
	if !slices.ContainsFunc(cfg.Env, func(e string) bool { return strings.HasPrefix(e, "PATH=/") }) {
		t.Errorf("env %q has no PATH", cfg.Env)
	}

	uid, gid := numericUser(t, cfg.User)
	if uid == 0 {
		t.Fatalf("user %q is root", cfg.User)
	}
	files := extract(t, img.image)

	user := passwdEntry(t, files["etc/passwd"].contents, uid)
	if user[0] == "root" || user[3] != strconv.Itoa(gid) {
		t.Errorf("/etc/passwd maps uid %d to %q, want a non-root user with gid %d", uid, user, gid)
	}
	if !strings.Contains(string(files["etc/group"].contents), ":"+strconv.Itoa(gid)+":") {
		t.Errorf("/etc/group has no group %d", gid)
	}
	home := files[strings.TrimPrefix(user[5], "/")]
	if home == nil || home.hdr.Typeflag != tar.TypeDir || home.hdr.Uid != uid {
		t.Errorf("home %s of uid %d is missing or not owned by it", user[5], uid)
	}
	tmp := files["tmp"]
	if tmp == nil || tmp.hdr.Typeflag != tar.TypeDir || tmp.hdr.Mode&0o7777 != 0o1777 {
		t.Errorf("/tmp is missing or not mode 1777")
	}
	ca := files[strings.TrimPrefix(imagebuild.CABundlePath, "/")]
	if ca == nil || string(ca.contents) != fakeCABundle {
		t.Errorf("%s is missing or not the given CA bundle", imagebuild.CABundlePath)
	}

	bin := files[strings.TrimPrefix(r.Image.Entrypoint, "/")]
	if bin == nil || bin.hdr.Typeflag != tar.TypeReg {
		t.Fatalf("entrypoint %s is not a file in the image", r.Image.Entrypoint)
	}
	if bin.hdr.Mode&0o111 != 0o111 {
		t.Errorf("entrypoint mode %o is not executable by everyone", bin.hdr.Mode)
	}
	if bin.hdr.Uid == uid || bin.hdr.Mode&0o022 != 0 {
		t.Errorf("entrypoint (uid %d, mode %o) is writable by the user it runs as", bin.hdr.Uid, bin.hdr.Mode)
	}
	checkStaticELF(t, bin.contents)
	checkHelp(t, r.Image.Name, bin.contents)
}

// checkStaticELF fails unless binary is a linux executable for the host architecture that
// needs no dynamic loader: a scratch image has none.
func checkStaticELF(t *testing.T, binary []byte) {
	t.Helper()
	f, err := elf.NewFile(bytes.NewReader(binary))
	if err != nil {
		t.Fatalf("entrypoint is not ELF: %v", err)
	}
	defer f.Close()
	if want, ok := elfMachines[runtime.GOARCH]; !ok || f.Machine != want {
		t.Errorf("ELF machine %s, want the one for %s", f.Machine, runtime.GOARCH)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("ELF has a %s program header: not static", p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("ELF needs shared libraries %v", libs)
	}
}

// checkHelp runs the extracted binary: both commands parse flags with the flag package,
// which prints the usage to stderr and exits 0 on --help.
func checkHelp(t *testing.T, image string, binary []byte) {
	t.Helper()
	want, ok := helpMentions[image]
	if !ok {
		t.Fatalf("no expected --help output for image %s: add it to helpMentions", image)
	}
	path := filepath.Join(t.TempDir(), image)
	if err := os.WriteFile(path, binary, 0o755); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(path, "--help")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s --help: %v\n%s", image, err, stderr.String())
	}
	for _, w := range want {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("%s --help does not print %q:\n%s", image, w, stderr.String())
		}
	}
}

func numericUser(t *testing.T, user string) (uid, gid int) {
	t.Helper()
	u, g, ok := strings.Cut(user, ":")
	uid, errU := strconv.Atoi(u)
	gid, errG := strconv.Atoi(g)
	if !ok || errU != nil || errG != nil {
		t.Fatalf("user %q is not numeric uid:gid (a name cannot be checked against runAsNonRoot)", user)
	}
	return uid, gid
}

// passwdEntry returns the fields of uid's line in an /etc/passwd.
func passwdEntry(t *testing.T, passwd []byte, uid int) []string {
	t.Helper()
	for line := range strings.Lines(string(passwd)) {
		fields := strings.Split(strings.TrimSpace(line), ":")
		if len(fields) == 7 && fields[2] == strconv.Itoa(uid) {
			return fields
		}
	}
	t.Fatalf("/etc/passwd has no user with uid %d:\n%s", uid, passwd)
	return nil
}

type file struct {
	hdr      *tar.Header
	contents []byte
}

// extract reads the image's flattened filesystem, keyed by path without a leading slash
// or a trailing one on directories.
func extract(t *testing.T, img v1.Image) map[string]*file {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]*file{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		contents, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.Trim(hdr.Name, "/")] = &file{hdr: hdr, contents: contents}
	}
}

func fileSHA256(t *testing.T, path string) [sha256.Size]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestDebianImages builds the runtimes and example bots of Debian packages and runs each
// interpreter in the image's own filesystem (chroot: root only): the packages must be
// complete without any maintainer script having run.
func TestDebianImages(t *testing.T) {
	if testing.Short() {
		t.Skip("downloads Debian packages and npm packages")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		t.Skip("images of Debian packages need apt-get")
	}
	o := testOptions(t)
	o.Only = []string{"python-runtime", "node-runtime", "python-bot", "node-bot"}
	results, err := imagebuild.Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	runs := map[string][]string{
		"python-runtime": {"/usr/bin/python3", "-c", "import discord, aiohttp, ssl; print('discord.py', discord.__version__)"},
		"node-runtime":   {"/usr/bin/node", "-e", "console.log('node', process.version)"},
		// The bots themselves, as the image runs them: every import loads, then they stop
		// (exit 2) for want of the settings a pod gives them.
		"python-bot": {"/usr/bin/python3", "/app/bot.py"},
		"node-bot":   {"/usr/bin/node", "/app/bot.js"},
	}
	wants := map[string]string{"python-runtime": "discord.py 2.", "node-runtime": "node v", "python-bot": "DISCORD_GATEWAY_URL", "node-bot": "DISCORD_GATEWAY_URL"}
	wantCodes := map[string]int{"python-bot": 2, "node-bot": 2}
	for _, r := range results {
		t.Run(r.Image.Name, func(t *testing.T) {
			img := loadImage(t, r)
			cfg := img.configFile.Config
			if uid, _ := numericUser(t, cfg.User); uid == 0 {
				t.Errorf("user %q is root", cfg.User)
			}
			if want := append([]string{r.Image.Entrypoint}, r.Image.Args...); !slices.Equal(append(cfg.Entrypoint, cfg.Cmd...), want) {
				t.Errorf("entrypoint %q cmd %q, want %q", cfg.Entrypoint, cfg.Cmd, want)
			}
			if cfg.WorkingDir != imagebuild.AppDir {
				t.Errorf("working dir %q, want %s", cfg.WorkingDir, imagebuild.AppDir)
			}
			files := extract(t, img.image)
			if _, ok := files["var/lib/dpkg/status.d/libc6"]; !ok {
				t.Errorf("no /var/lib/dpkg/status.d/libc6: scanners cannot tell the versions inside")
			}
			for p, f := range files {
				if f.hdr.Mode&0o6000 != 0 {
					t.Errorf("%s has mode %o: setuid or setgid", p, f.hdr.Mode)
				}
				// Only /tmp and the nonroot user's home are the user's to write.
				writable := f.hdr.Mode&0o002 != 0 && f.hdr.Typeflag != tar.TypeSymlink
				if p != "tmp" && p != "home/nonroot" && (writable || f.hdr.Uid != 0) {
					t.Errorf("%s (uid %d, mode %o) is writable by others than root", p, f.hdr.Uid, f.hdr.Mode)
				}
				if strings.HasPrefix(p, "app/") && f.hdr.Mode&0o022 != 0 && f.hdr.Typeflag != tar.TypeSymlink {
					t.Errorf("%s (mode %o) is group-writable in /app", p, f.hdr.Mode)
				}
			}
			if os.Geteuid() != 0 {
				t.Skip("running the interpreter in the image's filesystem needs chroot (root)")
			}
			root := t.TempDir()
			writeTree(t, root, files)
			cmd := exec.Command("chroot", append([]string{"--userspec=65532:65532", root}, runs[r.Image.Name]...)...)
			cmd.Env = append(cfg.Env, "HOME=/home/nonroot")
			cmd.Dir = root // chroot(8) changes to / inside; the image's working directory is /app
			out, err := cmd.CombinedOutput()
			code := 0
			if exit := (*exec.ExitError)(nil); errors.As(err, &exit) {
				code, err = exit.ExitCode(), nil
			}
			if err != nil || code != wantCodes[r.Image.Name] || !strings.Contains(string(out), wants[r.Image.Name]) {
				t.Fatalf("%q in the image: exit %d (want %d), %v\n%s", runs[r.Image.Name], code, wantCodes[r.Image.Name], err, out)
			}
			t.Logf("%s: %s (%.1f MB)", r.Image.Name, strings.TrimSpace(string(out)), float64(r.Size)/1e6)
		})
	}

	t.Run("rebuilding gives the same digests and bytes", func(t *testing.T) {
		checkRebuild(t, o, results)
	})

	t.Run("a damaged package in the cache is fetched again", func(t *testing.T) {
		debs, _ := filepath.Glob(filepath.Join(imagebuild.DefaultDebCache(), "python3-discord_*.deb"))
		if len(debs) != 1 {
			t.Fatalf("cached python3-discord packages: %v, want one", debs)
		}
		if err := os.WriteFile(debs[0], []byte("not a Debian package"), 0o644); err != nil {
			t.Fatal(err)
		}
		again := o
		again.Only = []string{"python-runtime"}
		checkRebuild(t, again, results[:1])
	})
}

// checkRebuild builds o's images again and fails unless each has the digest and the
// tarball bytes of the first build.
func checkRebuild(t *testing.T, o imagebuild.Options, first []imagebuild.Result) {
	t.Helper()
	o.OutDir = t.TempDir()
	rebuilt, err := imagebuild.Build(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rebuilt {
		if r.Digest != first[i].Digest {
			t.Errorf("%s: digest %s, first build %s", r.Image.Name, r.Digest, first[i].Digest)
		}
		if a, b := fileSHA256(t, first[i].Path), fileSHA256(t, r.Path); a != b {
			t.Errorf("%s: tarball sha256 %x, first build %x", r.Image.Name, b, a)
		}
	}
}

// writeTree writes an image's flattened filesystem under root.
func writeTree(t *testing.T, root string, files map[string]*file) {
	t.Helper()
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		f, dst := files[p], filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch f.hdr.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(dst, os.FileMode(f.hdr.Mode&0o777)|0o700)
			if err == nil {
				err = os.Chmod(dst, os.FileMode(f.hdr.Mode&0o777))
			}
		case tar.TypeSymlink:
			err = os.Symlink(f.hdr.Linkname, dst)
		default:
			err = os.WriteFile(dst, f.contents, os.FileMode(f.hdr.Mode&0o777))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
