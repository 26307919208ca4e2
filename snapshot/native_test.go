package snapshot

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func newNative(t *testing.T, root string) Snapshotter {
	t.Helper()
	needRoot(t)
	s, err := NewNative(root)
	if err != nil {
		t.Fatalf("NewNative: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestNativeChain(t *testing.T) {
	s := newNative(t, t.TempDir())
	dirs := buildChain(t, s, false)

	// Each layer is a full copy: its parent's files plus its changes.
	checkFiles(t, dirs[0], layerFiles[0])
	checkFiles(t, dirs[1], map[string]string{"a": "2", "b": "2", "dir/x": "1", "del": ""})
	checkFiles(t, dirs[2], mergedFiles)

	mounts, err := s.Prepare("ctr", "layer3")
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 1 || mounts[0].Type != "bind" || !hasOption(mounts[0], "rw") {
		t.Fatalf("Prepare(ctr): want one rw bind mount, got %+v", mounts)
	}
	target := t.TempDir()
	mountForTest(t, mounts, target)
	checkFiles(t, target, mergedFiles)
	writeFiles(t, target, map[string]string{"a": "ctr", "new": "ctr", "dir/x": "ctr"})
	if err := os.Remove(filepath.Join(target, "c")); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, writableDir(t, mounts), map[string]string{"a": "ctr", "new": "ctr", "dir/x": "ctr", "c": ""})
	// The parents do not change.
	checkFiles(t, dirs[2], mergedFiles)
	checkFiles(t, dirs[0], layerFiles[0])

	view, err := s.View("view", "layer2")
	if err != nil {
		t.Fatal(err)
	}
	vt := t.TempDir()
	mountForTest(t, view, vt)
	checkFiles(t, vt, map[string]string{"a": "2", "b": "2", "dir/x": "1", "c": ""})
	if err := os.WriteFile(filepath.Join(vt, "new"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("write into native view: %v, want EROFS", err)
	}

	if err := s.Remove("layer3"); !errors.Is(err, ErrFailedPrecondition) || !strings.Contains(err.Error(), `"ctr"`) {
		t.Errorf("Remove(layer3) with child: %v", err)
	}
	if err := s.Remove("layer2"); !errors.Is(err, ErrFailedPrecondition) || !strings.Contains(err.Error(), `"view"`) || !strings.Contains(err.Error(), `"layer3"`) {
		t.Errorf("Remove(layer2) with children: %v", err)
	}
	// Top-down removal works, and takes the files.
	for _, k := range []string{"view", "ctr", "layer3", "layer2", "layer1"} {
		if err := s.Remove(k); err != nil {
			t.Fatalf("Remove(%q): %v", k, err)
		}
	}
	if got := walkKeys(t, s); len(got) != 0 {
		t.Errorf("after removing all: %v", sortedKeys(got))
	}
	if _, err := os.Stat(dirs[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("layer1's files remain: %v", err)
	}
}

func TestNativeCopyFidelity(t *testing.T) {
	s := newNative(t, t.TempDir())
	m, err := s.Prepare("base", "")
	if err != nil {
		t.Fatal(err)
	}
	src := writableDir(t, m)
	writeFiles(t, src, map[string]string{"file": "data", "dir/sub/deep": "deep"})
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Link(filepath.Join(src, "file"), filepath.Join(src, "dir/link")))
	must(os.Symlink("../file", filepath.Join(src, "dir/sym")))
	must(os.Symlink("/etc/passwd", filepath.Join(src, "abs-sym")))
	must(unix.Mkfifo(filepath.Join(src, "fifo"), 0o640))
	must(unix.Mknod(filepath.Join(src, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
	must(os.Chown(filepath.Join(src, "file"), 1000, 2000))
	must(os.Chmod(filepath.Join(src, "file"), 0o4755))
	must(os.Chmod(filepath.Join(src, "dir/sub"), 0o1750))
	must(unix.Lsetxattr(filepath.Join(src, "file"), "user.berth", []byte("x"), 0))
	must(unix.Lchown(filepath.Join(src, "dir/sym"), 7, 8))
	old := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	must(os.Chtimes(filepath.Join(src, "file"), old, old))
	must(os.Chtimes(filepath.Join(src, "dir/sub"), old, old))
	must(s.Commit("base-c", "base"))

	m, err = s.Prepare("child", "base-c")
	if err != nil {
		t.Fatal(err)
	}
	dst := writableDir(t, m)
	if got, want := listTree(t, dst), listTree(t, src); !reflect.DeepEqual(got, want) {
		t.Fatalf("copy has %v, want %v", got, want)
	}
	for _, name := range []string{".", "file", "dir", "dir/sub", "dir/sub/deep", "dir/link", "dir/sym", "abs-sym", "fifo", "null"} {
		var a, b unix.Stat_t
		must(unix.Lstat(filepath.Join(src, name), &a))
		must(unix.Lstat(filepath.Join(dst, name), &b))
		if a.Mode != b.Mode || a.Uid != b.Uid || a.Gid != b.Gid || a.Rdev != b.Rdev || a.Size != b.Size {
			t.Errorf("%s: copy mode %o %d:%d rdev %d size %d, want %o %d:%d rdev %d size %d",
				name, b.Mode, b.Uid, b.Gid, b.Rdev, b.Size, a.Mode, a.Uid, a.Gid, a.Rdev, a.Size)
		}
		if a.Mode&unix.S_IFMT != unix.S_IFLNK && a.Mtim != b.Mtim {
			t.Errorf("%s: mtime %v, want %v", name, b.Mtim, a.Mtim)
		}
	}
	if v, err := getXattr(filepath.Join(dst, "file"), "user.berth"); err != nil || string(v) != "x" {
		t.Errorf("xattr: %q, %v", v, err)
	}
	if l, err := os.Readlink(filepath.Join(dst, "abs-sym")); err != nil || l != "/etc/passwd" {
		t.Errorf("symlink: %q, %v", l, err)
	}
	var f, l syscall.Stat_t
	must(syscall.Stat(filepath.Join(dst, "file"), &f))
	must(syscall.Stat(filepath.Join(dst, "dir/link"), &l))
	if f.Ino != l.Ino || f.Nlink != 2 {
		t.Errorf("hard link not kept: inodes %d, %d, nlink %d", f.Ino, l.Ino, f.Nlink)
	}
	var sf syscall.Stat_t
	must(syscall.Stat(filepath.Join(src, "file"), &sf))
	if sf.Ino == f.Ino {
		t.Errorf("child shares the parent's inode")
	}
	// Writing the child's copy leaves the parent alone.
	must(os.WriteFile(filepath.Join(dst, "dir/link"), []byte("child"), 0o644))
	checkFiles(t, dst, map[string]string{"file": "child"})
	checkFiles(t, src, map[string]string{"file": "data", "dir/link": "data"})
}

func TestNativeRefusesCommitWithParent(t *testing.T) {
	s, err := NewNative(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if CanRebase(s) {
		t.Error("CanRebase(native) = true")
	}
	for _, key := range []string{"a", "b"} {
		if _, err := s.Prepare(key, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Commit("base", "a"); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit("top", "b", WithParent("base")); !errors.Is(err, ErrFailedPrecondition) {
		t.Errorf("native Commit WithParent: %v, want failed precondition", err)
	}
	if _, err := s.Stat("b"); err != nil {
		t.Errorf("refused Commit removed the active snapshot: %v", err)
	}
}
