package devicefilter

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func ptr[T any](v T) *T { return &v }

const helperEnv = "BERTH_DEVICEFILTER_TEST_HELPER"

// TestMain lets the test binary act as a child that waits until it is in
// the cgroup, then tries to open the devices named in the environment
// variable and exits with a bit set for every open that failed with EPERM.
func TestMain(m *testing.M) {
	if paths := os.Getenv(helperEnv); paths != "" {
		var b [1]byte
		if _, err := os.Stdin.Read(b[:]); err != nil {
			os.Exit(100)
		}
		code := 0
		for i, p := range strings.Split(paths, ",") {
			f, err := os.Open(p)
			switch {
			case err == nil:
				f.Close()
			case errors.Is(err, syscall.EPERM):
				code |= 1 << i
			default:
				fmt.Fprintln(os.Stderr, err)
				os.Exit(101)
			}
		}
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func TestParseRule(t *testing.T) {
	cases := []struct {
		in   specs.LinuxDeviceCgroup
		want string
		err  bool
	}{
		{specs.LinuxDeviceCgroup{}, "a *:* rwm", false},
		{specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "wr"}, "c 1:3 rw", false},
		{specs.LinuxDeviceCgroup{Type: "b", Major: ptr(int64(8)), Minor: ptr(int64(-1)), Access: "m"}, "b 8:* m", false},
		{specs.LinuxDeviceCgroup{Type: "p"}, "", true},
		{specs.LinuxDeviceCgroup{Type: "c", Access: "rr"}, "", true},
		{specs.LinuxDeviceCgroup{Type: "c", Major: ptr(int64(-2))}, "", true},
	}
	for _, c := range cases {
		r, err := ParseRule(c.in)
		if c.err {
			if err == nil {
				t.Errorf("%+v: no error", c.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("%+v: %v", c.in, err)
			continue
		}
		if got := r.V1String(); got != c.want {
			t.Errorf("%+v: got %q, want %q", c.in, got, c.want)
		}
	}
	if _, err := ParseRules([]specs.LinuxDeviceCgroup{{}, {Type: "x"}}); err == nil || !strings.Contains(err.Error(), "linux.resources.devices[1]") {
		t.Errorf("ParseRules error = %v, want one naming linux.resources.devices[1]", err)
	}
}

// TestProgramLoads checks that the kernel verifier accepts the generated
// programs for several rule lists (an allow-all rule makes the rest
// unreachable, which the verifier would reject if emitted).
func TestProgramLoads(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	lists := [][]specs.LinuxDeviceCgroup{
		nil,
		{{Allow: false}},
		{{Allow: true}},
		{{Allow: false}, {Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rwm"}},
		{{Allow: true, Type: "c", Access: "r"}, {Allow: true}, {Allow: false, Type: "b", Major: ptr(int64(8))}},
	}
	for i, l := range lists {
		rules, err := ParseRules(l)
		if err != nil {
			t.Fatal(err)
		}
		insns, err := Generate(rules)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.CGroupDevice, License: "Apache", Instructions: insns})
		if err != nil {
			t.Errorf("list %d: %v\n%v", i, err, insns)
			continue
		}
		p.Close()
	}
}

// cgroup2Dir creates a test cgroup in the cgroup2 hierarchy (the unified
// one of a hybrid host, or /sys/fs/cgroup) and removes it at the end.
func cgroup2Dir(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	var root string
	for _, r := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(r, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			root = r
			break
		}
	}
	if root == "" {
		t.Skip("no cgroup2 hierarchy mounted")
	}
	dir := filepath.Join(root, fmt.Sprintf("berth-test-devicefilter-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unix.Rmdir(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	return dir
}

// TestApplyReplaces attaches filters to a real cgroup2 directory, checks
// that re-applying replaces the program, and that a process in the cgroup
// is denied /dev/zero but not /dev/null.
func TestApplyReplaces(t *testing.T) {
	dir := cgroup2Dir(t)
	allowAll := []specs.LinuxDeviceCgroup{{Allow: true}}
	onlyNull := []specs.LinuxDeviceCgroup{
		{Allow: false},
		{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rw"},
	}
	for i, rules := range [][]specs.LinuxDeviceCgroup{allowAll, onlyNull, onlyNull} {
		if err := Apply(dir, rules); err != nil {
			t.Fatalf("apply %d: %v", i, err)
		}
		ids, err := Attached(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) != 1 {
			t.Fatalf("after apply %d: %d programs attached, want 1", i, len(ids))
		}
	}

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=/dev/null,/dev/zero")
	cmd.Stdin, cmd.Stderr = r, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0); err != nil {
		t.Fatal(err)
	}
	w.Write([]byte{'\n'})
	err = cmd.Wait()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	if code != 2 { // bit 1: /dev/zero denied; bit 0 clear: /dev/null opened
		t.Errorf("helper exit code %d, want 2 (/dev/null allowed, /dev/zero denied)", code)
	}
}
