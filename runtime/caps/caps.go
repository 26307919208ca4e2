// Package caps applies the process.capabilities section of an OCI runtime
// configuration to the calling thread of the container's init process.
//
// It talks to the kernel through golang.org/x/sys/unix directly (capget,
// capset and prctl) rather than through github.com/moby/sys/capability:
// the job is four syscalls, all of which act on the calling thread only,
// and doing them by hand keeps every step and its error explicit, needs no
// /proc (the init process may run before /proc is mounted) and keeps no
// package-level state (that library caches the kernel's last capability
// in a global).
//
// Capabilities are per thread in Linux, the bounding and ambient sets
// included. The caller must lock its goroutine to the OS thread
// (runtime.LockOSThread) and call [DropBounding] and [Apply] from the
// thread that then execve()s the container's program.
package caps

import (
	"errors"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Validate checks that every name in the five sets of c is a capability
// name ("CAP_SYS_ADMIN"), that the effective set is within the permitted
// set. An ambient capability that is not also permitted and inheritable
// cannot be raised and is skipped, as runc does. A name this package knows
// but the running kernel does not (a capability newer than the kernel) is
// not an error: it is ignored, like runc does. Errors name the field, for
// example `process.capabilities.bounding[3]: unknown capability "CAP_FOO"`.
// A nil c is valid: it means no capabilities at all.
func Validate(c *specs.LinuxCapabilities) error {
	last, err := lastCap()
	if err != nil {
		return err
	}
	_, err = parse(c, last)
	return err
}

// DropBounding drops from the calling thread's bounding set every
// capability that is not in c.Bounding; a nil c drops them all. It needs
// CAP_SETPCAP, so it is called while still root, before the uid change.
// Capabilities in c.Bounding that the thread's bounding set does not hold
// cannot be added back and are left out.
func DropBounding(c *specs.LinuxCapabilities) error {
	last, err := lastCap()
	if err != nil {
		return err
	}
	s, err := parse(c, last)
	if err != nil {
		return err
	}
	for capNum := 0; capNum <= last; capNum++ {
		if s.bounding.has(capNum) {
			continue
		}
		in, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(capNum), 0, 0, 0)
		if err != nil {
			return fmt.Errorf("process.capabilities.bounding: read %s from the bounding set: %w", name(capNum), err)
		}
		if in == 0 {
			continue
		}
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(capNum), 0, 0, 0); err != nil {
			return fmt.Errorf("process.capabilities.bounding: drop %s from the bounding set: %w", name(capNum), err)
		}
	}
	return nil
}

// Apply sets the calling thread's permitted, effective and inheritable
// sets to those of c, then clears its ambient set and raises the
// capabilities of c.Ambient; a nil c leaves every set empty. It is called
// after the uid/gid change (which the caller brackets with
// PR_SET_KEEPCAPS so that the permitted set survives it), just before
// execve.
func Apply(c *specs.LinuxCapabilities) error {
	last, err := lastCap()
	if err != nil {
		return err
	}
	s, err := parse(c, last)
	if err != nil {
		return err
	}
	cur, err := capget()
	if err != nil {
		return fmt.Errorf("process.capabilities: read the thread's capabilities: %w", err)
	}
	// After a uid change with keepcaps the effective set is empty. Raise
	// it to the whole permitted set first: with CAP_SETPCAP effective,
	// the new inheritable set may go beyond the permitted set (up to the
	// bounding set).
	if cur.effective != cur.permitted {
		raised := cur
		raised.effective = cur.permitted
		if err := capset(raised); err != nil {
			return fmt.Errorf("process.capabilities: raise the effective set to the permitted set: %w", err)
		}
	}
	want := capSets{permitted: s.permitted.bits, effective: s.effective.bits, inheritable: s.inheritable.bits}
	if err := capset(want); err != nil {
		return explainCapset(s, cur, err)
	}

	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("process.capabilities.ambient: clear the ambient set: %w", err)
	}
	for _, e := range s.ambient.entries {
		if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, uintptr(e.capNum), 0, 0); err != nil {
			return fmt.Errorf("%s: raise %s: %w", e.field, name(e.capNum), err)
		}
	}
	return nil
}

// explainCapset turns a capset failure into an error naming the first
// capability the kernel could not grant.
func explainCapset(s *sets, cur capSets, err error) error {
	if errors.Is(err, unix.EPERM) {
		for _, e := range s.permitted.entries {
			if cur.permitted&(1<<e.capNum) == 0 {
				return fmt.Errorf("%s: %s is not in the runtime's permitted set, it cannot be granted: %w", e.field, name(e.capNum), err)
			}
		}
		for _, e := range s.inheritable.entries {
			if cur.inheritable&(1<<e.capNum) != 0 {
				continue
			}
			if in, rerr := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(e.capNum), 0, 0, 0); rerr == nil && in == 0 {
				return fmt.Errorf("%s: %s is not in the bounding set, it cannot be inheritable: %w", e.field, name(e.capNum), err)
			}
		}
	}
	return fmt.Errorf("process.capabilities: set the permitted, effective and inheritable sets: %w", err)
}

// lastCap returns the highest capability number the running kernel knows,
// found with PR_CAPBSET_READ (which fails with EINVAL past it).
func lastCap() (int, error) {
	for capNum := 0; capNum < 64; capNum++ {
		_, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(capNum), 0, 0, 0)
		if errors.Is(err, unix.EINVAL) {
			if capNum == 0 {
				break
			}
			return capNum - 1, nil
		}
		if err != nil {
			return 0, fmt.Errorf("find the kernel's last capability: PR_CAPBSET_READ %d: %w", capNum, err)
		}
	}
	return 0, errors.New("find the kernel's last capability: PR_CAPBSET_READ gives no answer")
}

// capSets holds a thread's permitted, effective and inheritable sets as
// bit masks, bit n for capability n.
type capSets struct {
	permitted, effective, inheritable uint64
}

func capget() (capSets, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return capSets{}, err
	}
	return capSets{
		permitted:   uint64(data[0].Permitted) | uint64(data[1].Permitted)<<32,
		effective:   uint64(data[0].Effective) | uint64(data[1].Effective)<<32,
		inheritable: uint64(data[0].Inheritable) | uint64(data[1].Inheritable)<<32,
	}, nil
}

func capset(c capSets) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	data := [2]unix.CapUserData{
		{Permitted: uint32(c.permitted), Effective: uint32(c.effective), Inheritable: uint32(c.inheritable)},
		{Permitted: uint32(c.permitted >> 32), Effective: uint32(c.effective >> 32), Inheritable: uint32(c.inheritable >> 32)},
	}
	return unix.Capset(&hdr, &data[0])
}
