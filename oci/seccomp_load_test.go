package oci

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/berth-project/berth/runtime/seccomp"
	"golang.org/x/sys/unix"
)

// childEnv makes the test binary a child that loads docker's default
// profile and reports what some system calls return; a loaded filter
// cannot be removed, so this runs in its own process.
const childEnv = "BERTH_OCI_SECCOMP_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		if err := seccompChild(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func seccompChild() error {
	caps, err := Capabilities(DefaultCapabilities, nil, nil)
	if err != nil {
		return err
	}
	s, err := DefaultSeccomp(caps)
	if err != nil {
		return err
	}
	prog, err := seccomp.Compile(s)
	if err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return err
	}
	if _, err := prog.Load(); err != nil {
		return err
	}
	report := func(name string, err error) {
		errno, _ := err.(unix.Errno)
		fmt.Printf("%s %d\n", name, int(errno))
	}
	_, _, e := unix.RawSyscall(unix.SYS_UNSHARE, unix.CLONE_NEWUSER, 0, 0)
	report("unshare-newuser", e)
	report("mount", unix.Mount("none", "/nonexistent-berth", "tmpfs", 0, ""))
	_, _, e = unix.RawSyscall(unix.SYS_GETPID, 0, 0, 0)
	report("getpid", e)
	_, _, e = unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0)
	report("clone3", e)
	return nil
}

// TestDefaultSeccompLoaded checks the simulation against the kernel: the
// profile loaded into a real process denies what it should.
func TestDefaultSeccompLoaded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\n%s", err, errOut.String())
	}
	want := map[string]unix.Errno{"unshare-newuser": unix.EPERM, "mount": unix.EPERM, "getpid": 0, "clone3": unix.ENOSYS}
	got := map[string]unix.Errno{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var name string
		var n int
		if _, err := fmt.Sscanf(line, "%s %d", &name, &n); err != nil {
			t.Fatalf("bad child line %q", line)
		}
		got[name] = unix.Errno(n)
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Errorf("%s under the default profile: errno %d (%v), want %d (%v)", k, g, g, w, w)
		}
	}
}
