package imagebuild

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Images of interpreted runtimes (Python, Node) are made of Debian packages: apt resolves
// the packages an empty system needs for the ones asked for, downloads them into a cache
// shared by builds, and their files are unpacked into one layer, as `dpkg --unpack` would
// place them but without running any maintainer script (nothing in the image needs one).
// The same .deb files always give the same layer: the host's apt sources decide the
// versions, and the layer records them where scanners look (/var/lib/dpkg/status.d).

// debianPackage is one package of the closure apt computed.
type debianPackage struct {
	name, version, arch string
}

// fileName is the name apt gives the package's file in its archives directory.
func (p debianPackage) fileName() string {
	return fmt.Sprintf("%s_%s_%s.deb", p.name, strings.ReplaceAll(p.version, ":", "%3a"), p.arch)
}

// debianArchs maps GOARCH to Debian's name for the same architecture.
var debianArchs = map[string]string{
	"amd64": "amd64", "arm64": "arm64", "ppc64le": "ppc64el", "riscv64": "riscv64", "s390x": "s390x",
}

// apt runs apt-get as a user of its own: an empty dpkg status (so it resolves every
// dependency, as for a new root filesystem), o.DebCache as the archive directory, and no
// locks, so that it neither needs nor disturbs the host's package state.
type apt struct {
	status  string // the empty status file
	archive string
}

// newApt prepares apt's private state and takes the package cache for this build: two
// builds at once (make images beside make test) wait for each other rather than write
// the same file.
func newApt(cacheDir string) (apt, func(), error) {
	for _, tool := range []string{"apt-get", "apt-cache", "dpkg-deb"} {
		if _, err := exec.LookPath(tool); err != nil {
			return apt{}, nil, fmt.Errorf("images of Debian packages need %s (a Debian or Ubuntu host): %w", tool, err)
		}
	}
	if err := os.MkdirAll(filepath.Join(cacheDir, "partial"), 0o755); err != nil {
		return apt{}, nil, fmt.Errorf("package cache: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(cacheDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return apt{}, nil, fmt.Errorf("package cache: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		return apt{}, nil, fmt.Errorf("locking the package cache %s: %w", cacheDir, err)
	}
	tmp, err := os.MkdirTemp("", "shardkeeper-apt-")
	if err != nil {
		lock.Close()
		return apt{}, nil, err
	}
	cleanup := func() { os.RemoveAll(tmp); lock.Close() } // closing releases the lock
	a := apt{status: filepath.Join(tmp, "status"), archive: cacheDir}
	if err := os.WriteFile(a.status, nil, 0o644); err != nil {
		cleanup()
		return apt{}, nil, err
	}
	return a, cleanup, nil
}

func (a apt) run(ctx context.Context, args ...string) ([]byte, error) {
	full := append([]string{
		"-o", "Dir::State::status=" + a.status,
		"-o", "Dir::Cache::archives=" + a.archive,
		"-o", "Debug::NoLocking=1",
		"-o", "APT::Install-Recommends=0",
		"-o", "APT::Install-Suggests=0",
		// Downloads land in a cache the build's user owns; apt's _apt sandbox user may
		// not be able to write there.
		"-o", "APT::Sandbox::User=" + currentUserName(),
	}, args...)
	cmd := exec.CommandContext(ctx, "apt-get", full...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.Bytes(), nil
}

func currentUserName() string {
	if os.Geteuid() == 0 {
		return "root"
	}
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

// instLine is how `apt-get -s install` names a package it would install:
// "Inst libc6 (2.36-9+deb12u14 Debian-Security:12.x/stable-security [amd64])".
var instLine = regexp.MustCompile(`^Inst (\S+) \((\S+) .*\[([a-z0-9]+)\]\)`)

// resolve returns the packages installing pkgs on an empty system takes, sorted by name.
func (a apt) resolve(ctx context.Context, arch string, pkgs []string) ([]debianPackage, error) {
	out, err := a.run(ctx, append([]string{"--simulate", "install"}, pkgs...)...)
	if err != nil {
		return nil, fmt.Errorf("%w\n(no package lists? run `apt-get update` once)", err)
	}
	var closure []debianPackage
	for line := range strings.Lines(string(out)) {
		m := instLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		if m[3] != arch && m[3] != "all" {
			return nil, fmt.Errorf("apt chose %s %s for architecture %s; the image is %s", m[1], m[2], m[3], arch)
		}
		closure = append(closure, debianPackage{name: m[1], version: m[2], arch: m[3]})
	}
	if len(closure) == 0 {
		return nil, fmt.Errorf("apt-get resolved no packages for %s:\n%s", strings.Join(pkgs, " "), out)
	}
	slices.SortFunc(closure, func(x, y debianPackage) int { return strings.Compare(x.name, y.name) })
	return closure, nil
}

// download fetches the closure's files that the cache lacks, exactly at the resolved
// versions, and checks every file, cached or new, against the SHA256 the repository's
// signed lists give it: a cached file that does not match is fetched again.
func (a apt) download(ctx context.Context, closure []debianPackage) error {
	want, err := a.sha256s(ctx, closure)
	if err != nil {
		return err
	}
	var missing []string
	for _, p := range closure {
		path := filepath.Join(a.archive, p.fileName())
		if fileSHA256(path) != want[p.fileName()] {
			_ = os.Remove(path)
			missing = append(missing, p.name+"="+p.version)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if _, err := a.run(ctx, append([]string{"--download-only", "--yes", "install"}, missing...)...); err != nil {
		return fmt.Errorf("%w\n(a 404 means the package lists name versions the mirror no longer has: run `apt-get update`)", err)
	}
	for _, p := range closure {
		if got := fileSHA256(filepath.Join(a.archive, p.fileName())); got != want[p.fileName()] {
			return fmt.Errorf("%s in %s: sha256 %q after apt-get's download, the package lists say %s", p.fileName(), a.archive, got, want[p.fileName()])
		}
	}
	return nil
}

// sha256s are the SHA256s the package lists give the closure's files, by file name, from
// one apt-cache call (each call reads the whole package cache).
func (a apt) sha256s(ctx context.Context, closure []debianPackage) (map[string]string, error) {
	args := []string{"show"}
	for _, p := range closure {
		args = append(args, p.name+"="+p.version)
	}
	out, err := exec.CommandContext(ctx, "apt-cache", args...).Output()
	if err != nil {
		return nil, fmt.Errorf("apt-cache show: %w", err)
	}
	sums := map[string]string{}
	for stanza := range strings.SplitSeq(string(out), "\n\n") {
		fields := map[string]string{}
		for line := range strings.Lines(stanza) {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), ": "); ok {
				fields[k] = v
			}
		}
		p := debianPackage{name: fields["Package"], version: fields["Version"], arch: fields["Architecture"]}
		if _, seen := sums[p.fileName()]; !seen && fields["SHA256"] != "" {
			sums[p.fileName()] = fields["SHA256"]
		}
	}
	for _, p := range closure {
		if sums[p.fileName()] == "" {
			return nil, fmt.Errorf("the package lists give %s %s (%s) no SHA256", p.name, p.version, p.arch)
		}
	}
	return sums, nil
}

// fileSHA256 is a file's SHA256 in hex, "" when it cannot be read.
func fileSHA256(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// dropped says whether a packaged path stays out of images: documentation nobody reads in
// a container, except each package's copyright file, which its license asks to keep.
func dropped(p string) bool {
	for _, prefix := range []string{"/usr/share/man/", "/usr/share/info/", "/usr/share/lintian/", "/usr/share/bug/"} {
		if strings.HasPrefix(p, prefix) {
			return true
		}
	}
	if rest, ok := strings.CutPrefix(p, "/usr/share/doc/"); ok {
		_, file, nested := strings.Cut(rest, "/")
		return nested && file != "copyright"
	}
	return false
}

// debianFiles unpacks a .deb's data into entries: owned by root, no setuid or setgid
// bits, hard links made copies of their target.
func debianFiles(ctx context.Context, deb string) ([]entry, error) {
	cmd := exec.CommandContext(ctx, "dpkg-deb", "--fsys-tarfile", deb)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var entries []entry
	byPath := map[string]int{}
	tr := tar.NewReader(stdout)
	var readErr error
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			readErr = err
			break
		}
		p := path.Clean("/" + hdr.Name)
		if p == "/" || dropped(p) {
			continue
		}
		e := entry{path: p, mode: hdr.Mode & 0o1777}
		switch hdr.Typeflag {
		case tar.TypeDir:
			e.dir = true
		case tar.TypeSymlink:
			e.symlink = hdr.Linkname
		case tar.TypeReg:
			if e.contents, err = io.ReadAll(tr); err != nil {
				readErr = err
			}
		case tar.TypeLink:
			i, ok := byPath[path.Clean("/"+hdr.Linkname)]
			if !ok {
				readErr = fmt.Errorf("hard link %s to %s, which comes later or not at all", p, hdr.Linkname)
				break
			}
			e.contents = entries[i].contents
			e.mode = entries[i].mode
		default:
			readErr = fmt.Errorf("%s: tar entry type %q is not a file, directory or link", p, hdr.Typeflag)
		}
		if readErr != nil {
			break
		}
		byPath[p] = len(entries)
		entries = append(entries, e)
	}
	// Drain, so that dpkg-deb is not killed by a closed pipe when we stopped early.
	_, _ = io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w\n%s", deb, err, stderr.Bytes())
	}
	if readErr != nil {
		return nil, fmt.Errorf("%s: %w", deb, readErr)
	}
	return entries, nil
}

// debianLayer is one layer holding the files of pkgs and every package they depend on,
// with each package's control record in /var/lib/dpkg/status.d/<name> (as distroless
// has them) so that image scanners see which versions are inside.
func (o Options) debianLayer(ctx context.Context, pkgs []string, modTime time.Time) (v1.Layer, []debianPackage, error) {
	arch, ok := debianArchs[o.GOARCH]
	if !ok || o.GOARCH != hostGOARCH() {
		return nil, nil, fmt.Errorf("images of Debian packages are built for this host's architecture (%s) only, not %s: build them on a %s host, or with the Dockerfile (docker buildx --platform), or leave them out (--only)", hostGOARCH(), o.GOARCH, o.GOARCH)
	}
	a, cleanup, err := newApt(o.DebCache)
	if err != nil {
		return nil, nil, err
	}
	defer cleanup()
	closure, err := a.resolve(ctx, arch, pkgs)
	if err != nil {
		return nil, nil, err
	}
	if err := a.download(ctx, closure); err != nil {
		return nil, nil, err
	}
	byPath := map[string]entry{}
	owner := map[string]string{}
	for _, p := range closure {
		deb := filepath.Join(a.archive, p.fileName())
		files, err := debianFiles(ctx, deb)
		if err != nil {
			return nil, nil, err
		}
		for _, e := range files {
			prev, seen := byPath[e.path]
			switch {
			case !seen:
			case prev.dir && e.dir:
				continue // directories many packages share
			case prev.symlink == e.symlink && bytes.Equal(prev.contents, e.contents) && prev.dir == e.dir:
				continue // the same file shipped twice
			default:
				return nil, nil, fmt.Errorf("%s is in both %s and %s, differently", e.path, owner[e.path], p.name)
			}
			byPath[e.path] = e
			owner[e.path] = p.name
		}
		control, err := exec.CommandContext(ctx, "dpkg-deb", "--field", deb).Output()
		if err != nil {
			return nil, nil, fmt.Errorf("dpkg-deb --field %s: %w", deb, err)
		}
		record := "/var/lib/dpkg/status.d/" + p.name
		byPath[record] = entry{path: record, mode: 0o644, contents: control}
	}
	entries := make([]entry, 0, len(byPath))
	for _, e := range byPath {
		entries = append(entries, e)
	}
	layer, err := layerOf(modTime, entries...)
	return layer, closure, err
}
