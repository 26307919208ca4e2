package seccomp

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

func notifyProfile(sock string) *specs.LinuxSeccomp {
	return &specs.LinuxSeccomp{
		DefaultAction:    specs.ActAllow,
		ListenerPath:     sock,
		ListenerMetadata: "MKNOD=fifo",
		Syscalls:         []specs.LinuxSyscall{{Names: []string{"mknod", "mknodat"}, Action: specs.ActNotify}},
	}
}

func childNotify() error {
	prof := notifyProfile(os.Getenv(sockEnv))
	fd, err := Load(prof)
	if err != nil {
		return err
	}
	if fd < 0 {
		return fmt.Errorf("Load returned notify fd %d", fd)
	}
	link, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return err
	}
	if link != "anon_inode:seccomp notify" {
		return fmt.Errorf("notify fd %d is %q", fd, link)
	}
	state, err := ProcessState(prof, os.Getpid(), specs.State{
		Version: specs.Version, ID: "c1", Status: specs.StateCreating, Pid: os.Getpid(), Bundle: "/bundle",
	})
	if err != nil {
		return err
	}
	if err := SendListener(prof.ListenerPath, fd, state); err != nil {
		return err
	}
	unix.Close(fd)
	// The agent (the test) answers ENOMEDIUM.
	report("mknod", unix.Mknodat(unix.AT_FDCWD, filepath.Join(os.Getenv(dirEnv), "fifo"), unix.S_IFIFO|0o600, 0))
	return nil
}

// recvListener accepts one connection on l and returns the state and the
// fd sent on it.
func recvListener(l *net.UnixListener) ([]byte, int, error) {
	if err := l.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		return nil, -1, err
	}
	c, err := l.AcceptUnix()
	if err != nil {
		return nil, -1, err
	}
	defer c.Close()
	if err := c.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		return nil, -1, err
	}
	buf := make([]byte, 1<<21)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, -1, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		return nil, -1, fmt.Errorf("control messages %v: %v", msgs, err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return nil, -1, fmt.Errorf("rights %v: %v", fds, err)
	}
	state := buf[:n]
	// The rest of the state, if any, comes without fds until EOF.
	for {
		m, err := c.Read(buf[len(state):cap(buf)])
		state = buf[:len(state)+m]
		if err != nil {
			break
		}
	}
	return state, fds[0], nil
}

func TestLoadNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := Validate(notifyProfile(sock)); err != nil {
		t.Fatal(err)
	}

	agentErr := make(chan error, 1)
	go func() { agentErr <- agent(t, l) }()

	stdout, stderr, err := runChild(t, "notify", sockEnv+"="+sock)
	if err != nil {
		t.Fatalf("child: %v\nstderr:\n%s", err, stderr)
	}
	if err := <-agentErr; err != nil {
		t.Fatal(err)
	}
	checkResults(t, results(t, stdout), map[string]unix.Errno{"mknod": unix.ENOMEDIUM})
}

// agent plays the seccomp agent: it checks the container process state,
// waits for the child's mknodat and fails it with ENOMEDIUM.
func agent(t *testing.T, l *net.UnixListener) error {
	stateJSON, fd, err := recvListener(l)
	if err != nil {
		return fmt.Errorf("receive listener: %w", err)
	}
	defer unix.Close(fd)
	var st specs.ContainerProcessState
	if err := json.Unmarshal(stateJSON, &st); err != nil {
		return fmt.Errorf("decode state %q: %w", stateJSON, err)
	}
	if st.Version != specs.Version || len(st.Fds) != 1 || st.Fds[0] != specs.SeccompFdName ||
		st.Metadata != "MKNOD=fifo" || st.Pid <= 0 || st.State.ID != "c1" || st.State.Pid != st.Pid {
		return fmt.Errorf("unexpected state %s", stateJSON)
	}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	if n, err := unix.Poll(pfd, 20000); err != nil || n != 1 || pfd[0].Revents&unix.POLLIN == 0 {
		return fmt.Errorf("poll notify fd: n=%d revents=%#x: %v", n, pfd[0].Revents, err)
	}
	req, err := libseccomp.NotifReceive(libseccomp.ScmpFd(fd))
	if err != nil {
		return fmt.Errorf("receive notification: %w", err)
	}
	name, _ := req.Data.Syscall.GetName()
	// The notification names the calling thread, which in the Go child
	// may be any of the process's threads (the filter is TSYNC'ed); the
	// caller waits for the answer, so its /proc entry is there.
	_, terr := os.Stat(fmt.Sprintf("/proc/%d/task/%d", st.Pid, req.Pid))
	if name != "mknodat" || terr != nil {
		return fmt.Errorf("notification for %q from thread %d, want mknodat from a thread of %d", name, req.Pid, st.Pid)
	}
	return libseccomp.NotifRespond(libseccomp.ScmpFd(fd), &libseccomp.ScmpNotifResp{
		ID: req.ID, Error: int32(unix.ENOMEDIUM), // libseccomp negates it
	})
}

func TestSendListener(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })

	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })

	// Big enough to need several writes on the stream socket.
	prof := &specs.LinuxSeccomp{ListenerPath: sock, ListenerMetadata: strings.Repeat("m", 1<<20)}
	state, err := ProcessState(prof, 42, specs.State{Version: specs.Version, ID: "c2", Status: specs.StateCreated})
	if err != nil {
		t.Fatal(err)
	}

	type recv struct {
		state []byte
		fd    int
		err   error
	}
	got := make(chan recv, 1)
	go func() {
		s, fd, err := recvListener(l)
		got <- recv{s, fd, err}
	}()
	if err := SendListener(sock, p[1], state); err != nil {
		t.Fatal(err)
	}
	r := <-got
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { unix.Close(r.fd) })
	if string(r.state) != string(state) {
		t.Fatalf("received %d bytes of state, sent %d", len(r.state), len(state))
	}
	// The received fd is the pipe's write end.
	if _, err := unix.Write(r.fd, []byte("x")); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if n, err := unix.Read(p[0], b); err != nil || n != 1 || b[0] != 'x' {
		t.Fatalf("read from pipe: %d %q %v", n, b, err)
	}

	if err := SendListener(filepath.Join(t.TempDir(), "none.sock"), p[1], state); err == nil ||
		!strings.HasPrefix(err.Error(), "linux.seccomp.listenerPath: connect to ") {
		t.Fatalf("SendListener to a missing socket: %v", err)
	}
}
