package snapshot

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(runHelper())
	}
	os.Exit(m.Run())
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (mounts)")
	}
}

// mountForTest mounts mounts on target with plain mount(2) calls (not
// MountAll, so that it checks the descriptions themselves), and unmounts
// them when the test ends, also on failure.
func mountForTest(t *testing.T, mounts []specs.Mount, target string) {
	t.Helper()
	for _, m := range mounts {
		t.Cleanup(func() { unix.Unmount(target, unix.MNT_DETACH) })
		var ro, rec bool
		var data []string
		for _, o := range m.Options {
			switch o {
			case "ro":
				ro = true
			case "rw", "bind":
			case "rbind":
				rec = true
			default:
				data = append(data, o)
			}
		}
		if m.Type == "bind" {
			flags := uintptr(unix.MS_BIND)
			if rec {
				flags |= unix.MS_REC
			}
			if err := unix.Mount(m.Source, target, "", flags, ""); err != nil {
				t.Fatalf("bind mount %s on %s: %v", m.Source, target, err)
			}
			if ro {
				if err := unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
					t.Fatalf("remount %s ro: %v", target, err)
				}
			}
			continue
		}
		var flags uintptr
		if ro {
			flags |= unix.MS_RDONLY
		}
		if err := unix.Mount(m.Source, target, m.Type, flags, strings.Join(data, ",")); err != nil {
			t.Fatalf("mount %s %v on %s: %v", m.Type, m.Options, target, err)
		}
	}
}

// writableDir returns the directory an active snapshot's changes go to:
// the bind source or the overlay upperdir.
func writableDir(t *testing.T, mounts []specs.Mount) string {
	t.Helper()
	if len(mounts) != 1 {
		t.Fatalf("want 1 mount, got %+v", mounts)
	}
	m := mounts[0]
	if m.Type == "bind" {
		return m.Source
	}
	if v, ok := option(m, "upperdir"); ok {
		return v
	}
	t.Fatalf("mount %+v has no writable directory", m)
	return ""
}

func option(m specs.Mount, key string) (string, bool) {
	for _, o := range m.Options {
		if k, v, ok := strings.Cut(o, "="); ok && k == key {
			return v, true
		}
	}
	return "", false
}

func hasOption(m specs.Mount, opt string) bool {
	for _, o := range m.Options {
		if o == opt {
			return true
		}
	}
	return false
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// checkFiles checks that each file has the content; "" means absent.
func checkFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, want := range files {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if want == "" {
			if !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s/%s: want absent, got %q, %v", dir, name, b, err)
			}
			continue
		}
		if err != nil || string(b) != want {
			t.Errorf("%s/%s: want %q, got %q, %v", dir, name, want, b, err)
		}
	}
}

func walkKeys(t *testing.T, s Snapshotter) map[string]Info {
	t.Helper()
	out := map[string]Info{}
	if err := s.Walk(func(i Info) error {
		if _, dup := out[i.Key]; dup {
			t.Errorf("Walk: key %q twice", i.Key)
		}
		out[i.Key] = i
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// listTree returns the relative paths under dir.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if rel, _ := filepath.Rel(dir, p); rel != "." {
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}
