package rootfs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func init() {
	scenarios["tmpcopyup"] = scenario{afterFinalize: checkTmpcopyup}
}

// TestTmpcopyup: a tmpfs with "tmpcopyup" over /run starts with the image's
// /run, modes and owners kept, symlinks copied as links (podman's
// --read-only and --tmpfs ask for it).
func TestTmpcopyup(t *testing.T) {
	rootfs := makeRootfs(t)
	run := filepath.Join(rootfs, "run")
	if err := os.MkdirAll(filepath.Join(run, "sub"), 0o750); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(run, "sub", "pidfile"), "42")
	if err := os.Chmod(filepath.Join(run, "sub", "pidfile"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(run, "sub"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(run, "link")); err != nil {
		t.Fatal(err)
	}
	s := baseSpec(rootfs)
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/run", Type: "tmpfs", Source: "tmpfs",
		Options: []string{"nosuid", "nodev", "tmpcopyup", "size=1m"}})
	runChild(t, &childConfig{Scenario: "tmpcopyup", Rootfs: rootfs, Spec: s})
	// The image's files stay where they were, untouched.
	if data, err := os.ReadFile(filepath.Join(run, "sub", "pidfile")); err != nil || string(data) != "42" {
		t.Errorf("image file changed: %q, %v", data, err)
	}
}

func checkTmpcopyup(cfg *childConfig) error {
	var e errList
	e.checkMount("/run", "tmpfs", "nosuid", "nodev")
	if data, err := os.ReadFile("/run/sub/pidfile"); err != nil || string(data) != "42" {
		e.add("copied file: %q, %v", data, err)
	}
	var st unix.Stat_t
	if err := unix.Stat("/run/sub/pidfile", &st); err != nil || st.Mode&0o777 != 0o640 {
		e.add("copied file mode %o (%v), want 640", st.Mode&0o777, err)
	}
	if err := unix.Stat("/run/sub", &st); err != nil || st.Uid != 1000 || st.Mode&0o777 != 0o750 {
		e.add("copied dir uid %d mode %o (%v), want 1000 and 750", st.Uid, st.Mode&0o777, err)
	}
	if target, err := os.Readlink("/run/link"); err != nil || target != "/etc/passwd" {
		e.add("copied symlink: %q, %v", target, err)
	}
	// Writes go to the tmpfs, not the image.
	if err := os.WriteFile("/run/new", []byte("x"), 0o644); err != nil {
		e.add("write to the tmpfs: %v", err)
	}
	if err := e.err(); err != nil {
		return fmt.Errorf("tmpcopyup: %w", err)
	}
	return nil
}
