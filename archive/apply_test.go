package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestApplyEntryTypes(t *testing.T) {
	dir := newRoot(t)
	dirTime := time.Unix(1600000000, 0)
	fileTime := time.Unix(1650000000, 123000000)
	long := strings.Repeat("long-directory-name/", 8) + strings.Repeat("f", 120)

	d := dirEnt("d", 0o750)
	d.hdr.Uid, d.hdr.Gid, d.hdr.ModTime = 1000, 1001, dirTime
	f := reg("d/f", "hello\n", 0o4755)
	f.hdr.Uid, f.hdr.Gid, f.hdr.ModTime, f.hdr.Format = 1000, 1000, fileTime, tar.FormatPAX
	f.hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.test": "value", "SCHILY.xattr.trusted.overlay.opaque": "y"}
	fifo := ent{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "d/p", Mode: 0o640, ModTime: testTime}}
	null := ent{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "d/null", Mode: 0o666, Devmajor: 1, Devminor: 3, ModTime: testTime}}
	sym := symEnt("d/s", "f")
	sym.hdr.Uid, sym.hdr.Gid = 7, 8
	layer := mkLayer(t, d, f, sym, linkEnt("d/h", "d/f"), fifo, null,
		dirEnt("sticky", 0o1777), reg(long, "long\n", 0o600), reg("setgid", "", 0o2711))
	mustApply(t, dir, layer, ApplyOptions{})

	st := lstat(t, filepath.Join(dir, "d"))
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || st.Mode&0o7777 != 0o750 || st.Uid != 1000 || st.Gid != 1001 {
		t.Errorf("d: mode %#o owner %d:%d", st.Mode, st.Uid, st.Gid)
	}
	if st.Mtim.Sec != dirTime.Unix() {
		t.Errorf("d: mtime %d, want %d (set after its children)", st.Mtim.Sec, dirTime.Unix())
	}
	st = lstat(t, filepath.Join(dir, "d/f"))
	if st.Mode&0o7777 != 0o4755 || st.Uid != 1000 || st.Gid != 1000 || st.Nlink != 2 {
		t.Errorf("d/f: mode %#o owner %d:%d nlink %d", st.Mode&0o7777, st.Uid, st.Gid, st.Nlink)
	}
	if st.Mtim.Sec != fileTime.Unix() || st.Mtim.Nsec != 123000000 {
		t.Errorf("d/f: mtime %v", st.Mtim)
	}
	if got := readFile(t, filepath.Join(dir, "d/f")); got != "hello\n" {
		t.Errorf("d/f: content %q", got)
	}
	buf := make([]byte, 64)
	if n, err := unix.Lgetxattr(filepath.Join(dir, "d/f"), "user.test", buf); err != nil || string(buf[:n]) != "value" {
		t.Errorf("d/f: xattr user.test = %q, %v", buf[:max(n, 0)], err)
	}
	if _, err := unix.Lgetxattr(filepath.Join(dir, "d/f"), "trusted.overlay.opaque", buf); err == nil {
		t.Errorf("d/f: a layer's trusted.overlay.* xattr was set")
	}
	if hst := lstat(t, filepath.Join(dir, "d/h")); hst.Ino != st.Ino {
		t.Errorf("d/h: not a hardlink of d/f")
	}
	if target, err := os.Readlink(filepath.Join(dir, "d/s")); err != nil || target != "f" {
		t.Errorf("d/s: readlink %q, %v", target, err)
	}
	if st := lstat(t, filepath.Join(dir, "d/s")); st.Uid != 7 || st.Gid != 8 || st.Mtim.Sec != testTime.Unix() {
		t.Errorf("d/s: owner %d:%d mtime %d", st.Uid, st.Gid, st.Mtim.Sec)
	}
	if st := lstat(t, filepath.Join(dir, "d/p")); st.Mode&unix.S_IFMT != unix.S_IFIFO || st.Mode&0o7777 != 0o640 {
		t.Errorf("d/p: mode %#o", st.Mode)
	}
	if st := lstat(t, filepath.Join(dir, "d/null")); st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != unix.Mkdev(1, 3) || st.Mode&0o7777 != 0o666 {
		t.Errorf("d/null: mode %#o rdev %#x", st.Mode, st.Rdev)
	}
	if st := lstat(t, filepath.Join(dir, "sticky")); st.Mode&0o7777 != 0o1777 {
		t.Errorf("sticky: mode %#o", st.Mode&0o7777)
	}
	if st := lstat(t, filepath.Join(dir, "setgid")); st.Mode&0o7777 != 0o2711 {
		t.Errorf("setgid: mode %#o", st.Mode&0o7777)
	}
	if got := readFile(t, filepath.Join(dir, long)); got != "long\n" {
		t.Errorf("long name: %q", got)
	}
}

func TestApplyGNULongNames(t *testing.T) {
	dir := newRoot(t)
	name := strings.Repeat("n", 200)
	target := strings.Repeat("t", 150)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Typeflag: tar.TypeReg, Name: name, Size: 2, Mode: 0o644, ModTime: testTime, Format: tar.FormatGNU},
		{Typeflag: tar.TypeSymlink, Name: name + "-link", Linkname: target, ModTime: testTime, Format: tar.FormatGNU},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("ok"))
		}
	}
	tw.Close()
	mustApply(t, dir, buf.Bytes(), ApplyOptions{})
	if got := readFile(t, filepath.Join(dir, name)); got != "ok" {
		t.Errorf("content %q", got)
	}
	if got, _ := os.Readlink(filepath.Join(dir, name+"-link")); got != target {
		t.Errorf("link target %q", got)
	}
}

func TestApplyNoOwnership(t *testing.T) {
	dir := newRoot(t)
	f := reg("f", "x", 0o640)
	f.hdr.Uid, f.hdr.Gid = 1234, 1234
	mustApply(t, dir, mkLayer(t, f), ApplyOptions{NoOwnership: true})
	if st := lstat(t, filepath.Join(dir, "f")); st.Uid != uint32(os.Getuid()) || st.Mode&0o777 != 0o640 {
		t.Errorf("f: owner %d mode %#o", st.Uid, st.Mode&0o777)
	}
}

func TestApplyDiffIDCoversWholeStream(t *testing.T) {
	layer := mkLayer(t, dirEnt("a", 0o755), reg("a/b", "content", 0o644))
	// tar(1) and Python pad archives to a 10 KiB record: the diff ID
	// covers that padding.
	padded := append(append([]byte{}, layer...), make([]byte, 10240-len(layer)%10240)...)
	for name, b := range map[string][]byte{"plain": layer, "padded": padded} {
		got, err := apply(t, newRoot(t), b, ApplyOptions{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sum := sha256.Sum256(b)
		if want := "sha256:" + hex.EncodeToString(sum[:]); got.String() != want {
			t.Errorf("%s: diff ID %s, want %s", name, got, want)
		}
	}
}

func TestApplyReplacesEntries(t *testing.T) {
	dir := newRoot(t)
	mustApply(t, dir, mkLayer(t,
		dirEnt("a", 0o755), reg("a/x", "x", 0o644), reg("b", "b", 0o644),
		symEnt("c", "a"),
	), ApplyOptions{})
	mustApply(t, dir, mkLayer(t,
		reg("a", "now a file", 0o644), // directory -> file
		dirEnt("b", 0o700),            // file -> directory
		reg("b/y", "y", 0o644),
		dirEnt("c", 0o755), // symlink -> directory, not followed
		reg("c/z", "z", 0o644),
		reg("d", "first", 0o644), // same layer, the later entry wins
		dirEnt("d", 0o755),
		reg("d/in", "in", 0o644),
	), ApplyOptions{})
	if got := readFile(t, filepath.Join(dir, "a")); got != "now a file" {
		t.Errorf("a: %q", got)
	}
	if got := readFile(t, filepath.Join(dir, "b/y")); got != "y" {
		t.Errorf("b/y: %q", got)
	}
	if st := lstat(t, filepath.Join(dir, "c")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Errorf("c: mode %#o, want a directory", st.Mode)
	}
	if _, err := os.Lstat(filepath.Join(dir, "c/x")); err == nil {
		t.Errorf("c/x: a lower directory reached through the replaced symlink")
	}
	if got := readFile(t, filepath.Join(dir, "d/in")); got != "in" {
		t.Errorf("d/in: %q", got)
	}
}

func TestApplyNativeWhiteouts(t *testing.T) {
	dir := newRoot(t)
	mustApply(t, dir, mkLayer(t,
		dirEnt("d", 0o755), reg("d/gone", "g", 0o644), reg("d/keep", "k", 0o644),
		dirEnt("d/gonedir", 0o755), reg("d/gonedir/x", "x", 0o644),
		dirEnt("o", 0o755), reg("o/old", "old", 0o644),
		dirEnt("o/sub", 0o755), reg("o/sub/old2", "old2", 0o644),
		dirEnt("o/sub2", 0o755), reg("o/sub2/x", "x", 0o644),
	), ApplyOptions{})
	mustApply(t, dir, mkLayer(t,
		reg("d/.wh.gone", "", 0o644),
		reg("d/.wh.gonedir", "", 0o644),
		reg("d/.wh.never-existed", "", 0o644),
		reg("nodir/.wh.x", "", 0o644),
		reg("d/.wh..wh.plnk", "", 0o644), // AUFS metadata: ignored
		dirEnt("o", 0o755),
		reg("o/a", "before the marker", 0o644),
		reg("o/sub/new", "new", 0o644), // sub's parent dir is implicit
		reg("o/.wh..wh..opq", "", 0o644),
		reg("o/b", "after the marker", 0o644),
	), ApplyOptions{})
	for _, p := range []string{"d/gone", "d/gonedir", "o/old", "o/sub/old2", "o/sub2", "d/.wh..wh.plnk", "nodir"} {
		assertAbsent(t, filepath.Join(dir, p))
	}
	for p, want := range map[string]string{"d/keep": "k", "o/a": "before the marker", "o/b": "after the marker", "o/sub/new": "new"} {
		if got := readFile(t, filepath.Join(dir, p)); got != want {
			t.Errorf("%s: %q, want %q", p, got, want)
		}
	}
}

func TestApplyOverlayWhiteouts(t *testing.T) {
	dir := newRoot(t)
	mustApply(t, dir, mkLayer(t,
		dirEnt("d", 0o755),
		reg("d/.wh.gone", "", 0o644),
		reg("d/.wh..wh.plnk", "", 0o644),
		dirEnt("o", 0o755),
		reg("o/.wh..wh..opq", "", 0o644),
		reg("o/new", "new", 0o644),
		reg("implicit/.wh..wh..opq", "", 0o644),
	), ApplyOptions{Overlay: true})
	st := lstat(t, filepath.Join(dir, "d/gone"))
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 || st.Uid != 0 || st.Gid != 0 {
		t.Errorf("d/gone: mode %#o rdev %d owner %d:%d, want a 0:0 char device", st.Mode, st.Rdev, st.Uid, st.Gid)
	}
	assertAbsent(t, filepath.Join(dir, "d/.wh..wh.plnk"))
	assertAbsent(t, filepath.Join(dir, "o/.wh..wh..opq"))
	for _, p := range []string{"o", "implicit"} {
		buf := make([]byte, 8)
		n, err := unix.Lgetxattr(filepath.Join(dir, p), "trusted.overlay.opaque", buf)
		if err != nil || string(buf[:n]) != "y" {
			t.Errorf("%s: trusted.overlay.opaque = %q, %v", p, buf[:max(n, 0)], err)
		}
	}
}

func TestApplySparseFiles(t *testing.T) {
	tarExe := requireTar(t)
	src := t.TempDir()
	// 8 MiB logical, a few bytes of data at the end.
	f, err := os.Create(filepath.Join(src, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("end"), 8<<20-3); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// 1 TiB logical, all hole: a sparse bomb.
	if err := os.WriteFile(filepath.Join(src, "huge"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(src, "huge"), 1<<40); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"gnu", "pax"} {
		t.Run(format, func(t *testing.T) {
			layer := runTar(t, tarExe, src, "--sparse", "--format="+format, "sparse")
			if len(layer) > 1<<20 {
				t.Fatalf("tar did not write a sparse entry (%d bytes)", len(layer))
			}
			dir := newRoot(t)
			mustApply(t, dir, layer, ApplyOptions{})
			b, err := os.ReadFile(filepath.Join(dir, "sparse"))
			if err != nil {
				t.Fatal(err)
			}
			if len(b) != 8<<20 || string(b[len(b)-3:]) != "end" || !bytes.Equal(b[:1<<20], make([]byte, 1<<20)) {
				t.Errorf("sparse: %d bytes, tail %q", len(b), b[len(b)-3:])
			}
			if st := lstat(t, filepath.Join(dir, "sparse")); st.Blocks*512 > 1<<20 {
				t.Errorf("sparse: %d bytes allocated, want the hole kept", st.Blocks*512)
			}

			bomb := runTar(t, tarExe, src, "--sparse", "--format="+format, "huge")
			_, err = apply(t, newRoot(t), bomb, ApplyOptions{MaxBytes: 1 << 30})
			if err == nil || !strings.Contains(err.Error(), `"huge"`) || !strings.Contains(err.Error(), "1073741824") {
				t.Errorf("sparse bomb: err = %v, want a MaxBytes error naming the entry", err)
			}
		})
	}
}

func TestApplyContextCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Apply(ctx, newRoot(t), bytes.NewReader(mkLayer(t, reg("f", "x", 0o644))), ApplyOptions{})
	if err == nil || !strings.Contains(err.Error(), "canceled") {
		t.Errorf("err = %v, want context canceled", err)
	}
}

func TestApplyMissingDir(t *testing.T) {
	_, err := apply(t, filepath.Join(t.TempDir(), "missing"), mkLayer(t, reg("f", "x", 0o644)), ApplyOptions{})
	if err == nil {
		t.Fatal("Apply into a missing directory succeeded")
	}
}

func TestApplyOverlayHardlinkCopyUp(t *testing.T) {
	lower0, lower1 := newRoot(t), newRoot(t)
	f := reg("d/f", "lower content", 0o640)
	f.hdr.Uid, f.hdr.Gid = 1000, 1001
	f.hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.x": "1"}
	mustApply(t, lower0, mkLayer(t, dirEnt("d", 0o755), f, reg("d/g", "g", 0o644)), ApplyOptions{Overlay: true})
	mustApply(t, lower1, mkLayer(t, dirEnt("d", 0o755), reg("d/.wh.g", "", 0o644)), ApplyOptions{Overlay: true})
	lowers := []string{lower1, lower0}

	upper := newRoot(t)
	mustApply(t, upper, mkLayer(t, dirEnt("d", 0o755), linkEnt("d/h", "d/f")), ApplyOptions{Overlay: true, Lowers: lowers})
	if got := readFile(t, filepath.Join(upper, "d/f")); got != "lower content" {
		t.Errorf("d/f copied up: %q", got)
	}
	st := lstat(t, filepath.Join(upper, "d/f"))
	if st.Mode&0o7777 != 0o640 || st.Uid != 1000 || st.Gid != 1001 || st.Nlink != 2 {
		t.Errorf("d/f: mode %#o owner %d:%d nlink %d", st.Mode&0o7777, st.Uid, st.Gid, st.Nlink)
	}
	if st.Mtim.Sec != testTime.Unix() {
		t.Errorf("d/f: mtime %d", st.Mtim.Sec)
	}
	buf := make([]byte, 8)
	if n, err := unix.Lgetxattr(filepath.Join(upper, "d/f"), "user.x", buf); err != nil || string(buf[:n]) != "1" {
		t.Errorf("d/f: xattr user.x %q, %v", buf[:max(n, 0)], err)
	}
	if lstat(t, filepath.Join(upper, "d/h")).Ino != st.Ino {
		t.Errorf("d/h is not a hardlink of the copied-up d/f")
	}
	if lstat(t, filepath.Join(lower0, "d/f")).Nlink != 1 {
		t.Errorf("the lower file was linked, not copied")
	}

	for name, c := range map[string]struct {
		link   string
		lowers []string
	}{
		"whited out in a lower layer": {"d/g", lowers},
		"no lowers given":             {"d/f", nil},
		"in no layer":                 {"d/none", lowers},
	} {
		_, err := apply(t, newRoot(t), mkLayer(t, linkEnt("h", c.link)), ApplyOptions{Overlay: true, Lowers: c.lowers})
		// Without lowers the target may be in one: the caller is told
		// to apply the layer again with them (ErrLinkToLower).
		if c.lowers == nil {
			if !errors.Is(err, ErrLinkToLower) {
				t.Errorf("%s: err = %v, want ErrLinkToLower", name, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), "no such file") || errors.Is(err, ErrLinkToLower) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}
