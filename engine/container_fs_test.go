package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/containers"
)

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestCtrFSResolve: symlinks resolve inside the rootfs, whatever they
// say, and paths under a mount go to the mount's source (the longest
// destination winning).
func TestCtrFSResolve(t *testing.T) {
	rootfs, vol, inner := t.TempDir(), t.TempDir(), t.TempDir()
	mustDo(t, os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755))
	mustDo(t, os.Symlink("/", filepath.Join(rootfs, "escape")))
	mustDo(t, os.Symlink("../../../..", filepath.Join(rootfs, "etc", "up")))
	mustDo(t, os.Symlink("/data/sub", filepath.Join(rootfs, "tosub")))
	mustDo(t, os.Symlink("/etc", filepath.Join(vol, "back")))
	c := &containers.Container{Name: "c", Mounts: []containers.Mount{
		{Type: "bind", Source: vol, Destination: "/data"},
		{Type: "volume", Source: inner, Destination: "/data/sub"},
		{Type: "tmpfs", Destination: "/run"},
	}}
	f := newCtrFS(c, rootfs)
	for _, tc := range []struct {
		in     string
		follow bool
		want   string
		root   string
		rel    string
	}{
		{"/escape/etc/passwd", false, "/etc/passwd", rootfs, "etc/passwd"},
		{"/etc/up/etc/up/etc", true, "/etc", rootfs, "etc"},
		{"/escape", false, "/escape", rootfs, "escape"},
		{"/escape", true, "/", rootfs, ""},
		{"/../../etc", false, "/etc", rootfs, "etc"},
		{"/data/x", false, "/data/x", vol, "x"},
		{"/data/back/up/data", true, "/data", vol, ""},
		{"/tosub/f", false, "/data/sub/f", inner, "f"},
		{"/run/x", false, "/run/x", rootfs, "run/x"},
	} {
		got, err := f.resolve(tc.in, tc.follow)
		if err != nil {
			t.Errorf("resolve %s: %v", tc.in, err)
			continue
		}
		root, rel, _ := f.host(got)
		if got != tc.want || root != tc.root || rel != tc.rel {
			t.Errorf("resolve %s (follow %v) = %s in %s as %q, want %s in %s as %q", tc.in, tc.follow, got, root, rel, tc.want, tc.root, tc.rel)
		}
	}
}

func TestPlanDest(t *testing.T) {
	for _, tc := range []struct {
		dst                              string
		exists, dstDir, srcDir, contents bool
		name                             string
		inside, fails                    bool
	}{
		{"/tmp", true, true, false, false, "f", true, false},
		{"/tmp/x", true, false, false, false, "x", false, false},
		{"/tmp/x", true, false, true, false, "", false, true},
		{"/tmp/new", false, false, true, false, "new", false, false},
		{"/tmp/new/", false, false, false, false, "", false, true},
		{"/tmp", true, true, true, true, "", true, false},
	} {
		name, inside, err := planDest(tc.dst, tc.exists, tc.dstDir, tc.srcDir, tc.contents, "f")
		if (err != nil) != tc.fails || name != tc.name || inside != tc.inside {
			t.Errorf("planDest(%+v) = %q %v %v", tc, name, inside, err)
		}
	}
}

// TestWriteTree: names, the root entry, symlinks kept as links and
// owners set to root unless kept.
func TestWriteTree(t *testing.T) {
	dir := t.TempDir()
	mustDo(t, os.MkdirAll(filepath.Join(dir, "d", "s"), 0o750))
	mustDo(t, os.WriteFile(filepath.Join(dir, "d", "s", "f"), []byte("abc"), 0o604))
	mustDo(t, os.Symlink("/etc/passwd", filepath.Join(dir, "d", "l")))
	mustDo(t, os.Link(filepath.Join(dir, "d", "s", "f"), filepath.Join(dir, "d", "h")))
	mustDo(t, os.Chown(filepath.Join(dir, "d", "s", "f"), 7, 8))
	h, err := os.Open(dir)
	mustDo(t, err)
	defer h.Close()
	for _, tc := range []struct {
		name string
		keep bool
		want []string
	}{
		{"top", false, []string{"top/", "top/h", "top/l", "top/s/", "top/s/f"}},
		{"", true, []string{"h", "l", "s/", "s/f"}},
	} {
		var buf bytes.Buffer
		mustDo(t, writeTree(context.Background(), &buf, h, "d", tc.name, tarOptions{keepOwner: tc.keep}))
		tr := tar.NewReader(&buf)
		var names []string
		for {
			hdr, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			mustDo(t, err)
			names = append(names, hdr.Name)
			switch filepath.Base(hdr.Name) {
			case "l":
				if hdr.Typeflag != tar.TypeSymlink || hdr.Linkname != "/etc/passwd" {
					t.Errorf("link entry %+v", hdr)
				}
			case "f":
				if hdr.Mode != 0o604 || (tc.keep && (hdr.Uid != 7 || hdr.Gid != 8)) || (!tc.keep && (hdr.Uid != 0 || hdr.Gid != 0)) {
					t.Errorf("file entry (keep %v) %+v", tc.keep, hdr)
				}
			}
		}
		if !slices.Equal(names, tc.want) {
			t.Errorf("entries %q, want %q", names, tc.want)
		}
	}
}

// TestOverlayChanges builds an upper directory over two lower ones by
// hand: whiteouts, an opaque directory, copied-up parents.
func TestOverlayChanges(t *testing.T) {
	l1, l2, upper := t.TempDir(), t.TempDir(), t.TempDir()
	// l2 is the bottom layer, l1 over it.
	for _, p := range []string{"etc/passwd", "etc/group", "bin/ls", "opq/a", "opq/b", "gone/x"} {
		mustDo(t, os.MkdirAll(filepath.Join(l2, filepath.Dir(p)), 0o755))
		mustDo(t, os.WriteFile(filepath.Join(l2, p), nil, 0o644))
	}
	mustDo(t, os.MkdirAll(filepath.Join(l1, "etc"), 0o755))
	mustDo(t, unix.Mknod(filepath.Join(l1, "etc", "group"), unix.S_IFCHR, 0)) // deleted in l1
	mustDo(t, os.MkdirAll(filepath.Join(upper, "etc", "new"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(upper, "etc", "passwd"), nil, 0o644))
	mustDo(t, os.WriteFile(filepath.Join(upper, "etc", "group"), nil, 0o644)) // re-added
	mustDo(t, os.WriteFile(filepath.Join(upper, "etc", "new", "f"), nil, 0o644))
	mustDo(t, os.MkdirAll(filepath.Join(upper, "bin"), 0o755))
	mustDo(t, unix.Mknod(filepath.Join(upper, "bin", "ls"), unix.S_IFCHR, 0))
	mustDo(t, unix.Mknod(filepath.Join(upper, "gone"), unix.S_IFCHR, 0))
	mustDo(t, os.MkdirAll(filepath.Join(upper, "opq"), 0o755))
	mustDo(t, unix.Setxattr(filepath.Join(upper, "opq"), "trusted.overlay.opaque", []byte("y"), 0))
	mustDo(t, os.WriteFile(filepath.Join(upper, "opq", "a"), nil, 0o644))
	got, err := overlayChanges(upper, []string{l1, l2})
	mustDo(t, err)
	slices.SortFunc(got, func(a, b Change) int { return cmpString(a.Path, b.Path) })
	var lines []string
	for _, c := range got {
		lines = append(lines, c.String())
	}
	want := []string{"C /bin", "D /bin/ls", "C /etc", "A /etc/group", "A /etc/new", "A /etc/new/f", "C /etc/passwd", "D /gone", "C /opq", "A /opq/a", "D /opq/b"}
	if !slices.Equal(lines, want) {
		t.Errorf("changes:\n got %q\nwant %q", lines, want)
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestDropMountPoints(t *testing.T) {
	skip := map[string]bool{"/etc/hostname": true, "/data/v": true}
	in := []Change{{Modified, "/data"}, {Added, "/data/v"}, {Modified, "/etc"}, {Added, "/etc-x"}, {Added, "/etc/hostname"}, {Added, "/etc/new"}}
	got := dropMountPoints(in, skip)
	want := []Change{{Added, "/etc-x"}, {Modified, "/etc"}, {Added, "/etc/new"}}
	slices.SortFunc(got, func(a, b Change) int { return cmpString(a.Path, b.Path) })
	slices.SortFunc(want, func(a, b Change) int { return cmpString(a.Path, b.Path) })
	if !slices.Equal(got, want) {
		t.Errorf("dropMountPoints = %v, want %v", got, want)
	}
}
