// Package hostnetlock serializes the tests that change the host's
// network (bridges, veths, iptables chains), which `go test ./...` runs
// in parallel packages and which several checkouts may run at once: a
// test that removes the chains or links that appeared while it ran would
// otherwise take another test's away.
package hostnetlock

import (
	"fmt"

	"github.com/berth-project/berth/internal/flock"
	"golang.org/x/sys/unix"
)

// Path is the lock file, shared by every checkout on the machine.
const Path = "/run/lock/berth-tests-hostnet.lock"

// Lock waits for the host network lock and returns the function that
// releases it.
func Lock() (func(), error) {
	unlock, err := flock.Lock(Path, unix.LOCK_EX)
	if err != nil {
		return nil, fmt.Errorf("host network lock: %w", err)
	}
	return unlock, nil
}
