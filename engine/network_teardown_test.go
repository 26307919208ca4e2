package engine

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-project/berth/metadata"
)

// sleeper starts a process and returns it with its owner identity.
func sleeper(t *testing.T) (*exec.Cmd, metadata.Owner) {
	t.Helper()
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	o, err := metadata.OwnerOf(cmd.Process.Pid)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal(err)
	}
	return cmd, o
}

// liveOwner is a process that lives until the test ends.
func liveOwner(t *testing.T) metadata.Owner {
	cmd, o := sleeper(t)
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return o
}

// deadOwner is a process that has exited.
func deadOwner(t *testing.T) metadata.Owner {
	cmd, o := sleeper(t)
	cmd.Process.Kill()
	cmd.Wait()
	return o
}

func ownerIn(t *testing.T, path string) metadata.Owner {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseOwner(b)
}

func TestHandOffTeardown(t *testing.T) {
	self, err := metadata.OwnerOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		worker *metadata.Owner // nil: no worker file
		handed bool
	}{
		{name: "no worker"},
		{name: "dead worker", worker: ptr(deadOwner(t))},
		{name: "itself", worker: &self},
		{name: "live worker", worker: ptr(liveOwner(t)), handed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runRoot := t.TempDir()
			if err := os.MkdirAll(pendingDir(runRoot), 0o700); err != nil {
				t.Fatal(err)
			}
			if tc.worker != nil {
				if err := os.WriteFile(teardownWorkerFile(runRoot), ownerBytes(*tc.worker), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			marker := filepath.Join(pendingDir(runRoot), "c1")
			if err := os.WriteFile(marker, ownerBytes(self), 0o600); err != nil {
				t.Fatal(err)
			}
			if got := handOffTeardown(runRoot, marker, self); got != tc.handed {
				t.Fatalf("handed off: %v, want %v", got, tc.handed)
			}
			want := self
			if tc.handed {
				want = *tc.worker
			}
			if got := ownerIn(t, marker); got != want {
				t.Errorf("marker names %v, want %v", got, want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// TestServeTeardowns: the worker names itself, finishes the teardowns
// handed to it while it lingers (markers that name it), leaves the others
// alone, and removes its worker file when it goes.
func TestServeTeardowns(t *testing.T) {
	root, runRoot := t.TempDir(), t.TempDir()
	if err := os.MkdirAll(pendingDir(runRoot), 0o700); err != nil {
		t.Fatal(err)
	}
	self, err := metadata.OwnerOf(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(pendingDir(runRoot), "other")
	if err := os.WriteFile(other, ownerBytes(liveOwner(t)), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		serveTeardowns(context.Background(), root, runRoot)
	}()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitFor("the worker file", func() bool {
		b, err := os.ReadFile(teardownWorkerFile(runRoot))
		return err == nil && parseOwner(b) == self
	})
	// Two hand-offs, the second after the first was done: the worker
	// is still there for it.
	for _, id := range []string{"c1", "c2"} {
		marker := filepath.Join(pendingDir(runRoot), id)
		if err := os.WriteFile(marker, ownerBytes(self), 0o600); err != nil {
			t.Fatal(err)
		}
		waitFor("the teardown of "+id, func() bool {
			_, err := os.Stat(marker)
			return os.IsNotExist(err)
		})
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the worker did not leave")
	}
	if _, err := os.Stat(teardownWorkerFile(runRoot)); !os.IsNotExist(err) {
		t.Errorf("worker file left: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("the marker of another process's teardown: %v", err)
	}
}
