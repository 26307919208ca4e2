package container

import (
	"encoding/json"
	"errors"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// placeTestProc is a proc for placeLater: a real process (sleep) to be
// killed or not, and the init end of a socket pair.
func placeTestProc(t *testing.T) (*proc, *json.Decoder, *exec.Cmd) {
	t.Helper()
	parent, child, err := socketPair()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { parent.Close(); child.Close() })
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	p := &proc{pid: cmd.Process.Pid, sock: parent, dec: json.NewDecoder(parent), enc: json.NewEncoder(parent)}
	return p, json.NewDecoder(child), cmd
}

// exited reports whether cmd ended within a few seconds.
func exited(cmd *exec.Cmd) bool {
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(5 * time.Second):
		return false
	}
}

// TestPlaceLater: the placement's word reaches init only after the
// config (configSent); a failed placement kills init and is join's
// error; a create stopped before its config sends nothing and kills
// nothing.
func TestPlaceLater(t *testing.T) {
	t.Run("placed", func(t *testing.T) {
		p, initEnd, cmd := placeTestProc(t)
		sent := make(chan struct{})
		placedPid := make(chan int, 1)
		join := placeLater(p, func(pid int) error { placedPid <- pid; return nil }, sent)
		if pid := <-placedPid; pid != cmd.Process.Pid {
			t.Fatalf("placed pid %d, want %d", pid, cmd.Process.Pid)
		}
		// Nothing before the config is sent: the config goes first.
		if err := p.send(message{Type: msgConfig}); err != nil {
			t.Fatal(err)
		}
		close(sent)
		for _, want := range []string{msgConfig, msgPlaced} {
			var m message
			if err := initEnd.Decode(&m); err != nil || m.Type != want {
				t.Fatalf("init read %q (%v), want %q", m.Type, err, want)
			}
		}
		if err := join(); err != nil {
			t.Fatalf("join: %v", err)
		}
		if unix.Kill(cmd.Process.Pid, 0) != nil {
			t.Fatal("init was killed after a good placement")
		}
	})
	t.Run("failed", func(t *testing.T) {
		p, _, cmd := placeTestProc(t)
		bad := errors.New("cpuset.cpus: write 99: invalid argument")
		join := placeLater(p, func(int) error { return bad }, make(chan struct{}))
		if !exited(cmd) {
			t.Fatal("init still runs after its placement failed")
		}
		if err := join(); !errors.Is(err, bad) {
			t.Fatalf("join = %v, want the placement's error", err)
		}
		if err := join(); !errors.Is(err, bad) {
			t.Fatalf("second join = %v, want the same error", err)
		}
	})
	t.Run("stopped", func(t *testing.T) {
		p, initEnd, cmd := placeTestProc(t)
		join := placeLater(p, func(int) error { return nil }, make(chan struct{}))
		if err := join(); err != nil {
			t.Fatalf("join of a create stopped before its config: %v", err)
		}
		p.sock.Close()
		var m message
		if err := initEnd.Decode(&m); err == nil {
			t.Fatalf("init was sent %q by a stopped create", m.Type)
		}
		if unix.Kill(cmd.Process.Pid, 0) != nil {
			t.Fatal("a stopped create's placement killed init")
		}
	})
}
