package console

import (
	"io"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPtyOverSocket(t *testing.T) {
	master, slave, err := NewPty()
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	if !strings.HasPrefix(slave.Name(), "/dev/pts/") {
		t.Errorf("slave name %q", slave.Name())
	}
	if err := SetSize(slave, 40, 120); err != nil {
		t.Fatal(err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	a, b := os.NewFile(uintptr(fds[0]), "a"), os.NewFile(uintptr(fds[1]), "b")
	defer a.Close()
	defer b.Close()
	if err := SendFd(a, slave.Name(), master); err != nil {
		t.Fatal(err)
	}
	master.Close()
	got, err := RecvFd(b)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	if got.Name() != slave.Name() {
		t.Errorf("received name %q, want %q", got.Name(), slave.Name())
	}
	ws, err := unix.IoctlGetWinsize(int(got.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Row != 40 || ws.Col != 120 {
		t.Errorf("window size through the received master: %+v, %v", ws, err)
	}
	// Bytes written to the slave come out of the received master.
	if _, err := slave.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := io.ReadAtLeast(got, buf, 4)
	if err != nil || !strings.HasPrefix(string(buf[:n]), "ping") {
		t.Errorf("read %q, %v", buf[:n], err)
	}
}

func TestRecvFdWithoutFile(t *testing.T) {
	fds, _ := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	a, b := os.NewFile(uintptr(fds[0]), "a"), os.NewFile(uintptr(fds[1]), "b")
	defer a.Close()
	defer b.Close()
	a.Write([]byte("no fd here"))
	if _, err := RecvFd(b); err == nil {
		t.Fatal("a message without a file was accepted")
	}
}
