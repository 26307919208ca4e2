package flock

import (
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Two exclusive locks exclude each other within one process; shared
// locks do not; a released lock can be taken again.
func TestLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := Lock(path, unix.LOCK_EX)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan struct{})
	go func() {
		u, err := Lock(path, unix.LOCK_EX)
		if err != nil {
			t.Error(err)
		} else {
			u()
		}
		close(got)
	}()
	select {
	case <-got:
		t.Fatal("a second exclusive lock was granted while the first was held")
	case <-time.After(100 * time.Millisecond):
	}
	unlock()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("the second lock was not granted after the release")
	}
	s1, err := Lock(path, unix.LOCK_SH)
	if err != nil {
		t.Fatal(err)
	}
	defer s1()
	s2, err := Lock(path, unix.LOCK_SH)
	if err != nil {
		t.Fatal(err)
	}
	s2()
	if _, err := Lock(filepath.Join(t.TempDir(), "missing", "x.lock"), unix.LOCK_EX); err == nil {
		t.Error("Lock in a missing directory succeeded")
	}
}
