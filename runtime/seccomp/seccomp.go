// Package seccomp turns the linux.seccomp section of an OCI runtime
// configuration into a seccomp BPF program, using libseccomp (through cgo).
//
// The runtime calls [Compile] in its own process, which validates the
// profile (errors name the field) and yields a [Program]; the container's
// init calls [Program.Load] just before it execve()s the user's program,
// and, when the profile uses SCMP_ACT_NOTIFY, [SendListener] to hand the
// notification fd to the agent listening on linux.seccomp.listenerPath.
//
// Syscall names that libseccomp does not know for any of the filter's
// architectures are an error (they are usually typos), except real
// syscalls newer than libseccomp, which are left to the default action; a
// name known only on some of the architectures is fine, libseccomp adds
// the rule where the syscall exists.
package seccomp

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
)

// Validate checks the profile s without loading it: action, architecture,
// flag and operator names, syscall names, argument indexes, errno values and
// the notify listener settings. It builds the filter in memory (nothing is
// loaded into the kernel) so that anything libseccomp itself would refuse is
// reported too. Errors name the offending field, for example
// `linux.seccomp.syscalls[2].names[0]: unknown syscall "fooo"`.
// A nil s is valid (no seccomp).
func Validate(s *specs.LinuxSeccomp) error {
	if s == nil {
		return nil
	}
	p, err := parse(s)
	if err != nil {
		return err
	}
	f, err := p.build()
	if err != nil {
		return err
	}
	f.Release()
	return nil
}

// Load builds the filter described by s and loads it into the calling
// process. The filter is installed with the TSYNC attribute, so it applies to
// every thread of the process (the Go runtime's threads included).
//
// Load does not set the no_new_privs bit (that is process.noNewPrivileges'
// job): the caller must either hold CAP_SYS_ADMIN or have set no_new_privs
// before calling Load.
//
// When the profile uses SCMP_ACT_NOTIFY, Load returns the notification
// listener fd (close-on-exec), which the caller passes to [SendListener] and
// then closes; otherwise it returns -1. The syscalls that [SendListener]
// makes (socket, connect, sendmsg, close) must not be subject to
// SCMP_ACT_NOTIFY, or the process would wait for an agent that never gets
// the fd.
//
// A nil s loads nothing and returns -1.
func Load(s *specs.LinuxSeccomp) (notifyFd int, err error) {
	p, err := Compile(s)
	if err != nil || p == nil {
		return -1, err
	}
	return p.Load()
}

// UsesNotify reports whether the profile s uses the SCMP_ACT_NOTIFY action,
// that is whether [Load] will return a listener fd to send to
// s.ListenerPath.
func UsesNotify(s *specs.LinuxSeccomp) bool {
	if s == nil {
		return false
	}
	if s.DefaultAction == specs.ActNotify {
		return true
	}
	for _, c := range s.Syscalls {
		if c.Action == specs.ActNotify {
			return true
		}
	}
	return false
}

// LibraryVersion returns the version of the libseccomp library in use.
func LibraryVersion() string { return libseccompVersion() }

// libseccompVersion returns the version of the libseccomp library in use,
// for error messages.
func libseccompVersion() string {
	major, minor, micro := libseccomp.GetLibraryVersion()
	return fmt.Sprintf("%d.%d.%d", major, minor, micro)
}
