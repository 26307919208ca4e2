package cgroups

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Moving a process into a cgroup (a write to cgroup.procs, v1 or v2) takes
// the kernel's global cgroup_threadgroup_rwsem for writing. That per-CPU
// rwsem is kept in its fast mode between writers, and a writer that finds
// it there first switches it over, which waits for an RCU grace period:
// 8-20 ms on a virtual machine with HZ=250, with the CPU idle meanwhile.
// For a grace period after the last writer leaves, the next writers find
// the switch made and pay nothing. (Kernels with the favordynmods mount
// option keep it switched; there this costs nothing at all.) Every
// runtime pays it once per container start: runc moves its init's parent,
// berth the container's init, and the wait falls between what the runtime
// prepared and what init does next.
const (
	// primeInterval keeps the rwsem switched: well within one grace period.
	primeInterval = 4 * time.Millisecond
	// primeLimit ends a priming nobody stopped.
	primeLimit = time.Second
)

// PrimeMigrations starts that wait in the background, so that it passes
// while the caller prepares the container instead of after: it moves the
// calling process into the cgroup it is already in (a no-op for every
// controller, but a write to cgroup.procs), on a goroutine that blocks
// for the grace period, and then repeats the no-op every few
// milliseconds, which keeps the rwsem switched until stop is called (or a
// second has passed). The container's own migration then finds it
// switched. It does nothing for a caller that is not root or whose cgroup
// cannot be found: its migration just pays the wait itself. stop may be
// called more than once.
func PrimeMigrations() (stop func()) {
	if os.Geteuid() != 0 {
		return func() {}
	}
	procs, err := selfProcsFile()
	if err != nil {
		return func() {}
	}
	return primeWith(procs)
}

// primeWith writes the calling process's pid to the file procs at once
// and then every primeInterval, until stopped or primeLimit passed.
func primeWith(procs string) (stop func()) {
	f, err := os.OpenFile(procs, os.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer f.Close()
		pid := []byte(strconv.Itoa(os.Getpid()))
		deadline := time.After(primeLimit)
		tick := time.NewTicker(primeInterval)
		defer tick.Stop()
		for {
			if _, err := unix.Pwrite(int(f.Fd()), pid, 0); err != nil {
				return
			}
			select {
			case <-done:
				return
			case <-deadline:
				return
			case <-tick.C:
			}
		}
	}()
	return sync.OnceFunc(func() { close(done) })
}

// selfProcsFile is the cgroup.procs file of the calling process's cgroup:
// in the v2 hierarchy on a unified host, else in the first v1 hierarchy
// (the rwsem is one for all hierarchies).
func selfProcsFile() (string, error) {
	v1, v2, err := discoverHierarchies()
	if err != nil {
		return "", err
	}
	var h *hierarchy
	switch {
	case DetectMode() == Unified && v2 != nil:
		h = v2
	case len(v1) > 0:
		h = &v1[0]
	case v2 != nil:
		h = v2
	default:
		return "", os.ErrNotExist
	}
	self, err := trimMountRoot(h.self, h.mnt.root)
	if err != nil {
		return "", err
	}
	return filepath.Join(h.mnt.mountpoint, self, "cgroup.procs"), nil
}
