package archive

import (
	"archive/tar"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// victim is a directory beside the layer root that hostile layers aim at
// (never the host's real /etc, so that a broken Apply harms nothing).
type victim struct {
	dir   string
	names []string
	mode  uint32
}

// newVictim makes base/victim holding a file passwd, beside base/rootfs.
func newVictim(t *testing.T) (root string, v *victim) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "rootfs")
	vdir := filepath.Join(base, "victim")
	for _, d := range []string{root, vdir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(vdir, "passwd"), []byte("root:x:0:0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	v = &victim{dir: vdir}
	v.names, v.mode = v.snapshot(t)
	return root, v
}

func (v *victim) snapshot(t *testing.T) ([]string, uint32) {
	t.Helper()
	entries, err := os.ReadDir(v.dir)
	if err != nil {
		t.Fatalf("victim: %v", err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names, lstat(t, v.dir).Mode
}

// check fails the test if anything in the victim directory changed.
func (v *victim) check(t *testing.T) {
	t.Helper()
	names, mode := v.snapshot(t)
	if !slices.Equal(names, v.names) || mode != v.mode {
		t.Errorf("victim directory changed: %v mode %#o, was %v mode %#o", names, mode, v.names, v.mode)
	}
	if got := readFile(t, filepath.Join(v.dir, "passwd")); got != "root:x:0:0\n" {
		t.Errorf("victim passwd changed: %q", got)
	}
	if st := lstat(t, filepath.Join(v.dir, "passwd")); st.Nlink != 1 || st.Mode&0o7777 != 0o644 || st.Uid != 0 {
		t.Errorf("victim passwd: nlink %d mode %#o uid %d", st.Nlink, st.Mode&0o7777, st.Uid)
	}
}

func TestApplyHostileLayers(t *testing.T) {
	type tc struct {
		name string
		// layer builds the entries; v is the victim directory's absolute path.
		layer   func(v string) []ent
		lower   func(v string) []ent // applied first, trusted
		overlay bool
		// wantErr is a substring of the error, or "" for success.
		wantErr string
		// inside checks where the entry went, in the root.
		inside func(t *testing.T, root, v string)
	}
	fileAt := func(p, want string) func(t *testing.T, root, v string) {
		return func(t *testing.T, root, v string) {
			if got := readFile(t, filepath.Join(root, p)); got != want {
				t.Errorf("%s: %q, want %q", p, got, want)
			}
		}
	}
	cases := []tc{
		{name: "dotdot name", wantErr: "climbs out",
			layer: func(v string) []ent { return []ent{reg("../victim/passwd", "pwned", 0o644)} }},
		{name: "dotdot in the middle", wantErr: "climbs out",
			layer: func(v string) []ent { return []ent{reg("a/../../victim/evil", "pwned", 0o644)} }},
		{name: "absolute name is relative to the root",
			layer:  func(v string) []ent { return []ent{reg(v+"/passwd", "inside", 0o644)} },
			inside: func(t *testing.T, root, v string) { fileAt(v+"/passwd", "inside")(t, root, v) }},
		{name: "dangling absolute symlink parent is refused", wantErr: "not a directory",
			layer: func(v string) []ent { return []ent{symEnt("a", v), reg("a/passwd", "inside", 0o644)} }},
		{name: "absolute symlink parent",
			lower: func(v string) []ent { return []ent{dirEnt(v, 0o755)} },
			layer: func(v string) []ent {
				return []ent{symEnt("a", v), reg("a/passwd", "inside", 0o644), reg("a/new", "inside", 0o644)}
			},
			inside: func(t *testing.T, root, v string) { fileAt(v+"/new", "inside")(t, root, v) }},
		{name: "relative symlink climbing out",
			layer: func(v string) []ent {
				// Followed naively, ".." from the root is the victim's
				// directory (never climb further: a broken Apply must not
				// reach the host's own files).
				return []ent{symEnt("up", ".."), reg("up/victim/passwd", "inside", 0o644)}
			},
			inside: fileAt("victim/passwd", "inside")},
		{name: "symlink parent from a lower layer",
			lower:  func(v string) []ent { return []ent{symEnt("lib", "../victim"), dirEnt("victim", 0o755)} },
			layer:  func(v string) []ent { return []ent{reg("lib/passwd", "inside", 0o644)} },
			inside: fileAt("victim/passwd", "inside")},
		{name: "symlink chain",
			layer: func(v string) []ent {
				return []ent{symEnt("a", "b/.."), symEnt("b", "c"), dirEnt("c", 0o755), symEnt("x", "a/.."), reg("x/victim/passwd", "inside", 0o644)}
			},
			inside: fileAt("victim/passwd", "inside")},
		{name: "final symlink is replaced, not followed",
			layer: func(v string) []ent {
				return []ent{symEnt("f", v+"/passwd"), reg("f", "inside", 0o600)}
			},
			inside: fileAt("f", "inside")},
		{name: "directory over a symlink is not chmodded through it",
			layer: func(v string) []ent { return []ent{symEnt("d", v), dirEnt("d", 0o777)} },
			inside: func(t *testing.T, root, v string) {
				if st := lstat(t, filepath.Join(root, "d")); st.Mode&unix.S_IFMT != unix.S_IFDIR {
					t.Errorf("d: mode %#o, want a directory", st.Mode)
				}
			}},
		{name: "hardlink target climbs out", wantErr: "climbs out",
			layer: func(v string) []ent { return []ent{linkEnt("h", "../victim/passwd")} }},
		{name: "hardlink target through an absolute symlink", wantErr: "no such file",
			layer: func(v string) []ent { return []ent{symEnt("a", v), linkEnt("h", "a/passwd")} }},
		{name: "hardlink to a symlink links the symlink",
			layer: func(v string) []ent { return []ent{symEnt("s", v+"/passwd"), linkEnt("h", "s")} },
			inside: func(t *testing.T, root, v string) {
				if st := lstat(t, filepath.Join(root, "h")); st.Mode&unix.S_IFMT != unix.S_IFLNK {
					t.Errorf("h: mode %#o, want the symlink itself", st.Mode)
				}
			}},
		{name: "hardlink then write through it stays inside",
			layer: func(v string) []ent {
				return []ent{reg("f", "orig", 0o644), linkEnt("h", "f"), reg("h", "new", 0o644)}
			},
			inside: fileAt("f", "orig")},
		{name: "whiteout of dotdot", wantErr: "invalid whiteout",
			layer: func(v string) []ent { return []ent{reg("a/.wh..", "", 0o644)} }},
		{name: "whiteout of dotdot at the root", wantErr: "invalid whiteout",
			layer: func(v string) []ent { return []ent{reg(".wh..", "", 0o644)} }},
		{name: "whiteout of dotdot in overlay mode", wantErr: "invalid whiteout", overlay: true,
			layer: func(v string) []ent { return []ent{reg("a/.wh..", "", 0o644)} }},
		{name: "whiteout with an empty name", wantErr: "invalid whiteout",
			layer: func(v string) []ent { return []ent{reg("a/.wh.", "", 0o644)} }},
		{name: "whiteout through a symlink parent",
			lower:  func(v string) []ent { return []ent{dirEnt(v, 0o755), reg(v+"/passwd", "inside", 0o644)} },
			layer:  func(v string) []ent { return []ent{symEnt("a", v), reg("a/.wh.passwd", "", 0o644)} },
			inside: func(t *testing.T, root, v string) { assertAbsent(t, filepath.Join(root, v, "passwd")) }},
		{name: "whiteout through a symlink parent in overlay mode", overlay: true, wantErr: "not a directory",
			layer: func(v string) []ent { return []ent{symEnt("a", v), reg("a/.wh.passwd", "", 0o644)} }},
		{name: "whiteout climbing out", wantErr: "climbs out",
			layer: func(v string) []ent { return []ent{reg("../victim/.wh.passwd", "", 0o644)} }},
		{name: "opaque through a symlink",
			lower:  func(v string) []ent { return []ent{dirEnt(v, 0o755), reg(v+"/passwd", "inside", 0o644)} },
			layer:  func(v string) []ent { return []ent{symEnt("o", v), reg("o/.wh..wh..opq", "", 0o644)} },
			inside: func(t *testing.T, root, v string) { assertAbsent(t, filepath.Join(root, v, "passwd")) }},
		{name: "opaque through a symlink in overlay mode", overlay: true, wantErr: "not a directory",
			layer: func(v string) []ent { return []ent{symEnt("o", v), reg("o/.wh..wh..opq", "", 0o644)} }},
		{name: "whiteout of the root's parent via an absolute name",
			layer: func(v string) []ent {
				return []ent{reg("/.wh.victim", "", 0o644), reg(filepath.Dir(v)+"/.wh.victim", "", 0o644)}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root, v := newVictim(t)
			if c.lower != nil {
				mustApply(t, root, mkLayer(t, c.lower(v.dir)...), ApplyOptions{})
			}
			_, err := apply(t, root, mkLayer(t, c.layer(v.dir)...), ApplyOptions{Overlay: c.overlay})
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("Apply: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("Apply: err = %v, want %q", err, c.wantErr)
			}
			v.check(t)
			if err == nil && c.inside != nil {
				c.inside(t, root, v.dir)
			}
			if _, err := os.Lstat(root); err != nil {
				t.Errorf("root: %v", err)
			}
		})
	}
}

func TestApplyHostileDevices(t *testing.T) {
	// A device entry is created inside the root like any other; its
	// name cannot take it out.
	root, v := newVictim(t)
	dev := ent{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "../victim/sda", Mode: 0o666, Devmajor: 8}}
	if _, err := apply(t, root, mkLayer(t, dev), ApplyOptions{}); err == nil || !strings.Contains(err.Error(), "climbs out") {
		t.Errorf("err = %v", err)
	}
	v.check(t)
}
