package snapshot

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func newOverlay(t *testing.T, root string) Snapshotter {
	t.Helper()
	needRoot(t)
	s, err := NewOverlay(root)
	if err != nil {
		t.Fatalf("NewOverlay: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// layerFiles are the files of the test chain; "" marks a deletion.
var layerFiles = []map[string]string{
	{"a": "1", "dir/x": "1", "del": "1"},
	{"a": "2", "b": "2", "del": ""},
	{"c": "3", "dir/y": "3"},
}

// mergedFiles is what the three layers show together.
var mergedFiles = map[string]string{"a": "2", "b": "2", "c": "3", "dir/x": "1", "dir/y": "3", "del": ""}

// buildChain commits layer1..layer3 from layerFiles, writing each layer's
// files into its active snapshot's writable directory; a deletion is an
// overlay whiteout, or (native, a full copy) a plain removal. It returns
// the writable directories.
func buildChain(t *testing.T, s Snapshotter, whiteouts bool) []string {
	t.Helper()
	var dirs []string
	parent := ""
	for i, files := range layerFiles {
		key := "active-" + string(rune('1'+i))
		mounts, err := s.Prepare(key, parent)
		if err != nil {
			t.Fatalf("Prepare(%q, %q): %v", key, parent, err)
		}
		dir := writableDir(t, mounts)
		for name, content := range files {
			if content != "" {
				writeFiles(t, dir, map[string]string{name: content})
			} else if whiteouts {
				if err := unix.Mknod(filepath.Join(dir, name), unix.S_IFCHR, 0); err != nil {
					t.Fatal(err)
				}
			} else if err := os.Remove(filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
		name := "layer" + string(rune('1'+i))
		if err := s.Commit(name, key); err != nil {
			t.Fatalf("Commit(%q, %q): %v", name, key, err)
		}
		dirs = append(dirs, dir)
		parent = name
	}
	return dirs
}

func TestOverlayChain(t *testing.T) {
	s := newOverlay(t, t.TempDir())
	fsDirs := buildChain(t, s, true)

	// A layer on a parent is an overlay on the parent's tree.
	if m, err := s.Prepare("probe", "layer1"); err != nil {
		t.Fatal(err)
	} else if low, _ := option(m[0], "lowerdir"); m[0].Type != "overlay" || low != fsDirs[0] {
		t.Errorf("Prepare on layer1: got %+v, want overlay with lowerdir=%s", m, fsDirs[0])
	}

	mounts, err := s.Prepare("ctr", "layer3")
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 1 || mounts[0].Type != "overlay" {
		t.Fatalf("Prepare(ctr): want one overlay mount, got %+v", mounts)
	}
	low, _ := option(mounts[0], "lowerdir")
	if want := fsDirs[2] + ":" + fsDirs[1] + ":" + fsDirs[0]; low != want {
		t.Errorf("lowerdir = %s, want nearest first %s", low, want)
	}
	if again, err := s.Mounts("ctr"); err != nil || !reflect.DeepEqual(again, mounts) {
		t.Errorf("Mounts(ctr) = %+v, %v; want %+v", again, err, mounts)
	}
	upper := writableDir(t, mounts)

	target := t.TempDir()
	mountForTest(t, mounts, target)
	checkFiles(t, target, mergedFiles)

	writeFiles(t, target, map[string]string{"new": "ctr", "a": "ctr", "dir/x": "ctr"})
	checkFiles(t, upper, map[string]string{"new": "ctr", "a": "ctr", "dir/x": "ctr", "b": "", "c": ""})
	for i, files := range layerFiles {
		want := map[string]string{"new": ""}
		for k, v := range files {
			if v != "" { // deletions are whiteouts in the layer
				want[k] = v
			}
		}
		checkFiles(t, fsDirs[i], want)
	}
	if err := os.Remove(filepath.Join(target, "c")); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, fsDirs[2], map[string]string{"c": "3"})

	// Stat, Walk.
	for key, want := range map[string]Info{
		"layer1": {Key: "layer1", Kind: KindCommitted},
		"layer2": {Key: "layer2", Parent: "layer1", Kind: KindCommitted},
		"layer3": {Key: "layer3", Parent: "layer2", Kind: KindCommitted},
		"ctr":    {Key: "ctr", Parent: "layer3", Kind: KindActive},
	} {
		got, err := s.Stat(key)
		if err != nil {
			t.Fatalf("Stat(%q): %v", key, err)
		}
		if got.Created.IsZero() {
			t.Errorf("Stat(%q): zero Created", key)
		}
		got.Created = want.Created
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Stat(%q) = %+v, want %+v", key, got, want)
		}
	}
	if keys := sortedKeys(walkKeys(t, s)); !reflect.DeepEqual(keys, []string{"ctr", "layer1", "layer2", "layer3", "probe"}) {
		t.Errorf("Walk keys = %v", keys)
	}
	for _, gone := range []string{"active-1", "active-2", "active-3"} {
		if _, err := s.Stat(gone); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), gone) {
			t.Errorf("Stat(%q) after commit: %v, want not found naming the key", gone, err)
		}
	}

	// Remove refuses a parent with children, naming them.
	err = s.Remove("layer3")
	if !errors.Is(err, ErrFailedPrecondition) || !strings.Contains(err.Error(), `"layer3"`) || !strings.Contains(err.Error(), `"ctr"`) {
		t.Errorf("Remove(layer3) with child ctr: %v", err)
	}
	if err := s.Remove("layer1"); err == nil || !strings.Contains(err.Error(), `"layer2"`) || !strings.Contains(err.Error(), `"probe"`) {
		t.Errorf("Remove(layer1) with children layer2, probe: %v", err)
	}
	checkFiles(t, fsDirs[0], map[string]string{"a": "1"})
}

func TestOverlayViews(t *testing.T) {
	s := newOverlay(t, t.TempDir())
	fsDirs := buildChain(t, s, true)

	cases := []struct {
		key, parent, typ string
		files            map[string]string
	}{
		{"view-empty", "", "bind", map[string]string{"a": ""}},
		{"view-1", "layer1", "bind", layerFiles[0]},
		{"view-3", "layer3", "overlay", mergedFiles},
	}
	for _, c := range cases {
		mounts, err := s.View(c.key, c.parent)
		if err != nil {
			t.Fatalf("View(%q, %q): %v", c.key, c.parent, err)
		}
		if len(mounts) != 1 || mounts[0].Type != c.typ || !hasOption(mounts[0], "ro") {
			t.Fatalf("View(%q): want one read-only %s mount, got %+v", c.key, c.typ, mounts)
		}
		if _, ok := option(mounts[0], "upperdir"); ok {
			t.Errorf("View(%q) has an upperdir: %+v", c.key, mounts)
		}
		target := t.TempDir()
		mountForTest(t, mounts, target)
		checkFiles(t, target, c.files)
		err = os.WriteFile(filepath.Join(target, "new"), nil, 0o644)
		if !errors.Is(err, unix.EROFS) {
			t.Errorf("write into view %q: %v, want EROFS", c.key, err)
		}
		info, err := s.Stat(c.key)
		if err != nil || info.Kind != KindView || info.Parent != c.parent {
			t.Errorf("Stat(%q) = %+v, %v", c.key, info, err)
		}
	}
	checkFiles(t, fsDirs[0], map[string]string{"new": ""})

	// A view is neither committable nor a parent.
	if err := s.Commit("x", "view-3"); !errors.Is(err, ErrFailedPrecondition) || !strings.Contains(err.Error(), "view-3") {
		t.Errorf("Commit of a view: %v", err)
	}
	if _, err := s.Prepare("x", "view-3"); !errors.Is(err, ErrFailedPrecondition) || !strings.Contains(err.Error(), "view-3") {
		t.Errorf("Prepare on a view: %v", err)
	}
	if err := s.Remove("layer1"); !errors.Is(err, ErrFailedPrecondition) || !strings.Contains(err.Error(), "view-1") {
		t.Errorf("Remove(layer1) with a view on it: %v", err)
	}
	if err := s.Remove("view-1"); err != nil {
		t.Fatal(err)
	}
}

func TestOverlayMountAllRelativeFallback(t *testing.T) {
	s := newOverlay(t, filepath.Join(t.TempDir(), strings.Repeat("long-root-", 6)))
	const n = 100
	parent := ""
	for i := 0; i < n; i++ {
		key := "active"
		mounts, err := s.Prepare(key, parent)
		if err != nil {
			t.Fatalf("Prepare layer %d: %v", i, err)
		}
		writeFiles(t, writableDir(t, mounts), map[string]string{
			"f" + itoa(i): itoa(i),
			"top":         itoa(i),
		})
		name := "layer-" + itoa(i)
		if err := s.Commit(name, key); err != nil {
			t.Fatal(err)
		}
		parent = name
	}
	mounts, err := s.Prepare("ctr", parent)
	if err != nil {
		t.Fatal(err)
	}
	low, _ := option(mounts[0], "lowerdir")
	if got := len(strings.Split(low, ":")); got != n {
		t.Fatalf("lowerdir has %d entries, want %d", got, n)
	}
	data := strings.Join(mounts[0].Options, ",")
	if len(data) <= mountDataMax() {
		t.Fatalf("absolute options take %d bytes: the test root is too short to need the fallback", len(data))
	}
	target := t.TempDir()
	t.Cleanup(func() { unix.Unmount(target, unix.MNT_DETACH) })
	if err := MountAll(mounts, target); err != nil {
		t.Fatalf("MountAll with %d-byte options: %v", len(data), err)
	}
	want := map[string]string{"top": itoa(n - 1)}
	for i := 0; i < n; i++ {
		want["f"+itoa(i)] = itoa(i)
	}
	checkFiles(t, target, want)
	writeFiles(t, target, map[string]string{"top": "ctr"})
	checkFiles(t, writableDir(t, mounts), map[string]string{"top": "ctr"})
	wd, _ := os.Getwd()
	if err := Unmount(target); err != nil {
		t.Fatal(err)
	}
	if now, _ := os.Getwd(); now != wd {
		t.Errorf("working directory changed from %s to %s", wd, now)
	}
	checkFiles(t, target, map[string]string{"top": ""})
}

func TestOverlay100LayersFitMountData(t *testing.T) {
	// A root of ordinary length: its absolute options fit one page and
	// mount with a plain mount(2).
	root, err := os.MkdirTemp("/tmp", "snap-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	s := newOverlay(t, root)
	const n = 100
	parent := ""
	for i := 0; i < n; i++ {
		mounts, err := s.Prepare("active", parent)
		if err != nil {
			t.Fatalf("Prepare layer %d: %v", i, err)
		}
		writeFiles(t, writableDir(t, mounts), map[string]string{"f" + itoa(i): itoa(i), "top": itoa(i)})
		parent = "layer-" + itoa(i)
		if err := s.Commit(parent, "active"); err != nil {
			t.Fatal(err)
		}
	}
	for _, view := range []bool{false, true} {
		var mounts []specs.Mount
		var err error
		if view {
			mounts, err = s.View("view", parent)
		} else {
			mounts, err = s.Prepare("ctr", parent)
		}
		if err != nil {
			t.Fatal(err)
		}
		if n := len(strings.Join(mounts[0].Options, ",")); n > mountDataMax() {
			t.Fatalf("options take %d bytes under %s", n, root)
		}
		target := t.TempDir()
		mountForTest(t, mounts, target)
		want := map[string]string{"top": itoa(n - 1)}
		for i := 0; i < n; i++ {
			want["f"+itoa(i)] = itoa(i)
		}
		checkFiles(t, target, want)
	}
}

func TestOverlayLayerLimits(t *testing.T) {
	o := &overlay{s: &snapshotter{root: "/r"}}
	chain := make([]uint64, maxOverlayLowers)
	for i := range chain {
		chain[i] = uint64(len(chain) - i)
	}
	if err := o.check("k", KindActive, 501, chain); err != nil {
		t.Errorf("%d layers: %v", len(chain), err)
	}
	if err := o.check("k", KindActive, 502, append([]uint64{501}, chain...)); err == nil || !strings.Contains(err.Error(), "501 parent layers") {
		t.Errorf("501 layers: %v", err)
	}
	// Seven-digit ids: 500 relative paths no longer fit one page.
	for i := range chain {
		chain[i] += 1_000_000
	}
	if err := o.check("k", KindView, 2_000_000, chain); err == nil || !strings.Contains(err.Error(), "mount data limit") {
		t.Errorf("500 long ids: %v", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestOverlayCommitWithParent unpacks the layers of a chain side by side,
// each in a snapshot without parent, and stacks them at Commit: the result
// must show what a chain prepared layer on layer shows.
func TestOverlayCommitWithParent(t *testing.T) {
	s := newOverlay(t, t.TempDir())
	if !CanRebase(s) {
		t.Fatal("CanRebase(overlay) = false")
	}
	var keys []string
	for i, files := range layerFiles {
		key := "unpack-" + itoa(i)
		mounts, err := s.Prepare(key, "")
		if err != nil {
			t.Fatal(err)
		}
		dir := writableDir(t, mounts)
		for name, content := range files {
			if content != "" {
				writeFiles(t, dir, map[string]string{name: content})
			} else if err := unix.Mknod(filepath.Join(dir, name), unix.S_IFCHR, 0); err != nil {
				t.Fatal(err)
			}
		}
		keys = append(keys, key)
	}
	// Out of order: layer2 cannot go on layer1 before layer1 exists.
	if err := s.Commit("layer2", keys[1], WithParent("layer1")); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"layer1"`) {
		t.Fatalf("Commit on a missing parent: %v, want not found naming it", err)
	}
	if _, err := s.Stat(keys[1]); err != nil {
		t.Fatalf("a refused Commit must leave the active snapshot: %v", err)
	}
	parent := ""
	for i, key := range keys {
		name := "layer" + itoa(i+1)
		var opts []Opt
		if parent != "" {
			opts = append(opts, WithParent(parent))
		}
		if err := s.Commit(name, key, opts...); err != nil {
			t.Fatalf("Commit(%q, %q, WithParent(%q)): %v", name, key, parent, err)
		}
		if info, err := s.Stat(name); err != nil || info.Parent != parent {
			t.Fatalf("Stat(%q) = %+v, %v; want parent %q", name, info, err, parent)
		}
		parent = name
	}
	mounts, err := s.View("view", "layer3")
	if err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	mountForTest(t, mounts, target)
	checkFiles(t, target, mergedFiles)

	// A snapshot prepared on a parent cannot change it; Prepare and View
	// take no WithParent.
	if _, err := s.Prepare("on-1", "layer1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit("moved", "on-1", WithParent("layer2")); !errors.Is(err, ErrFailedPrecondition) {
		t.Errorf("Commit of a snapshot prepared on layer1 WithParent(layer2): %v, want failed precondition", err)
	}
	if _, err := s.Prepare("p", "", WithParent("layer1")); err == nil {
		t.Error("Prepare accepted WithParent")
	}
}

// TestOverlayCheckLeftovers: a process killed during the overlay check
// leaves its mount and directory; the next check removes them.
func TestOverlayCheckLeftovers(t *testing.T) {
	root := t.TempDir()
	td := filepath.Join(root, "overlay-check-killed")
	for _, d := range []string{"l1", "upper", "work", "merged"} {
		if err := os.MkdirAll(filepath.Join(td, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	merged := filepath.Join(td, "merged")
	opts := "lowerdir=" + filepath.Join(td, "l1") + ",upperdir=" + filepath.Join(td, "upper") + ",workdir=" + filepath.Join(td, "work")
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(merged, unix.MNT_DETACH) })
	sn, err := NewOverlay(root)
	if err != nil {
		t.Fatal(err)
	}
	sn.Close()
	if _, err := os.Stat(td); !os.IsNotExist(err) {
		t.Errorf("the killed check's directory is still there: %v", err)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mi), merged) {
		t.Errorf("the killed check's mount is still there")
	}
}

// TestOverlayVolatile: Volatile adds overlayfs's "volatile" option to a
// writable overlay only; such a mount works, and the layer mounts again
// afterwards (MountAll clears the mark that makes the kernel refuse it),
// volatile or not, keeping what was written.
func TestOverlayVolatile(t *testing.T) {
	s := newOverlay(t, t.TempDir())
	buildChain(t, s, true)
	mounts, err := s.Prepare("ctr", "layer3")
	if err != nil {
		t.Fatal(err)
	}
	vm := Volatile(mounts)
	if len(vm) != 1 || !hasOption(vm[0], "volatile") {
		t.Fatalf("Volatile(%+v) = %+v", mounts, vm)
	}
	if hasOption(mounts[0], "volatile") {
		t.Fatal("Volatile changed its argument")
	}
	view, err := s.View("v", "layer3")
	if err != nil {
		t.Fatal(err)
	}
	if got := Volatile(view); hasOption(got[0], "volatile") {
		t.Errorf("Volatile of a read-only view: %+v", got)
	}
	if got := Volatile([]specs.Mount{bindMount(t.TempDir(), false)}); hasOption(got[0], "volatile") {
		t.Errorf("Volatile of a bind mount: %+v", got)
	}

	target := t.TempDir()
	t.Cleanup(func() { unix.Unmount(target, unix.MNT_DETACH) })
	for i, ms := range [][]specs.Mount{vm, vm, mounts} {
		if err := MountAll(ms, target); err != nil {
			t.Fatalf("mount %d (%v): %v", i, ms[0].Options, err)
		}
		checkFiles(t, target, map[string]string{"c": "3"})
		if i > 0 {
			checkFiles(t, target, map[string]string{"n" + itoa(i-1): itoa(i - 1)})
		}
		writeFiles(t, target, map[string]string{"n" + itoa(i): itoa(i)})
		if err := Unmount(target); err != nil {
			t.Fatal(err)
		}
		work, _ := option(ms[0], "workdir")
		_, err := os.Stat(filepath.Join(work, "work", "incompat", "volatile"))
		if marked := err == nil; marked != hasOption(ms[0], "volatile") {
			t.Errorf("mount %d (%v): the volatile mark exists: %v", i, ms[0].Options, marked)
		}
	}
}
