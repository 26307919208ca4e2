// Package hostnetlock serializes the tests that change the host's
// network (bridges, veths, iptables chains), which `go test ./...` runs
// in parallel packages and which several checkouts may run at once: a
// test that removes the chains or links that appeared while it ran would
// otherwise take another test's away.
package hostnetlock

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Path is the lock file, shared by every checkout on the machine.
const Path = "/run/lock/berth-tests-hostnet.lock"

// Lock waits for the host network lock and returns the function that
// releases it.
func Lock() (func(), error) {
	f, err := os.OpenFile(Path, os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("host network lock: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("host network lock %s: %w", Path, err)
	}
	return func() { f.Close() }, nil
}
