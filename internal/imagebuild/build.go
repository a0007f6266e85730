package imagebuild

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Source is the org.opencontainers.image.source label of every image.
const Source = "https://github.com/shardkeeper/shardkeeper"

// Options say which images to build, for which architecture, and under which names.
type Options struct {
	// RepositoryPrefix and Tag name the images: <RepositoryPrefix>/<Image.Name>:<Tag>.
	RepositoryPrefix string
	Tag              string
	// Version is stamped into main.version and the org.opencontainers.image.version label.
	Version string
	// GOARCH is the target architecture; the OS is always linux. Empty means the host's.
	GOARCH string
	// OutDir receives <Image.Name>.tar for each image.
	OutDir string
	// Only restricts the build to these image names; empty builds every image.
	Only []string
	// CABundle is the host file copied into the base layer; empty means the Debian path.
	CABundle string
	// Created is every timestamp in the images: file times, history and the config's
	// created time. Fixed, so that rebuilding gives the same digest.
	Created time.Time
	// ModuleDir is the module root that go build runs in; empty asks `go env GOMOD`.
	ModuleDir string
	// Images is the table to pick from; nil means Images.
	Images []Image
	// DebCache keeps the Debian packages downloaded for images of Debian packages, across
	// builds; empty means DefaultDebCache().
	DebCache string
}

// Result is one image written by Build.
type Result struct {
	Image  Image
	Ref    name.Tag
	Path   string
	Digest v1.Hash
	// Size is the tarball's size in bytes.
	Size int64
}

// goarchs are the architectures an image can be built for: GOARCH and the OCI
// architecture are spelled alike and need no variant.
var goarchs = []string{"amd64", "arm64", "ppc64le", "riscv64", "s390x"}

// Build compiles the selected images' binaries and writes one docker-archive tarball per
// image into o.OutDir.
func Build(ctx context.Context, o Options) ([]Result, error) {
	o = o.withDefaults()
	selected, err := o.selectImages()
	if err != nil {
		return nil, err
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	refs := make([]name.Tag, len(selected))
	for i, img := range selected {
		if refs[i], err = o.ref(img); err != nil {
			return nil, err
		}
	}
	// The CA bundle first: a host without one should learn it before minutes of compiling.
	caBundle, err := os.ReadFile(o.CABundle)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no CA bundle at %s: install the Debian package ca-certificates (apt-get install ca-certificates) or pass another bundle", o.CABundle)
	}
	if err != nil {
		return nil, fmt.Errorf("reading the CA bundle: %w", err)
	}
	base, err := baseLayer(caBundle, o.Created)
	if err != nil {
		return nil, fmt.Errorf("base layer: %w", err)
	}
	if o.ModuleDir == "" {
		if o.ModuleDir, err = moduleDir(ctx); err != nil {
			return nil, err
		}
	}
	binDir, err := os.MkdirTemp("", "shardkeeper-images-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(binDir)
	if err := os.MkdirAll(o.OutDir, 0o755); err != nil {
		return nil, err
	}

	results := make([]Result, 0, len(selected))
	layers := layerCache{}
	for i, img := range selected {
		var image v1.Image
		if img.Package != "" {
			binPath := filepath.Join(binDir, img.Name)
			if err := o.goBuild(ctx, img.Package, binPath); err != nil {
				return nil, fmt.Errorf("image %s: %w", img.Name, err)
			}
			image, err = o.assemble(img, base, binPath)
		} else {
			image, err = o.assembleDebian(ctx, img, base, layers)
		}
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", img.Name, err)
		}
		res := Result{Image: img, Ref: refs[i], Path: filepath.Join(o.OutDir, img.Name+".tar")}
		if res.Digest, err = image.Digest(); err != nil {
			return nil, fmt.Errorf("image %s: %w", img.Name, err)
		}
		if res.Size, err = writeTarball(res.Path, res.Ref, image); err != nil {
			return nil, fmt.Errorf("image %s: %w", img.Name, err)
		}
		results = append(results, res)
	}
	return results, nil
}

func (o Options) withDefaults() Options {
	if o.GOARCH == "" {
		o.GOARCH = runtime.GOARCH
	}
	if o.CABundle == "" {
		o.CABundle = CABundlePath
	}
	if o.Images == nil {
		o.Images = Images
	}
	if o.DebCache == "" {
		o.DebCache = DefaultDebCache()
	}
	if o.Created.IsZero() {
		o.Created = time.Unix(0, 0)
	}
	// Tar headers and the config hold whole seconds in UTC; anything finer would
	// make the digest depend on the caller's clock or time zone.
	o.Created = o.Created.UTC().Truncate(time.Second)
	return o
}

func (o Options) validate() error {
	switch {
	case o.OutDir == "":
		return errors.New("no output directory")
	case o.Tag == "":
		// name.NewTag would quietly make it "latest".
		return errors.New("no tag")
	case !slices.Contains(goarchs, o.GOARCH):
		return fmt.Errorf("GOARCH %q: images can be built for %s", o.GOARCH, strings.Join(goarchs, ", "))
	case o.Version == "" || strings.ContainsAny(o.Version, " \t\n'\""):
		// It goes into -ldflags, which splits on spaces and quotes.
		return fmt.Errorf("version %q must be non-empty and hold no spaces or quotes", o.Version)
	}
	for _, img := range o.Images {
		switch {
		case (img.Package == "") == (len(img.Debian) == 0):
			return fmt.Errorf("image %s: give it a Go package or Debian packages, one of the two", img.Name)
		case img.App != "" && len(img.Debian) == 0:
			return fmt.Errorf("image %s: an App directory goes on an image of Debian packages", img.Name)
		case !path.IsAbs(img.Entrypoint):
			return fmt.Errorf("image %s: entrypoint %q is not an absolute path", img.Name, img.Entrypoint)
		}
	}
	return nil
}

// selectImages returns the images named in o.Only, in table order.
func (o Options) selectImages() ([]Image, error) {
	if len(o.Only) == 0 {
		return o.Images, nil
	}
	known := make([]string, len(o.Images))
	for i, img := range o.Images {
		known[i] = img.Name
	}
	for _, n := range o.Only {
		if !slices.Contains(known, n) {
			return nil, fmt.Errorf("no image named %q; the images are %s", n, strings.Join(known, ", "))
		}
	}
	var out []Image
	for _, img := range o.Images {
		if slices.Contains(o.Only, img.Name) {
			out = append(out, img)
		}
	}
	return out, nil
}

func (o Options) ref(img Image) (name.Tag, error) {
	s := strings.TrimSuffix(o.RepositoryPrefix, "/") + "/" + img.Name + ":" + o.Tag
	ref, err := name.NewTag(s)
	if err != nil {
		return name.Tag{}, fmt.Errorf("image name %q: %w", s, err)
	}
	return ref, nil
}

// goBuild builds pkg as the Dockerfile does: static, no paths, build IDs or VCS stamps.
func (o Options) goBuild(ctx context.Context, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath",
		"-ldflags", "-s -w -buildid= -X main.version="+o.Version,
		"-o", out, pkg)
	cmd.Dir = o.ModuleDir
	// Later entries win: the caller's GOFLAGS or CGO_ENABLED must not leak into the binary.
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+o.GOARCH, "GOFLAGS=-buildvcs=false")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, stderr.Bytes())
	}
	return nil
}

// assemble puts the base layer and the binary layer under a config that runs the binary
// as the nonroot user.
func (o Options) assemble(img Image, base v1.Layer, binPath string) (v1.Image, error) {
	binary, err := os.ReadFile(binPath)
	if err != nil {
		return nil, err
	}
	binLayer, err := binaryLayer(img.Entrypoint, binary, o.Created)
	if err != nil {
		return nil, err
	}
	return o.image(img, "/",
		layerAt{base, "imagebuild: base (nonroot user, /tmp, CA certificates)"},
		layerAt{binLayer, "imagebuild: go build " + img.Package})
}

// layerCache holds the layers of one Build that several images share (a runtime's
// packages under both the runtime and its example bot), built once.
type layerCache map[string]layerAt

func (c layerCache) get(key string, build func() (layerAt, error)) (layerAt, error) {
	if l, ok := c[key]; ok {
		return l, nil
	}
	l, err := build()
	if err == nil {
		c[key] = l
	}
	return l, err
}

// assembleDebian puts the base layer, the Debian packages and the App directory (if any)
// under a config that runs the entrypoint as the nonroot user in AppDir.
func (o Options) assembleDebian(ctx context.Context, img Image, base v1.Layer, cache layerCache) (v1.Image, error) {
	pkgs, err := cache.get("debian:"+strings.Join(img.Debian, " "), func() (layerAt, error) {
		layer, closure, err := o.debianLayer(ctx, img.Debian, o.Created)
		if err != nil {
			return layerAt{}, err
		}
		return layerAt{layer, fmt.Sprintf("imagebuild: Debian packages %s (%d with their dependencies)", strings.Join(img.Debian, " "), len(closure))}, nil
	})
	if err != nil {
		return nil, err
	}
	layers := []layerAt{{base, "imagebuild: base (nonroot user, /tmp, CA certificates)"}, pkgs}
	if img.App != "" {
		app, err := o.appLayer(ctx, img.App, o.Created)
		if err != nil {
			return nil, err
		}
		layers = append(layers, layerAt{app, "imagebuild: " + img.App + " in " + AppDir})
	}
	return o.image(img, AppDir, layers...)
}

// layerAt is a layer and the history line that says what made it.
type layerAt struct {
	layer     v1.Layer
	createdBy string
}

// image is the config every image shares (nonroot user, labels, PATH and CA bundle), the
// image's entrypoint and environment, and its layers.
func (o Options) image(img Image, workingDir string, layers ...layerAt) (v1.Image, error) {
	created := v1.Time{Time: o.Created}
	cfg := &v1.ConfigFile{
		Architecture: o.GOARCH,
		OS:           "linux",
		Created:      created,
		Config: v1.Config{
			User:       fmt.Sprintf("%d:%d", nonrootUID, nonrootGID),
			Entrypoint: []string{img.Entrypoint},
			Cmd:        img.Args,
			WorkingDir: workingDir,
			Env: append([]string{
				"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
				"SSL_CERT_FILE=" + CABundlePath,
			}, img.Env...),
			Labels: map[string]string{
				"org.opencontainers.image.source":  Source,
				"org.opencontainers.image.version": o.Version,
				"org.opencontainers.image.title":   "shardkeeper-" + img.Name,
			},
		},
		RootFS: v1.RootFS{Type: "layers"},
	}
	image, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		return nil, err
	}
	adds := make([]mutate.Addendum, len(layers))
	for i, l := range layers {
		adds[i] = mutate.Addendum{Layer: l.layer, History: v1.History{Created: created, CreatedBy: l.createdBy}}
	}
	return mutate.Append(image, adds...)
}

// DefaultDebCache is where downloaded Debian packages are kept: SHARDKEEPER_CACHE/debs,
// else ~/.cache/shardkeeper/debs, beside the cluster's other cached components.
func DefaultDebCache() string {
	if root := os.Getenv("SHARDKEEPER_CACHE"); root != "" {
		return filepath.Join(root, "debs")
	}
	if cache, err := os.UserCacheDir(); err == nil {
		return filepath.Join(cache, "shardkeeper", "debs")
	}
	return filepath.Join(os.TempDir(), "shardkeeper-debs")
}

// writeTarball writes the docker archive next to its final path and renames it, so an
// interrupted build never leaves a truncated tarball to import.
func writeTarball(path string, ref name.Tag, image v1.Image) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	if err := tarball.Write(ref, image, tmp); err != nil {
		tmp.Close()
		return 0, fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return 0, err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, err
	}
	info, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return info.Size(), nil
}

// moduleDir finds the root of the module the caller runs in, where the image table's
// package paths start.
func moduleDir(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside a Go module: run from the Shardkeeper checkout")
	}
	return filepath.Dir(gomod), nil
}
