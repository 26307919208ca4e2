package volume

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func openStore(t *testing.T) (*Store, string) {
	t.Helper()
	root := t.TempDir()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	return s, root
}

// storeEntries counts what the store's directory holds besides its lock file.
func storeEntries(root string) int {
	entries, _ := os.ReadDir(filepath.Join(root, "volumes"))
	n := 0
	for _, e := range entries {
		if e.Name() != ".lock" {
			n++
		}
	}
	return n
}

func TestCreateGetListRemove(t *testing.T) {
	s, root := openStore(t)
	v, created, err := s.Create("data", CreateOptions{Labels: map[string]string{"a": "b"}, Options: map[string]string{"o": "1"}})
	if err != nil || !created {
		t.Fatalf("create: %v created=%v", err, created)
	}
	if v.Mountpoint != filepath.Join(root, "volumes", "data", "_data") || v.Driver != "local" || v.Anonymous {
		t.Errorf("volume %+v", v)
	}
	if st, err := os.Stat(v.Mountpoint); err != nil || !st.IsDir() {
		t.Fatalf("mountpoint: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "volumes", "data", "volume.json")); err != nil {
		t.Fatalf("record: %v", err)
	}
	// Docker's create is idempotent.
	again, created, err := s.Create("data", CreateOptions{})
	if err != nil || created {
		t.Fatalf("second create: %v created=%v", err, created)
	}
	got, err := s.Get("data")
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []Volume{again, got} {
		if !reflect.DeepEqual(x, v) {
			t.Errorf("got %+v, want %+v", x, v)
		}
	}
	anon, created, err := s.Create("", CreateOptions{Anonymous: true})
	if err != nil || !created || !anon.Anonymous || len(anon.Name) != 64 {
		t.Fatalf("anonymous: %+v %v %v", anon, created, err)
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, l := range list {
		names = append(names, l.Name)
	}
	want := []string{anon.Name, "data"}
	if anon.Name > "data" {
		want = []string{"data", anon.Name}
	}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("list %v, want %v", names, want)
	}
	if err := os.WriteFile(filepath.Join(v.Mountpoint, "f"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Size("data"); err != nil || n != 5 {
		t.Errorf("size %d %v, want 5", n, err)
	}
	if err := s.Remove("data", nil); err != nil {
		t.Fatal(err)
	}
	_, err = s.Get("data")
	if !errors.Is(err, ErrNotFound) || err.Error() != "no such volume: data" {
		t.Errorf("get after remove: %v", err)
	}
	if err := s.Remove("data", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("second remove: %v", err)
	}
	if n := storeEntries(root); n != 1 {
		t.Errorf("store holds %d entries, want only the anonymous volume (no temp or trash left)", n)
	}
}

func TestNames(t *testing.T) {
	s, _ := openStore(t)
	for _, bad := range []string{"a", "-ab", ".ab", "_ab", "a/b", "a b", "../x", "ab:c", "é1"} {
		if _, _, err := s.Create(bad, CreateOptions{}); err == nil || !strings.Contains(err.Error(), "invalid volume name") {
			t.Errorf("create %q: %v", bad, err)
		}
		if _, err := s.Get(bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("get %q: %v", bad, err)
		}
	}
	for _, good := range []string{"ab", "A1", "my_vol.2-x", "0abc"} {
		if err := ValidName(good); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
	if _, _, err := s.Create("", CreateOptions{}); err == nil {
		t.Error("a named volume without a name was created")
	}
}

func TestConcurrentCreate(t *testing.T) {
	s, root := openStore(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	createdSame := 0
	errs := []error{}
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// A second Store on the same root stands in for another process.
			st, err := Open(root)
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			_, c, err1 := st.Create("shared", CreateOptions{Labels: map[string]string{"by": fmt.Sprint(i)}})
			_, _, err2 := st.Create(fmt.Sprintf("own%d", i), CreateOptions{})
			mu.Lock()
			defer mu.Unlock()
			if c {
				createdSame++
			}
			for _, err := range []error{err1, err2} {
				if err != nil {
					errs = append(errs, err)
				}
			}
		}(i)
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if createdSame != 1 {
		t.Errorf("%d creates of one name reported created, want 1", createdSame)
	}
	list, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 21 {
		t.Errorf("%d volumes, want 21", len(list))
	}
	if n := storeEntries(root); n != 21 {
		t.Errorf("%d entries, want 21: temp directories left", n)
	}
}

func TestRemoveInUseAndPrune(t *testing.T) {
	s, _ := openStore(t)
	inUse := func(n string) bool { return n == "busy" || strings.HasPrefix(n, "f") }
	for _, n := range []string{"busy", "idle"} {
		if _, _, err := s.Create(n, CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	err := s.Remove("busy", inUse)
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "busy") {
		t.Errorf("remove in use: %v", err)
	}
	if _, err := s.Get("busy"); err != nil {
		t.Errorf("refused remove removed: %v", err)
	}
	// Anonymous volumes: one in use (name starting with f by luck is
	// forced here by retrying until we have both kinds).
	var anonUsed, anonFree string
	for anonUsed == "" || anonFree == "" {
		v, _, err := s.Create("", CreateOptions{Anonymous: true})
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case inUse(v.Name) && anonUsed == "":
			anonUsed = v.Name
		case !inUse(v.Name) && anonFree == "":
			anonFree = v.Name
		default:
			if err := s.Remove(v.Name, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	free, _ := s.Get(anonFree)
	if err := os.WriteFile(filepath.Join(free.Mountpoint, "x"), make([]byte, 1000), 0o644); err != nil {
		t.Fatal(err)
	}
	removed, n, err := s.Prune(inUse, false)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(removed, []string{anonFree}) || n != 1000 {
		t.Errorf("prune removed %v (%d bytes), want [%s] (1000)", removed, n, anonFree)
	}
	removed, _, err = s.Prune(inUse, true)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(removed, []string{"idle"}) {
		t.Errorf("prune all removed %v, want [idle]", removed)
	}
	list, _ := s.List()
	left := []string{}
	for _, v := range list {
		left = append(left, v.Name)
	}
	wantLeft := []string{anonUsed, "busy"}
	if anonUsed > "busy" {
		wantLeft = []string{"busy", anonUsed}
	}
	if !reflect.DeepEqual(left, wantLeft) {
		t.Errorf("left %v, want %v", left, wantLeft)
	}
}

func TestSeed(t *testing.T) {
	rootfs := t.TempDir()
	src := filepath.Join(rootfs, "var", "lib", "app")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(src, "sub"), 0o750))
	must(os.WriteFile(filepath.Join(src, "run.sh"), []byte("#!/bin/sh\n"), 0o755))
	must(os.WriteFile(filepath.Join(src, "sub", "secret"), []byte("s"), 0o600))
	must(os.Chmod(filepath.Join(src, "sub"), 0o710))
	must(os.Chmod(src, os.ModeSticky|0o777))
	must(os.Symlink("run.sh", filepath.Join(src, "link")))
	must(os.Symlink("/etc/passwd", filepath.Join(src, "passwd")))
	must(os.Link(filepath.Join(src, "run.sh"), filepath.Join(src, "hard")))
	must(os.Lchown(filepath.Join(src, "sub", "secret"), 1234, 5678))
	// The path reaches the directory through a symlink that must resolve
	// inside rootfs, not on the host.
	must(os.Symlink("/var/lib/app", filepath.Join(rootfs, "applink")))

	dst := t.TempDir()
	must(Seed(dst, rootfs, "/applink"))

	check := func(rel string, mode os.FileMode) {
		t.Helper()
		st, err := os.Lstat(filepath.Join(dst, rel))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode() != mode {
			t.Errorf("%s: mode %v, want %v", rel, st.Mode(), mode)
		}
	}
	check(".", os.ModeDir|os.ModeSticky|0o777)
	check("sub", os.ModeDir|0o710)
	check("run.sh", 0o755)
	check("sub/secret", 0o600)
	check("link", os.ModeSymlink|0o777)
	check("passwd", os.ModeSymlink|0o777)
	if target, err := os.Readlink(filepath.Join(dst, "passwd")); err != nil || target != "/etc/passwd" {
		t.Errorf("passwd link: %q %v", target, err)
	}
	if data, err := os.ReadFile(filepath.Join(dst, "run.sh")); err != nil || string(data) != "#!/bin/sh\n" {
		t.Errorf("run.sh: %q %v", data, err)
	}
	st, _ := os.Stat(filepath.Join(dst, "sub", "secret"))
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 1234 || sys.Gid != 5678 {
		t.Errorf("owner %d:%d, want 1234:5678", sys.Uid, sys.Gid)
	}
	a, _ := os.Stat(filepath.Join(dst, "run.sh"))
	b, _ := os.Stat(filepath.Join(dst, "hard"))
	if !os.SameFile(a, b) {
		t.Error("hard link not kept")
	}
	srcInfo, _ := os.Stat(filepath.Join(src, "run.sh"))
	if !a.ModTime().Equal(srcInfo.ModTime()) {
		t.Errorf("mtime %v, want %v", a.ModTime(), srcInfo.ModTime())
	}

	// A volume with content is left alone.
	must(os.WriteFile(filepath.Join(src, "new"), []byte("n"), 0o644))
	must(Seed(dst, rootfs, "/applink"))
	if _, err := os.Lstat(filepath.Join(dst, "new")); !os.IsNotExist(err) {
		t.Errorf("seeded a non-empty volume: %v", err)
	}
	// A path the image does not have: nothing to copy.
	empty := t.TempDir()
	must(Seed(empty, rootfs, "/no/such"))
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("seeded %d entries from a missing path", len(entries))
	}
	// A path escaping through .. or a symlink to the host's /etc stays in rootfs.
	must(os.Symlink("/etc", filepath.Join(rootfs, "etclink")))
	esc := t.TempDir()
	must(Seed(esc, rootfs, "/etclink"))
	if entries, _ := os.ReadDir(esc); len(entries) != 0 {
		t.Errorf("followed a symlink out of rootfs: copied %d entries", len(entries))
	}
}

// TestRemoveRacesCreate: a container create that finds the volume while a
// remove has decided it is unused (no container recorded yet) must not get
// the volume the remove then deletes: it waits, and makes it anew.
func TestRemoveRacesCreate(t *testing.T) {
	s, _ := openStore(t)
	if _, _, err := s.Create("data", CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	type result struct {
		v       Volume
		created bool
		err     error
	}
	done := make(chan result, 1)
	err := s.Remove("data", func(string) bool {
		// The remove saw no user. A container create starts now.
		go func() {
			v, created, err := s.Create("data", CreateOptions{})
			done <- result{v, created, err}
		}()
		time.Sleep(200 * time.Millisecond)
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !r.created {
		t.Error("create returned the volume the remove was deleting")
	}
	if _, err := os.Stat(r.v.Mountpoint); err != nil {
		t.Errorf("the volume create returned is gone: %v", err)
	}
}
