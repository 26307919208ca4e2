package metadata

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// gcLockPath is the file, beside the database, whose flock(2) orders garbage
// collection (exclusive) against the addition of lease resources (shared).
func (db *DB) gcLockPath() string { return db.path + ".gc-lock" }

// lockGC takes the GC lock, shared (unix.LOCK_SH) or exclusive
// (unix.LOCK_EX), waiting until it is granted or ctx is done. The returned
// function releases it. The lock is held on a file description of its own,
// so it is independent of other holders in this process, and dies with the
// process.
func (db *DB) lockGC(ctx context.Context, how int) (func(), error) {
	return lockFile(ctx, db.gcLockPath(), how)
}

// lockFile takes a flock(2) on the file at path (created if missing),
// shared (unix.LOCK_SH) or exclusive (unix.LOCK_EX), waiting until it is
// granted or ctx is done. The returned function releases it. The lock is
// held on a file description of its own, so it is independent of other
// holders in this process, and dies with the process.
func lockFile(ctx context.Context, path string, how int) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	delay := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing releases the flock
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			f.Close()
			return nil, fmt.Errorf("wait for lock %s: %w", path, ctx.Err())
		case <-t.C:
		}
		if delay < 50*time.Millisecond {
			delay *= 2
		}
	}
}
