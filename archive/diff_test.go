package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestDiffOverlayUpper(t *testing.T) {
	upper := t.TempDir()
	mk := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mk(os.Mkdir(filepath.Join(upper, "o"), 0o750))
	mk(unix.Setxattr(filepath.Join(upper, "o"), "trusted.overlay.opaque", []byte("y"), 0))
	mk(os.WriteFile(filepath.Join(upper, "o/f"), []byte("data"), 0o600))
	mk(unix.Setxattr(filepath.Join(upper, "o/f"), "user.keep", []byte("v"), 0))
	mk(unix.Setxattr(filepath.Join(upper, "o/f"), "trusted.overlay.origin", []byte("x"), 0))
	mk(os.Link(filepath.Join(upper, "o/f"), filepath.Join(upper, "o/g")))
	mk(unix.Mknod(filepath.Join(upper, "gone"), unix.S_IFCHR, 0))
	mk(unix.Mkfifo(filepath.Join(upper, "fifo"), 0o644))
	mk(os.Symlink("o/f", filepath.Join(upper, "link")))

	var buf bytes.Buffer
	mk(DiffOverlayUpper(&buf, upper))
	got := map[string]*tar.Header{}
	var order []string
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		mk(err)
		got[h.Name] = h
		order = append(order, h.Name)
	}
	want := map[string]byte{
		"o/": tar.TypeDir, "o/.wh..wh..opq": tar.TypeReg, "o/f": tar.TypeReg, "o/g": tar.TypeLink,
		".wh.gone": tar.TypeReg, "fifo": tar.TypeFifo, "link": tar.TypeSymlink,
	}
	if len(got) != len(want) {
		t.Errorf("entries %v, want %d", order, len(want))
	}
	for name, typ := range want {
		if h := got[name]; h == nil || h.Typeflag != typ {
			t.Errorf("%s: %+v, want type %q", name, h, typ)
		}
	}
	if h := got["o/f"]; h != nil {
		if h.PAXRecords["SCHILY.xattr.user.keep"] != "v" || h.PAXRecords["SCHILY.xattr.trusted.overlay.origin"] != "" {
			t.Errorf("o/f xattrs: %v", h.PAXRecords)
		}
		if h.Size != 4 || h.Mode != 0o600 {
			t.Errorf("o/f: size %d mode %#o", h.Size, h.Mode)
		}
	}
	if h := got["o/g"]; h != nil && h.Linkname != "o/f" {
		t.Errorf("o/g links to %q", h.Linkname)
	}
	if h := got["o/"]; h != nil && h.Mode != 0o750 {
		t.Errorf("o/: mode %#o", h.Mode)
	}
}
