// Package flock takes whole-file advisory locks (flock(2)) on lock files:
// how berth's processes, which share state without a daemon, exclude each
// other. A lock goes with its process if the process dies.
package flock

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Lock opens the lock file path (creating it, mode 0600, not its
// directory) and takes a lock of kind how on it: unix.LOCK_EX or
// unix.LOCK_SH, waiting for it (retried on EINTR). It returns the function
// that releases the lock. Each call opens its own file description, so
// goroutines of one process exclude each other as processes do.
func Lock(path string, how int) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	for {
		err = unix.Flock(int(f.Fd()), how)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil // closing the last descriptor drops the lock
}
