package seccomp

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
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// A loaded filter cannot be removed, so every test that loads one re-runs
// the test binary as a child with childEnv naming the function in children
// to run; the child prints "name errno" result lines on stdout.
const (
	childEnv = "BERTH_SECCOMP_TEST_CHILD"
	dirEnv   = "BERTH_SECCOMP_TEST_DIR"
	sockEnv  = "BERTH_SECCOMP_TEST_SOCK"
)

// addrNoRandomize is ADDR_NO_RANDOMIZE from <sys/personality.h>.
const addrNoRandomize = 0x0040000

var children = map[string]func() error{
	"errno":     childErrno,
	"allowlist": childAllowlist,
	"kill":      childKill,
	"trap":      childTrap,
	"notify":    childNotify,
}

func TestMain(m *testing.M) {
	if name := os.Getenv(childEnv); name != "" {
		f, ok := children[name]
		if !ok {
			fmt.Fprintf(os.Stderr, "unknown child %q\n", name)
			os.Exit(3)
		}
		if err := f(); err != nil {
			fmt.Fprintf(os.Stderr, "child %s: %v\n", name, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild runs the child name and returns its stdout, stderr and exit
// error (nil on exit status 0).
func runChild(t *testing.T, name string, env ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, childEnv+"="+name, dirEnv+"="+t.TempDir())...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("child %s timed out; stderr:\n%s", name, errOut.String())
	}
	return out.String(), errOut.String(), err
}

// results parses the child's "name errno" lines.
func results(t *testing.T, stdout string) map[string]unix.Errno {
	t.Helper()
	res := make(map[string]unix.Errno)
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		name, num, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(num)
		if err != nil {
			t.Fatalf("bad child line %q", sc.Text())
		}
		res[name] = unix.Errno(n)
	}
	return res
}

func checkResults(t *testing.T, got map[string]unix.Errno, want map[string]unix.Errno) {
	t.Helper()
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("%s: no result from child", name)
			continue
		}
		if g != w {
			t.Errorf("%s: errno %d (%v), want %d (%v)", name, int(g), g, int(w), w)
		}
	}
}

// report prints one result line for the parent; err nil is errno 0.
func report(name string, err error) {
	var errno unix.Errno
	if err != nil && !errors.As(err, &errno) {
		errno = 9999
	}
	fmt.Printf("%s %d\n", name, int(errno))
}

func rawErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func personality(v uintptr) error {
	_, _, e := unix.RawSyscall(unix.SYS_PERSONALITY, v, 0, 0)
	return rawErr(e)
}

func socket(domain, typ, proto int) error {
	fd, err := unix.Socket(domain, typ|unix.SOCK_CLOEXEC, proto)
	if err == nil {
		unix.Close(fd)
	}
	return err
}

func errnoProfile() *specs.LinuxSeccomp {
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_TSYNC",
			specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow},
		Syscalls: []specs.LinuxSyscall{
			// Same action as the default: must be skipped.
			{Names: []string{"getppid"}, Action: specs.ActAllow},
			{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EXDEV))},
			{Names: []string{"symlink", "symlinkat"}, Action: specs.ActErrno},
			// Two comparisons of argument 0: split into two rules,
			// either value is denied.
			{Names: []string{"personality"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.ENOTTY)), Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: 8, Op: specs.OpEqualTo},
				{Index: 0, Value: addrNoRandomize, Op: specs.OpEqualTo},
			}},
			// AF_INET and (type & 0xf) == SOCK_DGRAM, whatever the
			// flags: both conditions must hold.
			{Names: []string{"socket"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EAFNOSUPPORT)), Args: []specs.LinuxSeccompArg{
				{Index: 0, Value: unix.AF_INET, Op: specs.OpEqualTo},
				{Index: 1, Value: 0xf, ValueTwo: unix.SOCK_DGRAM, Op: specs.OpMaskedEqual},
			}},
		},
	}
}

func childErrno() error {
	dir := os.Getenv(dirEnv)

	// A thread that exists before Load: TSYNC must filter it too.
	runtime.LockOSThread()
	ready, run, done := make(chan struct{}), make(chan struct{}), make(chan error)
	go func() {
		runtime.LockOSThread()
		close(ready)
		<-run
		done <- unix.Mkdirat(unix.AT_FDCWD, filepath.Join(dir, "other-thread"), 0o755)
	}()
	<-ready

	fd, err := Load(errnoProfile())
	if err != nil {
		return err
	}
	if fd != -1 {
		return fmt.Errorf("Load returned notify fd %d for a profile without SCMP_ACT_NOTIFY", fd)
	}
	close(run)
	report("mkdir-other-thread", <-done)
	report("mkdir", unix.Mkdirat(unix.AT_FDCWD, filepath.Join(dir, "d"), 0o755))
	report("symlink", unix.Symlinkat("target", unix.AT_FDCWD, filepath.Join(dir, "l")))
	report("getppid", func() error { _, _, e := unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0); return rawErr(e) }())
	report("personality-query", personality(0xffffffff))
	report("personality-8", personality(8))
	report("personality-no-randomize", personality(addrNoRandomize))
	report("socket-inet-dgram", socket(unix.AF_INET, unix.SOCK_DGRAM, 0))
	report("socket-inet-stream", socket(unix.AF_INET, unix.SOCK_STREAM, 0))
	report("socket-inet-raw", socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)) // 3 & 0xf != 2
	report("socket-unix-dgram", socket(unix.AF_UNIX, unix.SOCK_DGRAM, 0))
	report("mknod-fifo", unix.Mknodat(unix.AT_FDCWD, filepath.Join(dir, "fifo"), unix.S_IFIFO|0o600, 0))
	return nil
}

func TestLoadErrnoAndArgs(t *testing.T) {
	if err := Validate(errnoProfile()); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := runChild(t, "errno")
	if err != nil {
		t.Fatalf("child: %v\nstderr:\n%s", err, stderr)
	}
	checkResults(t, results(t, stdout), map[string]unix.Errno{
		"mkdir-other-thread":       unix.EXDEV,
		"mkdir":                    unix.EXDEV,
		"symlink":                  unix.EPERM, // ERRNO without errnoRet
		"getppid":                  0,
		"personality-query":        0,
		"personality-8":            unix.ENOTTY,
		"personality-no-randomize": unix.ENOTTY,
		"socket-inet-dgram":        unix.EAFNOSUPPORT,
		"socket-inet-stream":       0,
		"socket-inet-raw":          0,
		"socket-unix-dgram":        0,
		"mknod-fifo":               0, // not in the profile
	})
}

// allowlistProfile denies everything with ENOSYS except what the Go
// runtime and the child need.
func allowlistProfile() *specs.LinuxSeccomp {
	return &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: uintp(uint(unix.ENOSYS)),
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{
				"read", "write", "close", "exit", "exit_group", "futex", "futex_waitv",
				"mmap", "munmap", "mprotect", "madvise", "brk",
				"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "sigaltstack",
				"clone", "clone3", "gettid", "getpid", "tgkill", "tkill",
				"sched_yield", "sched_getaffinity", "nanosleep", "clock_gettime", "clock_nanosleep",
				"set_robust_list", "rseq", "getrandom", "epoll_pwait", "epoll_pwait2", "epoll_ctl",
				"epoll_create1", "eventfd2", "pipe2", "fcntl", "openat", "fstat", "newfstatat",
				"getppid",
			}, Action: specs.ActAllow},
			// Same as the default action (ERRNO with ENOSYS): skipped.
			{Names: []string{"getuid"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.ENOSYS))},
			// Another errno than the default one.
			{Names: []string{"getgid"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.EACCES))},
		},
	}
}

func childAllowlist() error {
	debug.SetGCPercent(-1)
	runtime.LockOSThread()
	if _, err := Load(allowlistProfile()); err != nil {
		return err
	}
	report("getppid", func() error { _, _, e := unix.RawSyscall(unix.SYS_GETPPID, 0, 0, 0); return rawErr(e) }())
	report("getuid", func() error { _, _, e := unix.RawSyscall(unix.SYS_GETUID, 0, 0, 0); return rawErr(e) }())
	report("getgid", func() error { _, _, e := unix.RawSyscall(unix.SYS_GETGID, 0, 0, 0); return rawErr(e) }())
	report("uname", unix.Uname(&unix.Utsname{}))
	report("mkdir", unix.Mkdirat(unix.AT_FDCWD, filepath.Join(os.Getenv(dirEnv), "d"), 0o755))
	return nil
}

func TestLoadDefaultErrnoAllowlist(t *testing.T) {
	stdout, stderr, err := runChild(t, "allowlist")
	if err != nil {
		t.Fatalf("child: %v\nstderr:\n%s", err, stderr)
	}
	checkResults(t, results(t, stdout), map[string]unix.Errno{
		"getppid": 0,
		"getuid":  unix.ENOSYS,
		"getgid":  unix.EACCES,
		"uname":   unix.ENOSYS,
		"mkdir":   unix.ENOSYS,
	})
}

func childKill() error {
	// No core file from the SIGSYS.
	if err := unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{}); err != nil {
		return err
	}
	_, err := Load(&specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mknod", "mknodat"}, Action: specs.ActKillProcess}},
	})
	if err != nil {
		return err
	}
	fmt.Println("loaded 0")
	os.Stdout.Sync()
	err = unix.Mknodat(unix.AT_FDCWD, filepath.Join(os.Getenv(dirEnv), "fifo"), unix.S_IFIFO|0o600, 0)
	return fmt.Errorf("still alive after mknodat: %v", err)
}

func TestLoadKillProcess(t *testing.T) {
	stdout, stderr, err := runChild(t, "kill")
	if _, ok := results(t, stdout)["loaded"]; !ok {
		t.Fatalf("child did not load the filter: %v\nstderr:\n%s", err, stderr)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child: %v, want killed by SIGSYS\nstderr:\n%s", err, stderr)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != unix.SIGSYS {
		t.Fatalf("child status %v, want killed by SIGSYS\nstderr:\n%s", ws, stderr)
	}
}

func childTrap() error {
	_, err := Load(&specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mknod", "mknodat"}, Action: specs.ActTrap}},
	})
	if err != nil {
		return err
	}
	err = unix.Mknodat(unix.AT_FDCWD, filepath.Join(os.Getenv(dirEnv), "fifo"), unix.S_IFIFO|0o600, 0)
	return fmt.Errorf("still alive after mknodat: %v", err)
}

func TestLoadTrap(t *testing.T) {
	// SIGSYS from SCMP_ACT_TRAP is fatal to a Go program: the runtime
	// prints the signal and exits with status 2.
	_, stderr, err := runChild(t, "trap")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(stderr, "SIGSYS") {
		t.Fatalf("child: %v, want exit status 2 with SIGSYS\nstderr:\n%s", err, stderr)
	}
}
