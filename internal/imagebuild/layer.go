package imagebuild

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The unprivileged user every image runs as, with distroless's ids.
const (
	nonrootUID  = 65532
	nonrootGID  = 65532
	nonrootHome = "/home/nonroot"
	// CABundlePath is where the base layer puts the CA bundle: where Go's crypto/x509
	// and OpenSSL look on Debian.
	CABundlePath = "/etc/ssl/certs/ca-certificates.crt"
)

const passwd = `root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
`

const group = `root:x:0:
nobody:x:65534:
nonroot:x:65532:
`

// entry is one file or directory of a layer. Owners and modes are explicit so that a
// layer never depends on the umask or the user that built it.
type entry struct {
	path     string // absolute, as seen in the container
	dir      bool
	mode     int64 // permission bits, plus the sticky bit for /tmp
	uid, gid int
	contents []byte
	// symlink, when set, makes the entry a symbolic link to it (Debian packages have many).
	symlink string
}

// baseLayer holds what distroless's static image gives a Go binary: users and groups
// with a nonroot user, a writable /tmp, that user's home, and CA certificates.
func baseLayer(caBundle []byte, modTime time.Time) (v1.Layer, error) {
	return layerOf(modTime,
		entry{path: "/etc/passwd", mode: 0o644, contents: []byte(passwd)},
		entry{path: "/etc/group", mode: 0o644, contents: []byte(group)},
		entry{path: CABundlePath, mode: 0o644, contents: caBundle},
		entry{path: "/root", dir: true, mode: 0o700},
		entry{path: nonrootHome, dir: true, mode: 0o700, uid: nonrootUID, gid: nonrootGID},
		entry{path: "/tmp", dir: true, mode: 0o1777},
	)
}

// binaryLayer holds one executable, owned by root so the nonroot user cannot change it.
func binaryLayer(entrypoint string, binary []byte, modTime time.Time) (v1.Layer, error) {
	return layerOf(modTime, entry{path: entrypoint, mode: 0o755, contents: binary})
}

// layerOf writes entries, and any parent directories they lack, as a tar in path order
// with one modification time: the same entries always give the same bytes.
func layerOf(modTime time.Time, entries ...entry) (v1.Layer, error) {
	byPath := map[string]entry{}
	for _, e := range entries {
		if !path.IsAbs(e.path) || path.Clean(e.path) != e.path || e.path == "/" {
			return nil, fmt.Errorf("layer entry %q: want a clean absolute path", e.path)
		}
		if _, dup := byPath[e.path]; dup {
			return nil, fmt.Errorf("layer entry %q given twice", e.path)
		}
		byPath[e.path] = e
	}
	for _, e := range entries {
		for dir := path.Dir(e.path); dir != "/"; dir = path.Dir(dir) {
			if _, ok := byPath[dir]; !ok {
				byPath[dir] = entry{path: dir, dir: true, mode: 0o755}
			}
		}
	}
	paths := make([]string, 0, len(byPath))
	for p := range byPath {
		paths = append(paths, p)
	}
	sort.Strings(paths)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		e := byPath[p]
		hdr := &tar.Header{
			Name:    strings.TrimPrefix(p, "/"),
			Mode:    e.mode,
			Uid:     e.uid,
			Gid:     e.gid,
			ModTime: modTime,
		}
		switch {
		case e.dir:
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case e.symlink != "":
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = e.symlink
		default:
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(e.contents))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", p, err)
		}
		if _, err := tw.Write(e.contents); err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", p, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerTar := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithCompressedCaching)
}
