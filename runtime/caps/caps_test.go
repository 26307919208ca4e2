package caps

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Capabilities cannot be given back, so the tests that change them re-run
// the test binary as a child with childEnv naming the function in children.
const (
	childEnv = "BERTH_CAPS_TEST_CHILD"
	dirEnv   = "BERTH_CAPS_TEST_DIR"
	uid      = 1000
)

var children = map[string]func() error{
	"sets":       childSets,
	"nochown":    childNoChown,
	"ambient":    childAmbientExec,
	"nokeepcaps": childNoKeepCaps,
	"notheld":    childNotHeld,
}

func TestMain(m *testing.M) {
	if n := os.Getenv(childEnv); n != "" {
		// Capabilities are per thread: stay on the main thread.
		runtime.LockOSThread()
		f, ok := children[n]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown child %q\n", n)
			os.Exit(3)
		}
		if err := f(); err != nil {
			fmt.Fprintf(os.Stderr, "child %s: %v\n", n, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runChild(t *testing.T, n string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+n, dirEnv+"="+dir)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("child %s timed out; stderr:\n%s", n, errOut.String())
	}
	return out.String(), errOut.String(), err
}

// statusCaps parses the Cap* lines (and Uid) of a /proc/*/status text.
func statusCaps(t *testing.T, status string) map[string]string {
	t.Helper()
	m := make(map[string]string)
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || !strings.HasPrefix(k, "Cap") && k != "Uid" {
			continue
		}
		v = strings.TrimSpace(v)
		if strings.HasPrefix(k, "Cap") {
			n, err := strconv.ParseUint(v, 16, 64)
			if err != nil {
				t.Fatalf("bad status line %q", sc.Text())
			}
			v = fmt.Sprintf("%#x", n)
		}
		m[k] = v
	}
	return m
}

func mask(names ...string) string {
	var m uint64
	for _, n := range names {
		m |= 1 << known[n]
	}
	return fmt.Sprintf("%#x", m)
}

func checkStatus(t *testing.T, stdout string, want map[string]string) {
	t.Helper()
	got := statusCaps(t, stdout)
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s = %q, want %q", k, got[k], w)
		}
	}
}

func printThreadStatus() error {
	b, err := os.ReadFile("/proc/thread-self/status")
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(b)
	return err
}

func setsConfig() *specs.LinuxCapabilities {
	return &specs.LinuxCapabilities{
		Bounding:    []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN", "CAP_CHECKPOINT_RESTORE"},
		Effective:   []string{"CAP_KILL", "CAP_NET_BIND_SERVICE"},
		Permitted:   []string{"CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_DAC_OVERRIDE", "CAP_CHECKPOINT_RESTORE"},
		Inheritable: []string{"CAP_NET_BIND_SERVICE", "CAP_KILL"},
		Ambient:     []string{"CAP_NET_BIND_SERVICE"},
	}
}

func childSets() error {
	c := setsConfig()
	if err := DropBounding(c); err != nil {
		return err
	}
	if err := Apply(c); err != nil {
		return err
	}
	return printThreadStatus()
}

func TestDropBoundingAndApply(t *testing.T) {
	c := setsConfig()
	if err := Validate(c); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := runChild(t, "sets")
	if err != nil {
		t.Fatalf("child: %v\nstderr:\n%s", err, stderr)
	}
	checkStatus(t, stdout, map[string]string{
		"CapBnd": mask(c.Bounding...),
		"CapEff": mask(c.Effective...),
		"CapPrm": mask(c.Permitted...),
		"CapInh": mask(c.Inheritable...),
		"CapAmb": mask(c.Ambient...),
	})
}

// heldExcept returns the names of the capabilities the thread holds in its
// permitted set, but skip.
func heldExcept(skip string) ([]string, error) {
	cur, err := capget()
	if err != nil {
		return nil, err
	}
	var names []string
	for n, c := range known {
		if n != skip && cur.permitted&(1<<c) != 0 {
			names = append(names, n)
		}
	}
	return names, nil
}

func childNoChown() error {
	f := filepath.Join(os.Getenv(dirEnv), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		return err
	}
	// Possible before.
	if err := unix.Fchownat(unix.AT_FDCWD, f, uid, uid, 0); err != nil {
		return fmt.Errorf("chown before dropping CAP_CHOWN: %w", err)
	}
	all, err := heldExcept("CAP_CHOWN")
	if err != nil {
		return err
	}
	c := &specs.LinuxCapabilities{Bounding: all, Effective: all, Permitted: all}
	if err := DropBounding(c); err != nil {
		return err
	}
	if err := Apply(c); err != nil {
		return err
	}
	err = unix.Fchownat(unix.AT_FDCWD, f, 0, 0, 0)
	fmt.Printf("chown: %v\n", err)
	if !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("chown without CAP_CHOWN: %v, want EPERM", err)
	}
	// A capability kept works.
	if err := unix.Fchmodat(unix.AT_FDCWD, f, 0o600, 0); err != nil {
		return fmt.Errorf("chmod of a file of uid %d with CAP_FOWNER: %w", uid, err)
	}
	return printThreadStatus()
}

func TestChownFailsWithoutCapChown(t *testing.T) {
	stdout, stderr, err := runChild(t, "nochown")
	if err != nil {
		t.Fatalf("child: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	st := statusCaps(t, stdout)
	for _, k := range []string{"CapBnd", "CapEff", "CapPrm"} {
		v, err := strconv.ParseUint(st[k], 0, 64)
		if err != nil {
			t.Fatalf("%s = %q", k, st[k])
		}
		if v&(1<<unix.CAP_CHOWN) != 0 || v&(1<<unix.CAP_FOWNER) == 0 {
			t.Errorf("%s = %#x, want CAP_CHOWN dropped and CAP_FOWNER kept", k, v)
		}
	}
}

// setUID changes the calling thread's (and only its) uid and gid, like the
// runtime's init does once the thread is locked.
func setUID(id int) error {
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, uintptr(id), uintptr(id), uintptr(id)); e != 0 {
		return fmt.Errorf("setresgid %d: %w", id, e)
	}
	if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uintptr(id), uintptr(id), uintptr(id)); e != 0 {
		return fmt.Errorf("setresuid %d: %w", id, e)
	}
	return nil
}

func ambientConfig() *specs.LinuxCapabilities {
	nbs := []string{"CAP_NET_BIND_SERVICE"}
	return &specs.LinuxCapabilities{Bounding: nbs, Effective: nbs, Permitted: nbs, Inheritable: nbs, Ambient: nbs}
}

func childAmbientExec() error {
	c := ambientConfig()
	if err := DropBounding(c); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return err
	}
	if err := setUID(uid); err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0); err != nil {
		return err
	}
	if err := Apply(c); err != nil {
		return err
	}
	return unix.Exec("/usr/bin/cat", []string{"cat", "/proc/self/status"}, []string{})
}

func TestAmbientSurvivesExecAsNonRoot(t *testing.T) {
	if _, err := os.Stat("/usr/bin/cat"); err != nil {
		t.Skip("no /usr/bin/cat")
	}
	stdout, stderr, err := runChild(t, "ambient")
	if err != nil {
		t.Fatalf("child: %v\nstderr:\n%s", err, stderr)
	}
	nbs := mask("CAP_NET_BIND_SERVICE")
	checkStatus(t, stdout, map[string]string{
		"Uid":    "1000\t1000\t1000\t1000",
		"CapAmb": nbs,
		"CapEff": nbs,
		"CapPrm": nbs,
		"CapInh": nbs,
		"CapBnd": nbs,
	})
}

func childNoKeepCaps() error {
	if err := setUID(uid); err != nil {
		return err
	}
	err := Apply(ambientConfig())
	if err == nil {
		return errors.New("Apply after a uid change without keepcaps succeeded")
	}
	fmt.Println(err)
	return nil
}

func TestApplyAfterUIDChangeWithoutKeepCaps(t *testing.T) {
	stdout, stderr, err := runChild(t, "nokeepcaps")
	if err != nil {
		t.Fatalf("child: %v\nstderr:\n%s", err, stderr)
	}
	want := "process.capabilities.permitted[0]: CAP_NET_BIND_SERVICE is not in the runtime's permitted set, it cannot be granted: operation not permitted"
	if strings.TrimSpace(stdout) != want {
		t.Fatalf("Apply error:\n got %q\nwant %q", strings.TrimSpace(stdout), want)
	}
}

// childNotHeld asks for a capability the runtime does not hold (in this
// sandbox CAP_SYS_RESOURCE is missing from the bounding set).
func childNotHeld() error {
	cur, err := capget()
	if err != nil {
		return err
	}
	last, err := lastCap()
	if err != nil {
		return err
	}
	for c := 0; c <= last; c++ {
		if cur.permitted&(1<<c) != 0 {
			continue
		}
		err := Apply(&specs.LinuxCapabilities{Permitted: []string{"CAP_KILL", name(c)}})
		if err == nil {
			return fmt.Errorf("Apply with %s, which the runtime lacks, succeeded", name(c))
		}
		fmt.Println(name(c))
		fmt.Println(err)
		return nil
	}
	fmt.Println("SKIP")
	return nil
}

func TestApplyCapabilityNotHeld(t *testing.T) {
	stdout, stderr, err := runChild(t, "notheld")
	if err != nil {
		t.Fatalf("child: %v\nstderr:\n%s", err, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if lines[0] == "SKIP" {
		t.Skip("the runtime holds every capability the kernel knows")
	}
	if len(lines) != 2 {
		t.Fatalf("child output %q", stdout)
	}
	want := "process.capabilities.permitted[1]: " + lines[0] + " is not in the runtime's permitted set"
	if !strings.HasPrefix(lines[1], want) {
		t.Fatalf("Apply error:\n got %q\nwant %q...", lines[1], want)
	}
}
