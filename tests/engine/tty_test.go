package engine

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPty returns a new pty pair.
func openPty(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

// ptyReader collects what the master side reads.
type ptyReader struct {
	buf  bytes.Buffer
	done chan struct{}
	mu   chan struct{}
}

func readPty(m *os.File) *ptyReader {
	r := &ptyReader{done: make(chan struct{}), mu: make(chan struct{}, 1)}
	go func() {
		defer close(r.done)
		b := make([]byte, 4096)
		for {
			n, err := m.Read(b)
			r.mu <- struct{}{}
			r.buf.Write(b[:n])
			<-r.mu
			if err != nil {
				return
			}
		}
	}()
	return r
}

func (r *ptyReader) String() string {
	r.mu <- struct{}{}
	defer func() { <-r.mu }()
	return r.buf.String()
}

// TestRunTTY: run -it gives the container a real pty of the user's
// terminal size, follows resizes, and ctrl-p ctrl-q detaches, leaving the
// container running.
func TestRunTTY(t *testing.T) {
	cleanupContainer(t, "tty")
	master, slave := openPty(t)
	if err := unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 33, Col: 77}); err != nil {
		t.Fatal(err)
	}
	cmd := berthCmd("run", "-it", "--name", "tty", "busybox", "sh")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	out := readPty(master)
	waitFor := func(what string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(out.String(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the terminal's output: %q", what, out.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	master.Write([]byte("stty size; tty; echo mark-$((1+1))\r"))
	waitFor("mark-2")
	if s := out.String(); !strings.Contains(s, "33 77") || !strings.Contains(s, "/dev/pts/") {
		t.Fatalf("the container's terminal: %q", s)
	}
	// A resize of the user's terminal reaches the container.
	if err := unix.IoctlSetWinsize(int(slave.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 100}); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(unix.SIGWINCH)
	time.Sleep(200 * time.Millisecond)
	master.Write([]byte("stty size; echo mark-$((2+1))\r"))
	waitFor("mark-3")
	if !strings.Contains(out.String(), "40 100") {
		t.Fatalf("resize not seen: %q", out.String())
	}
	master.Write([]byte{16, 17}) // ctrl-p ctrl-q
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("detach: the CLI exited with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ctrl-p ctrl-q did not detach")
	}
	if st := status(t, "tty"); st != "running" {
		t.Fatalf("after detach the container is %q, want running", st)
	}
	ok(t, "rm", "-f", "tty")
}
