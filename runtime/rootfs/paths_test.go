package rootfs

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// openInRoot resolves symlinks as if root were "/": absolute targets and
// ".." never leave it.
func TestOpenInRootStaysInRoot(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	for _, d := range []string{root, outside} {
		if err := os.MkdirAll(filepath.Join(d, "inner"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "inner", "file"), []byte(d), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"abs":  "/inner",
		"up":   "../../../../../../inner",
		"host": outside + "/inner",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	rootDir, err := openDir(root)
	if err != nil {
		t.Fatal(err)
	}
	defer rootDir.Close()
	var want unix.Stat_t
	if err := unix.Stat(filepath.Join(root, "inner", "file"), &want); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/inner/file", "abs/file", "/up/file", "../../inner/file"} {
		f, err := openInRoot(rootDir, p)
		if err != nil {
			t.Errorf("openInRoot(%q): %v", p, err)
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if st.Ino != want.Ino || st.Dev != want.Dev {
			t.Errorf("openInRoot(%q) opened inode %d, want %s (inode %d)", p, st.Ino, filepath.Join(root, "inner", "file"), want.Ino)
		}
	}
	// A symlink to a host path resolves inside root, where there is no
	// such path.
	if f, err := openInRoot(rootDir, "host/file"); err == nil {
		f.Close()
		t.Errorf("openInRoot(host/file) opened %s outside the root", outside)
	} else if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("openInRoot(host/file): %v, want a not-exist error", err)
	}
	if _, err := openInRoot(rootDir, "missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("openInRoot(missing): %v, want a not-exist error", err)
	}
}
