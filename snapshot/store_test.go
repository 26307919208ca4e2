package snapshot

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// recordOf returns key's record, read through the store.
func recordOf(t *testing.T, s Snapshotter, key string) *record {
	t.Helper()
	var r *record
	err := s.(*snapshotter).ms.view(func(tx metaTx) error {
		if x, ok := tx.get(key); ok {
			c := *x
			r = &c
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if r == nil {
		t.Fatalf("no record for %q", key)
	}
	return r
}

func TestCrashLeftovers(t *testing.T) {
	root := t.TempDir()
	s := newOverlay(t, root)
	if _, err := s.Prepare("layer-active", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit("layer", "layer-active"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prepare("ctr-active", "layer"); err != nil {
		t.Fatal(err)
	}
	ctr := recordOf(t, s, "ctr-active")
	s.Close()

	// A Prepare that crashed before writing its record.
	orphan := filepath.Join(root, snapshotsDir, "999")
	if err := os.MkdirAll(filepath.Join(orphan, "fs"), 0o700); err != nil {
		t.Fatal(err)
	}
	// A Commit that crashed before its rename: the new record sits in a
	// temporary file beside the old one.
	dir := filepath.Join(root, snapshotsDir, itoa(int(ctr.ID)))
	if err := os.WriteFile(filepath.Join(dir, ".info.json.tmp-123"), []byte(`{"id":`), 0o600); err != nil {
		t.Fatal(err)
	}

	s = newOverlay(t, root)
	if _, err := os.Stat(orphan); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("orphan directory not removed: %v", err)
	}
	if info, err := s.Stat("ctr-active"); err != nil || info.Kind != KindActive || info.Parent != "layer" {
		t.Errorf("active snapshot after a crashed commit: %+v, %v", info, err)
	}
	if err := s.Commit("ctr", "ctr-active"); err != nil {
		t.Fatalf("commit after the crash: %v", err)
	}
	if r := recordOf(t, s, "ctr"); r.ID != ctr.ID || r.Kind != KindCommitted {
		t.Errorf("committed record %+v, want id %d", r, ctr.ID)
	}
	if _, err := os.Stat(filepath.Join(dir, "work")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("committed snapshot keeps its work dir: %v", err)
	}

	// Ids are never reused, even after removing the newest.
	if err := s.Remove("ctr"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prepare("next", "layer"); err != nil {
		t.Fatal(err)
	}
	if r := recordOf(t, s, "next"); r.ID <= ctr.ID {
		t.Errorf("new id %d reuses the removed newest id %d", r.ID, ctr.ID)
	}

	// A damaged record is an error naming its file, not a silent loss.
	if err := os.WriteFile(filepath.Join(root, snapshotsDir, itoa(int(recordOf(t, s, "layer").ID)), infoFile), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat("next"); err == nil || !strings.Contains(err.Error(), infoFile) {
		t.Errorf("Stat with a damaged record: %v", err)
	}
}

func TestErrorsNameKey(t *testing.T) {
	s := newOverlay(t, t.TempDir())
	if _, err := s.Prepare("a", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit("c", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Prepare("b", ""); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		err  error
		is   error
		key  string
	}{
		{"stat missing", func() error { _, err := s.Stat("nope"); return err }(), ErrNotFound, "nope"},
		{"prepare existing", func() error { _, err := s.Prepare("b", ""); return err }(), ErrAlreadyExists, "b"},
		{"prepare missing parent", func() error { _, err := s.Prepare("x", "nope"); return err }(), ErrNotFound, "nope"},
		{"prepare on active", func() error { _, err := s.Prepare("x", "b"); return err }(), ErrFailedPrecondition, "b"},
		{"view existing", func() error { _, err := s.View("c", ""); return err }(), ErrAlreadyExists, "c"},
		{"mounts committed", func() error { _, err := s.Mounts("c"); return err }(), ErrFailedPrecondition, "c"},
		{"mounts missing", func() error { _, err := s.Mounts("nope"); return err }(), ErrNotFound, "nope"},
		{"commit missing", s.Commit("z", "nope"), ErrNotFound, "nope"},
		{"commit committed", s.Commit("z", "c"), ErrFailedPrecondition, "c"},
		{"commit onto existing", s.Commit("c", "b"), ErrAlreadyExists, "c"},
		{"remove missing", s.Remove("nope"), ErrNotFound, "nope"},
		{"usage missing", func() error { _, _, err := s.Usage("nope"); return err }(), ErrNotFound, "nope"},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.is) || !strings.Contains(fmtErr(c.err), `"`+c.key+`"`) {
			t.Errorf("%s: %v, want %v naming %q", c.name, c.err, c.is, c.key)
		}
	}
	if _, err := s.Prepare("", ""); err == nil {
		t.Error("Prepare with an empty key succeeded")
	}
	// Failed operations changed nothing.
	if got := sortedKeys(walkKeys(t, s)); !reflect.DeepEqual(got, []string{"b", "c"}) {
		t.Errorf("after failures: %v", got)
	}
	s.Close()
	if _, err := s.Stat("c"); !errors.Is(err, ErrClosed) {
		t.Errorf("Stat after Close: %v", err)
	}
}

func fmtErr(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestLabelsAndUsage(t *testing.T) {
	root := t.TempDir()
	s := newOverlay(t, root)
	m, err := s.Prepare("a", "", WithLabels(map[string]string{"k": "v"}))
	if err != nil {
		t.Fatal(err)
	}
	dir := writableDir(t, m)
	writeFiles(t, dir, map[string]string{"x": strings.Repeat("x", 10000), "d/y": "y"})
	if err := os.Link(filepath.Join(dir, "x"), filepath.Join(dir, "x2")); err != nil {
		t.Fatal(err)
	}
	size, inodes, err := s.Usage("a")
	if err != nil {
		t.Fatal(err)
	}
	// fs/, x (x2 is the same inode), d/, d/y.
	if inodes != 4 || size < 10001 {
		t.Errorf("Usage = %d bytes, %d inodes; want >= 10001 bytes, 4 inodes", size, inodes)
	}
	if err := s.Commit("c", "a"); err != nil {
		t.Fatal(err)
	}
	// A committed snapshot's usage was measured at commit and is read
	// from its record: a file that appeared since (which cannot happen
	// to a real committed snapshot) does not count, and neither does a
	// walk of the tree.
	writeFiles(t, dir, map[string]string{"late": strings.Repeat("l", 50000)})
	if csize, cinodes, err := s.Usage("c"); err != nil || csize != size || cinodes != inodes {
		t.Errorf("Usage(c) = %d bytes, %d inodes, %v; want the %d, %d measured at commit", csize, cinodes, err, size, inodes)
	}
	// Reopened, the record still has it.
	s2 := newOverlay(t, root)
	if csize, cinodes, err := s2.Usage("c"); err != nil || csize != size || cinodes != inodes {
		t.Errorf("reopened: Usage(c) = %d bytes, %d inodes, %v; want %d, %d", csize, cinodes, err, size, inodes)
	}
	os.Remove(filepath.Join(dir, "late"))
	if info, _ := s.Stat("c"); info.Labels["k"] != "v" {
		t.Errorf("labels not kept by Commit: %v", info.Labels)
	}
	if _, err := s.Prepare("b", "c"); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit("c2", "b", WithLabels(map[string]string{"n": "1"})); err != nil {
		t.Fatal(err)
	}
	if info, _ := s.Stat("c2"); !reflect.DeepEqual(info.Labels, map[string]string{"n": "1"}) {
		t.Errorf("Commit WithLabels: %v", info.Labels)
	}
	// The child's usage is its own changes only.
	if _, inodes, err := s.Usage("c2"); err != nil || inodes != 1 {
		t.Errorf("Usage(c2) = %d inodes, %v; want 1", inodes, err)
	}
}

func TestOverlayUnsupportedFallsBack(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	for _, d := range []string{"l", "u", "w", "m"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	m := filepath.Join(base, "m")
	t.Cleanup(func() { unix.Unmount(m, unix.MNT_DETACH) })
	if err := unix.Mount("overlay", m, "overlay", 0, "lowerdir="+base+"/l,upperdir="+base+"/u,workdir="+base+"/w"); err != nil {
		t.Fatal(err)
	}
	// overlayfs cannot be an overlay's upper directory.
	root := filepath.Join(m, "root")
	if _, err := NewOverlay(root); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("NewOverlay on overlayfs: %v, want ErrUnsupported", err)
	}
	if _, err := os.Stat(filepath.Join(root, overlayMarker)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("marker written after a failed check: %v", err)
	}
	s := newNative(t, root)
	if _, err := buildChainOK(s); err != nil {
		t.Fatalf("native fallback: %v", err)
	}

	// Where it works, the check leaves its marker.
	good := t.TempDir()
	newOverlay(t, good)
	if _, err := os.Stat(filepath.Join(good, overlayMarker)); err != nil {
		t.Errorf("no marker after a successful check: %v", err)
	}
}

// buildChainOK prepares and commits two layers without a testing.T.
func buildChainOK(s Snapshotter) (string, error) {
	if _, err := s.Prepare("a", ""); err != nil {
		return "", err
	}
	if err := s.Commit("l1", "a"); err != nil {
		return "", err
	}
	if _, err := s.Prepare("b", "l1"); err != nil {
		return "", err
	}
	return "l2", s.Commit("l2", "b")
}

func TestMountAllBindReadOnly(t *testing.T) {
	s := newOverlay(t, t.TempDir())
	m, err := s.Prepare("a", "")
	if err != nil {
		t.Fatal(err)
	}
	writeFiles(t, writableDir(t, m), map[string]string{"f": "1"})
	if err := s.Commit("c", "a"); err != nil {
		t.Fatal(err)
	}
	v, err := s.View("v", "c")
	if err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	t.Cleanup(func() { unix.Unmount(target, unix.MNT_DETACH) })
	if err := MountAll(v, target); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, target, map[string]string{"f": "1"})
	if err := os.WriteFile(filepath.Join(target, "g"), nil, 0o644); !errors.Is(err, unix.EROFS) {
		t.Errorf("write into MountAll'd view: %v, want EROFS", err)
	}
	if err := Unmount(target); err != nil {
		t.Fatal(err)
	}
	if err := Unmount(target); err != nil {
		t.Errorf("Unmount of an unmounted target: %v", err)
	}
	checkFiles(t, target, map[string]string{"f": ""})
}

// TestVolatileRecord: a snapshot prepared WithVolatileRecord keeps its
// record in volatile.json and leaves last-id alone; Commit makes the
// record durable (info.json); a volatile record torn by a crash of the
// host makes its snapshot an orphan that the next open removes, without
// failing the store.
func TestVolatileRecord(t *testing.T) {
	root := t.TempDir()
	s := newOverlay(t, root)
	if _, err := s.Prepare("base-active", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit("base", "base-active"); err != nil {
		t.Fatal(err)
	}
	lastID := func() string {
		b, err := os.ReadFile(filepath.Join(root, lastIDFile))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	before := lastID()
	if _, err := s.Prepare("ctr", "base", WithVolatileRecord()); err != nil {
		t.Fatal(err)
	}
	r := recordOf(t, s, "ctr")
	dir := filepath.Join(root, snapshotsDir, itoa(int(r.ID)))
	if !r.Volatile {
		t.Errorf("record %+v: not volatile", r)
	}
	if info, err := s.Stat("ctr"); err != nil || !info.Volatile || info.Parent != "base" {
		t.Errorf("Stat = %+v, %v; want volatile, on base", info, err)
	}
	if _, err := os.Stat(filepath.Join(dir, volatileFile)); err != nil {
		t.Errorf("volatile record file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, infoFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a volatile snapshot has %s: %v", infoFile, err)
	}
	if got := lastID(); got != before {
		t.Errorf("last-id %q after a volatile Prepare, want %q unchanged", got, before)
	}
	if r.ID <= recordOf(t, s, "base").ID {
		t.Errorf("volatile id %d not above the present ids", r.ID)
	}

	// Commit: durable from then on.
	if err := s.Commit("ctr-image", "ctr"); err != nil {
		t.Fatal(err)
	}
	if c := recordOf(t, s, "ctr-image"); c.Volatile || c.ID != r.ID {
		t.Errorf("committed record %+v: want durable, id %d", c, r.ID)
	}
	if _, err := os.Stat(filepath.Join(dir, infoFile)); err != nil {
		t.Errorf("committed snapshot's %s: %v", infoFile, err)
	}
	if _, err := os.Stat(filepath.Join(dir, volatileFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("committed snapshot keeps %s: %v", volatileFile, err)
	}

	// Remove of a volatile snapshot removes its record and directory.
	if _, err := s.Prepare("gone", "base", WithVolatileRecord()); err != nil {
		t.Fatal(err)
	}
	gone := recordOf(t, s, "gone")
	if err := s.Remove("gone"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, snapshotsDir, itoa(int(gone.ID)))); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("removed volatile snapshot's directory: %v", err)
	}

	// A host crash tore a volatile record: an orphan, removed at open.
	if _, err := s.Prepare("torn", "base", WithVolatileRecord()); err != nil {
		t.Fatal(err)
	}
	torn := filepath.Join(root, snapshotsDir, itoa(int(recordOf(t, s, "torn").ID)))
	s.Close()
	if err := os.WriteFile(filepath.Join(torn, volatileFile), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	s = newOverlay(t, root)
	if _, err := s.Stat("torn"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat of a torn volatile snapshot: %v, want not found", err)
	}
	if _, err := os.Stat(torn); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("torn volatile snapshot's directory not removed at open: %v", err)
	}
	if info, err := s.Stat("ctr-image"); err != nil || info.Kind != KindCommitted {
		t.Errorf("committed snapshot after the torn record: %+v, %v", info, err)
	}
}
