package imagebuild

import (
	"archive/tar"
	"errors"
	"io"
	"slices"
	"testing"
	"time"
)

func TestLayerOfAddsParentsInPathOrder(t *testing.T) {
	modTime := time.Unix(1700000000, 0)
	layer, err := layerOf(modTime,
		entry{path: "/usr/local/bin/emulator", mode: 0o755, contents: []byte("binary")},
		entry{path: "/etc/passwd", mode: 0o644, contents: []byte(passwd)},
	)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layer.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var names []string
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, hdr.Name)
		if !hdr.ModTime.Equal(modTime) || hdr.Uid != 0 || hdr.Gid != 0 {
			t.Errorf("%s: mtime %s uid %d gid %d, want %s and root", hdr.Name, hdr.ModTime, hdr.Uid, hdr.Gid, modTime)
		}
		if hdr.Typeflag == tar.TypeDir && hdr.Mode != 0o755 {
			t.Errorf("%s: mode %o, want 755", hdr.Name, hdr.Mode)
		}
	}
	want := []string{"etc/", "etc/passwd", "usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/emulator"}
	if !slices.Equal(names, want) {
		t.Errorf("entries %q, want %q", names, want)
	}
}

func TestLayerOfRefusesUnclearPaths(t *testing.T) {
	for _, path := range []string{"bot", "/", "/usr/../bot", "/bin/"} {
		if _, err := layerOf(time.Unix(0, 0), entry{path: path, contents: []byte("x")}); err == nil {
			t.Errorf("layerOf accepted path %q", path)
		}
	}
	if _, err := layerOf(time.Unix(0, 0), entry{path: "/bot"}, entry{path: "/bot"}); err == nil {
		t.Error("layerOf accepted the same path twice")
	}
}
