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
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// AppDir is where an image's App directory goes, and its working directory.
const AppDir = "/app"

func hostGOARCH() string { return runtime.GOARCH }

// appLayer copies the files git tracks in the module's directory dir to AppDir, owned by
// root and read-only to the user the image runs as: only what is committed, never what a
// developer's run or a token file left beside it. A directory with a package-lock.json gets
// its production dependencies installed exactly as the lock file says (npm ci), with no
// install scripts: they would build native code for the host's Node, not the image's.
func (o Options) appLayer(ctx context.Context, dir string, modTime time.Time) (v1.Layer, error) {
	src := filepath.Join(o.ModuleDir, dir)
	if info, err := os.Stat(src); err != nil {
		return nil, fmt.Errorf("app directory: %w", err)
	} else if !info.IsDir() {
		return nil, fmt.Errorf("app directory %s is a file, not a directory", src)
	}
	files, err := trackedFiles(ctx, o.ModuleDir, dir)
	if err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp("", "shardkeeper-app-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	for _, rel := range files {
		info, err := os.Lstat(filepath.Join(src, rel))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(dir, rel), err)
		}
		if !info.Mode().IsRegular() {
			return nil, fmt.Errorf("%s is not a regular file: an app directory holds files and directories only", filepath.Join(dir, rel))
		}
		contents, err := os.ReadFile(filepath.Join(src, rel))
		if err != nil {
			return nil, err
		}
		dst := filepath.Join(work, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(dst, contents, info.Mode().Perm()|0o600); err != nil {
			return nil, err
		}
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
		case info.Mode()&fs.ModeSymlink != 0: // npm's node_modules/.bin links
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

// trackedFiles lists the files git tracks under dir, relative to it.
func trackedFiles(ctx context.Context, moduleDir, dir string) ([]string, error) {
	cmd := exec.CommandContext(ctx, "git", "-C", moduleDir, "ls-files", "-z", "--", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("listing the files git tracks in %s (an image holds only those; build from a git checkout): %w\n%s", dir, err, bytes.TrimSpace(stderr.Bytes()))
	}
	var files []string
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		rel, err := filepath.Rel(dir, filepath.FromSlash(f))
		if f == "" || err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		files = append(files, rel)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("git tracks no file in %s: commit the app's files (git add) before building its image", dir)
	}
	return files, nil
}

func npmCI(ctx context.Context, dir string) error {
	if _, err := exec.LookPath("npm"); err != nil {
		return fmt.Errorf("installing the lock file's packages needs npm (make image-deps, or apt-get install npm): %w", err)
	}
	cmd := exec.CommandContext(ctx, "npm", "ci", "--omit=dev", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm ci: %w\n%s", err, bytes.TrimSpace(out.Bytes()))
	}
	// npm's record of what it installed: Node never reads it, and its contents depend on
	// the npm version that ran, which would make the digest depend on the host.
	if err := os.Remove(filepath.Join(dir, "node_modules", ".package-lock.json")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
