package seccomp

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Program is a profile compiled to a classic BPF program, ready for the
// seccomp(2) system call. The runtime compiles it in its own process,
// where libseccomp may allocate freely, and the container's init loads it
// with one system call just before execve: by then the process may run
// under rlimits (RLIMIT_AS) in which libseccomp could not work, and it no
// longer needs libseccomp at all. It marshals to JSON as is.
type Program struct {
	Filter []byte `json:"filter"` // struct sock_filter[], native byte order
	Flags  uint   `json:"flags"`  // SECCOMP_FILTER_FLAG_*
	Notify bool   `json:"notify"` // Load returns a listener fd
}

// Compile validates s and compiles it. A nil s gives a nil Program.
func Compile(s *specs.LinuxSeccomp) (*Program, error) {
	if s == nil {
		return nil, nil
	}
	p, err := parse(s)
	if err != nil {
		return nil, err
	}
	f, err := p.build()
	if err != nil {
		return nil, err
	}
	defer f.Release()
	fd, err := unix.MemfdCreate("seccomp-bpf", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp: compile: %w", err)
	}
	mf := os.NewFile(uintptr(fd), "seccomp-bpf")
	defer mf.Close()
	if err := f.ExportBPF(mf); err != nil {
		return nil, fmt.Errorf("linux.seccomp: compile: %w", err)
	}
	if _, err := mf.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	bpf, err := io.ReadAll(mf)
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp: compile: %w", err)
	}
	if len(bpf) == 0 || len(bpf)%8 != 0 || len(bpf)/8 > 0xffff {
		return nil, fmt.Errorf("linux.seccomp: compiled filter has a bad size (%d bytes)", len(bpf))
	}
	// TSYNC: every thread gets the filter, not only the one that execs.
	prog := &Program{Filter: bpf, Notify: p.usesNotify, Flags: unix.SECCOMP_FILTER_FLAG_TSYNC}
	if p.log {
		prog.Flags |= unix.SECCOMP_FILTER_FLAG_LOG
	}
	if p.specAllow {
		prog.Flags |= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
	}
	if p.waitKill {
		prog.Flags |= unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
	}
	if p.usesNotify {
		// With a listener, TSYNC must report failure as ESRCH, since
		// the return value is the listener fd.
		prog.Flags |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH
	}
	return prog, nil
}

// Load installs the program on the calling thread (the thread that will
// execve: the new program inherits the filter). It needs no_new_privs or
// CAP_SYS_ADMIN. With Notify it returns the listener fd, else -1.
func (p *Program) Load() (int, error) {
	n := len(p.Filter) / 8
	insns := make([]unix.SockFilter, n)
	for i := range insns {
		b := p.Filter[i*8:]
		insns[i] = unix.SockFilter{Code: binary.NativeEndian.Uint16(b), Jt: b[2], Jf: b[3], K: binary.NativeEndian.Uint32(b[4:])}
	}
	prog := unix.SockFprog{Len: uint16(n), Filter: &insns[0]}
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, uintptr(p.Flags), uintptr(unsafe.Pointer(&prog)))
	if errno != 0 {
		return -1, fmt.Errorf("load seccomp filter: %w", errno)
	}
	if p.Notify {
		return int(r), nil
	}
	return -1, nil
}
