package runtime_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestTmpfsSize(t *testing.T) {
	r := newRT(t)
	s := newSpec(t)
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs",
		Options: []string{"size=1m", "mode=1777"}})
	// 2 MiB cannot fit in a 1 MiB tmpfs.
	out := r.sh(s, `grep ' /tmp ' /proc/mounts | grep -o 'size=[0-9a-z]*'
if dd if=/dev/zero of=/tmp/big bs=1024 count=2048 2>/dev/null; then echo fits; else echo full; fi
stat -c %a /tmp`)
	if out != "size=1024k\nfull\n1777\n" {
		t.Errorf("got %q, want size=1024k, full, 1777", out)
	}
}

func TestBindReadonly(t *testing.T) {
	r := newRT(t)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "f"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s := newSpec(t)
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/home", Type: "bind", Source: src,
		Options: []string{"rbind", "ro"}})
	out := r.sh(s, `cat /home/f; if touch /home/new 2>/dev/null; then echo wrote; else echo refused; fi`)
	if out != "hello\nrefused\n" {
		t.Errorf("got %q, want the file and a refused write", out)
	}
	if _, err := os.Stat(filepath.Join(src, "new")); err == nil {
		t.Errorf("the container wrote into the read-only bind's source")
	}
}

// TestReadonlyPaths: the template's readonlyPaths include /proc/sys.
func TestReadonlyPaths(t *testing.T) {
	r := newRT(t)
	s := newSpec(t)
	if !contains(s.Linux.ReadonlyPaths, "/proc/sys") {
		t.Fatalf("template readonlyPaths %v lack /proc/sys", s.Linux.ReadonlyPaths)
	}
	// In the container's own network namespace: a write that got through
	// would not touch the host.
	out := r.sh(s, `if echo 1 > /proc/sys/net/ipv4/ip_forward; then echo wrote; else echo refused; fi 2>&1`)
	if !strings.Contains(out, "refused") || !strings.Contains(out, "Read-only file system") {
		t.Errorf("write to /proc/sys: %q, want refused with EROFS", out)
	}
}

func TestMaskedPaths(t *testing.T) {
	if fi, err := os.Stat("/proc/timer_list"); err != nil || fi.Mode()&os.ModeType != 0 {
		t.Skip("no /proc/timer_list here")
	}
	r := newRT(t)
	script := `wc -c < /proc/timer_list; stat -c '%F %t:%T' /proc/timer_list; ls /proc/acpi 2>&1 | wc -l`
	// Without masking the file has content: the test can tell the
	// difference.
	s := newSpec(t)
	s.Linux.MaskedPaths = nil
	if out := lines(r.sh(s, script)); len(out) < 1 || strings.TrimSpace(out[0]) == "0" {
		t.Fatalf("unmasked /proc/timer_list is empty (%q): cannot test masking", out)
	}
	s = newSpec(t)
	s.Linux.MaskedPaths = []string{"/proc/timer_list", "/proc/acpi"}
	out := lines(r.sh(s, script))
	if len(out) != 3 || strings.TrimSpace(out[0]) != "0" || out[1] != "character special file 1:3" || strings.TrimSpace(out[2]) != "0" {
		t.Errorf("masked: %q, want 0 bytes, the null device 1:3, an empty /proc/acpi", out)
	}
}

func TestRootReadonly(t *testing.T) {
	r := newRT(t)
	s := newSpec(t)
	s.Root.Readonly = true
	out := r.sh(s, `if touch /newfile 2>&1; then echo wrote; fi; grep ' / ' /proc/mounts | grep -c '[ ,]ro[ ,]'`)
	if !strings.Contains(out, "Read-only file system") || strings.Contains(out, "wrote") || !strings.HasSuffix(out, "1\n") {
		t.Errorf("got %q, want a refused write on a ro root", out)
	}
	if _, err := os.Stat(filepath.Join(rootfsDir, "newfile")); err == nil {
		t.Errorf("the container wrote into the shared rootfs")
	}
	// A writable root (a copy) does take the write.
	s = newSpec(t)
	s.Root = &specs.Root{Path: copyRootfs(t)}
	r.sh(s, "touch /newfile")
	if _, err := os.Stat(filepath.Join(s.Root.Path, "newfile")); err != nil {
		t.Errorf("write to a read-write root: %v", err)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
