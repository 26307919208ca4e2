package runtime_test

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestSeccompErrno: a profile that allows everything but mkdir makes
// mkdir fail with the configured errno (EPERM), and nothing else.
func TestSeccompErrno(t *testing.T) {
	r := newRT(t)
	script := `if mkdir /tmp/x 2>/tmp/err; then echo made; else cat /tmp/err; fi; touch /tmp/file && echo touched`
	withTmp := func() *specs.Spec {
		s := newSpec(t)
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs"})
		return s
	}
	// Control: without the profile mkdir works.
	if out := r.sh(withTmp(), script); out != "made\ntouched\n" {
		t.Fatalf("without seccomp: %q", out)
	}
	eperm := uint(1)
	s := withTmp()
	s.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{{
			Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &eperm,
		}},
	}
	if out := r.sh(s, script); out != "mkdir: can't create directory '/tmp/x': Operation not permitted\ntouched\n" {
		t.Errorf("with mkdir denied: %q, want EPERM from mkdir and a working touch", out)
	}
}
