package topdir

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMark(t *testing.T) {
	// t.TempDir is on /tmp; the attribute needs ext4 there.
	dir := t.TempDir()
	Mark(dir)
	if !marked(dir) {
		if !isExt4(dir) {
			t.Skip("the test directory is not on ext4")
		}
		t.Fatalf("%s: no FS_TOPDIR_FL after Mark", dir)
	}
	// Once set, Mark leaves it; a second call must not fail or clear it.
	Mark(dir)
	if !marked(dir) {
		t.Fatal("a second Mark cleared the attribute")
	}
	// A missing directory and a file are ignored.
	Mark(filepath.Join(dir, "missing"))
	f := filepath.Join(dir, "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	Mark(f)
	if marked(f) {
		t.Fatal("Mark set the attribute on a file")
	}
}

func isExt4(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.EXT4_SUPER_MAGIC
}

// marked reports whether dir has the attribute.
func marked(dir string) bool {
	f, err := os.Open(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	return err == nil && flags&fsTopdirFl != 0
}
