package seccomp

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func init() {
	children["program"] = childProgram
}

// programProfile denies mkdirat and mkdir with EXDEV, so a result cannot
// come from anything but this filter.
func programProfile() *specs.LinuxSeccomp {
	exdev := uint(unix.EXDEV)
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64},
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &exdev}},
	}
}

// childProgram loads a Program that went through JSON, as it does on its
// way from the runtime to a container's init, with little address space
// left: loading needs no libseccomp and no large allocation. The limit is
// counted from what the process has mapped already (a fixed 64 MiB failed
// now and then, when the Go runtime had reserved more by then).
func childProgram() error {
	var p Program
	if err := json.Unmarshal([]byte(os.Getenv("BERTH_SECCOMP_PROGRAM")), &p); err != nil {
		return err
	}
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	vm, err := vmSize()
	if err != nil {
		return err
	}
	lim := unix.Rlimit{Cur: vm + 64<<20, Max: unix.RLIM_INFINITY}
	if err := unix.Setrlimit(unix.RLIMIT_AS, &lim); err != nil {
		return err
	}
	if _, err := p.Load(); err != nil {
		return err
	}
	report("mkdir", unix.Mkdirat(unix.AT_FDCWD, os.Getenv(dirEnv)+"/x", 0o755))
	report("rmdir", unix.Rmdir(os.Getenv(dirEnv)+"/absent"))
	return nil
}

// vmSize is the process's mapped address space in bytes (VmSize).
func vmSize() (uint64, error) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmSize:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmSize %q: %w", v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmSize in /proc/self/status")
}

func TestProgramCompileAndLoad(t *testing.T) {
	p, err := Compile(programProfile())
	if err != nil {
		t.Fatal(err)
	}
	if p.Notify || p.Flags != unix.SECCOMP_FILTER_FLAG_TSYNC || len(p.Filter)%8 != 0 || len(p.Filter) == 0 {
		t.Fatalf("unexpected program: notify %v flags %#x, %d bytes", p.Notify, p.Flags, len(p.Filter))
	}
	data, _ := json.Marshal(p)
	out, stderr, err := runChild(t, "program", "BERTH_SECCOMP_PROGRAM="+string(data))
	if err != nil {
		t.Fatalf("child: %v\n%s", err, stderr)
	}
	checkResults(t, results(t, out), map[string]unix.Errno{"mkdir": unix.EXDEV, "rmdir": unix.ENOENT})
}

func TestCompileFlagsAndErrors(t *testing.T) {
	prof := programProfile()
	prof.Flags = []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog}
	prof.ListenerPath = "/run/agent.sock"
	prof.Syscalls = append(prof.Syscalls, specs.LinuxSyscall{Names: []string{"getcwd"}, Action: specs.ActNotify})
	p, err := Compile(prof)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint(unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_LOG | unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH); p.Flags != want || !p.Notify {
		t.Errorf("flags %#x notify %v, want %#x and notify", p.Flags, p.Notify, want)
	}
	if p, err := Compile(nil); p != nil || err != nil {
		t.Errorf("Compile(nil) = %v, %v", p, err)
	}
	bad := programProfile()
	bad.Syscalls[0].Names = []string{"mkdirr"}
	if _, err := Compile(bad); err == nil || err.Error() != `linux.seccomp.syscalls[0].names[0]: unknown syscall "mkdirr" (libseccomp 2.5.4 knows no such syscall)` {
		t.Errorf("Compile of an unknown syscall: %v", err)
	}
	// A real syscall newer than libseccomp is left to the default action.
	newer := programProfile()
	newer.Syscalls[0].Names = []string{"mkdir", "mseal"}
	if _, err := Compile(newer); err != nil {
		t.Errorf("Compile with mseal: %v", err)
	}
}
