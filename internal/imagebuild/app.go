package imagebuild

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// AppDir is where an image's App directory goes, and its working directory.
const AppDir = "/app"

func hostGOARCH() string { return runtime.GOARCH }

// skippedAppFile says which files of an App directory stay out of its image: what a
// developer's own run leaves there (installed node_modules, bytecode caches, the install
// stamp of hack/install-client-deps.sh). The image installs its own node_modules.
func skippedAppFile(rel string) bool {
	base := path.Base(rel)
	return rel == "node_modules" || base == "__pycache__" || strings.HasSuffix(base, ".pyc")
}

// appLayer copies the module's directory dir to AppDir, owned by root and read-only to
// the user the image runs as. A directory with a package-lock.json gets its production
// dependencies installed exactly as the lock file says (npm ci), with no install scripts:
// they would build native code for the host's Node, not the image's.
func (o Options) appLayer(ctx context.Context, dir string, modTime time.Time) (v1.Layer, error) {
	src := filepath.Join(o.ModuleDir, dir)
	if info, err := os.Stat(src); err != nil || !info.IsDir() {
		return nil, fmt.Errorf("app directory %s: not a directory (%v)", src, err)
	}
	work, err := os.MkdirTemp("", "shardkeeper-app-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	if err := os.CopyFS(work, appFS{os.DirFS(src)}); err != nil {
		return nil, fmt.Errorf("copying %s: %w", src, err)
	}
	if _, err := os.Stat(filepath.Join(work, "package-lock.json")); err == nil {
		if err := npmCI(ctx, work); err != nil {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
	}
	var entries []entry
	err = filepath.WalkDir(work, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == work {
			return err
		}
		rel, err := filepath.Rel(work, p)
		if err != nil {
			return err
		}
		e := entry{path: path.Join(AppDir, filepath.ToSlash(rel))}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			e.dir, e.mode = true, 0o755
		case info.Mode()&fs.ModeSymlink != 0:
			if e.symlink, err = os.Readlink(p); err != nil {
				return err
			}
			e.mode = 0o777
		case info.Mode().IsRegular():
			if e.contents, err = os.ReadFile(p); err != nil {
				return err
			}
			e.mode = 0o644
			if info.Mode()&0o111 != 0 {
				e.mode = 0o755
			}
		default:
			return fmt.Errorf("%s is not a file, directory or symlink", p)
		}
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return layerOf(modTime, entries...)
}

// appFS is an App directory without the files skippedAppFile names.
type appFS struct{ fs.FS }

func (a appFS) ReadDir(name string) ([]fs.DirEntry, error) {
	all, err := fs.ReadDir(a.FS, name)
	if err != nil {
		return nil, err
	}
	kept := all[:0]
	for _, d := range all {
		if !skippedAppFile(path.Join(name, d.Name())) {
			kept = append(kept, d)
		}
	}
	return kept, nil
}

func npmCI(ctx context.Context, dir string) error {
	if _, err := exec.LookPath("npm"); err != nil {
		return fmt.Errorf("installing the lock file's packages needs npm (apt-get install npm): %w", err)
	}
	cmd := exec.CommandContext(ctx, "npm", "ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm ci: %w\n%s", err, bytes.TrimSpace(out.Bytes()))
	}
	return nil
}
