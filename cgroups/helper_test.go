package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary act as a child process (see runHelper).
const helperEnv = "BERTH_CGROUPS_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	os.Exit(m.Run())
}

// Exit codes of the "devices" helper.
const (
	exitDevicesOK     = 0
	exitNullFailed    = 10
	exitZeroOpened    = 11
	exitZeroOtherErr  = 12
	exitBadHelperMode = 2
)

// runHelper runs in the child process:
//   - "sleep" touches a little memory now and then until killed;
//   - "spin" burns CPU until killed;
//   - "devices" waits for a line on stdin, then opens /dev/null (must
//     work) and /dev/zero (must fail with EPERM).
func runHelper(mode string) int {
	switch mode {
	case "sleep":
		var ring [4][]byte
		for i := 0; ; i++ {
			b := make([]byte, 1<<20)
			for j := range b {
				if j%4096 == 0 {
					b[j] = byte(i)
				}
			}
			ring[i%len(ring)] = b
			time.Sleep(20 * time.Millisecond)
		}
	case "spin":
		for x := 0; ; x++ {
			_ = x * x
		}
	case "devices":
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			return exitBadHelperMode
		}
		f, err := os.OpenFile("/dev/null", os.O_RDWR, 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return exitNullFailed
		}
		f.Close()
		f, err = os.Open("/dev/zero")
		if err == nil {
			f.Close()
			return exitZeroOpened
		}
		if !errors.Is(err, syscall.EPERM) {
			fmt.Fprintln(os.Stderr, err)
			return exitZeroOtherErr
		}
		return exitDevicesOK
	}
	return exitBadHelperMode
}

// helper is a child process started by startHelper.
type helper struct {
	cmd   *exec.Cmd
	stdin *os.File
	done  chan error
}

func (h *helper) pid() int { return h.cmd.Process.Pid }

// startHelper runs the test binary in helper mode and kills it when the
// test ends.
func startHelper(t *testing.T, mode string) *helper {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	cmd.Stdin = r
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	h := &helper{cmd: cmd, stdin: w, done: make(chan error, 1)}
	go func() { h.done <- cmd.Wait() }()
	t.Cleanup(func() {
		w.Close()
		_ = cmd.Process.Kill()
		<-h.done
	})
	return h
}

// wait returns the exit code of the helper.
func (h *helper) wait(t *testing.T) int {
	t.Helper()
	select {
	case err := <-h.done:
		h.done <- err // for the cleanup
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(20 * time.Second):
		t.Fatal("helper did not exit")
	}
	return -1
}

var nonAlnum = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// testCgroupPath returns an absolute cgroup path unique to the test.
func testCgroupPath(t *testing.T) string {
	return fmt.Sprintf("/berth-test-%s-%d", nonAlnum.ReplaceAllString(t.Name(), "_"), os.Getpid())
}

// newTestManager returns a manager for a unique absolute cgroup path whose
// directories are removed when the test ends, also on failure. Register
// it before starting helpers so that they are killed first.
func newTestManager(t *testing.T) Manager {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	m, err := New(Config{Path: testCgroupPath(t), ContainerID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Destroy(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		for k, p := range m.Paths() {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("cleanup: cgroup %q of %q still exists", p, k)
			}
		}
	})
	return m
}

// dirOf returns the directory of controller ctrl ("" on cgroup v2).
func dirOf(t *testing.T, m Manager, ctrl string) string {
	t.Helper()
	paths := m.Paths()
	if dir, ok := paths[""]; ok && len(paths) == 1 {
		return dir
	}
	dir, ok := paths[ctrl]
	if !ok {
		t.Fatalf("no %s cgroup in %v", ctrl, paths)
	}
	return dir
}

// expectFile checks the trimmed content of a cgroup file.
func expectFile(t *testing.T, m Manager, ctrl, name, want string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dirOf(t, m, ctrl), name))
	if err != nil {
		t.Error(err)
		return
	}
	if got := strings.TrimSpace(string(b)); got != want {
		t.Errorf("%s: got %q, want %q", name, got, want)
	}
}

// cpuTicks returns utime+stime of pid from /proc/PID/stat.
func cpuTicks(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// Fields after the command start at field 3 (state); utime and stime
	// are fields 14 and 15.
	ut, _ := strconv.ParseUint(fields[11], 10, 64)
	st, _ := strconv.ParseUint(fields[12], 10, 64)
	return ut + st
}

func skipUnlessMode(t *testing.T, v2 bool) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if (DetectMode() == Unified) != v2 {
		t.Skipf("cgroup mode is %v", DetectMode())
	}
}
