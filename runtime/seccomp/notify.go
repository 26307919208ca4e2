package seccomp

import (
	"encoding/json"
	"errors"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// ProcessState returns the JSON container process state that goes with the
// seccomp notify fd to the agent at s.ListenerPath (runtime-spec
// config-linux.md, "The Container Process State"): fds names the one fd
// sent ("seccompFd"), metadata is s.ListenerMetadata, pid is the container
// process as seen by the runtime and state is the container's state.
func ProcessState(s *specs.LinuxSeccomp, pid int, state specs.State) ([]byte, error) {
	ps := specs.ContainerProcessState{
		Version: specs.Version,
		Fds:     []string{specs.SeccompFdName},
		Pid:     pid,
		State:   state,
	}
	if s != nil {
		ps.Metadata = s.ListenerMetadata
	}
	b, err := json.Marshal(ps)
	if err != nil {
		return nil, fmt.Errorf("encode seccomp container process state: %w", err)
	}
	return b, nil
}

// SendListener connects to the AF_UNIX SOCK_STREAM socket at path
// (linux.seccomp.listenerPath), sends fd with SCM_RIGHTS together with
// state, the JSON container process state (see [ProcessState]), and closes
// the connection. The fd goes with the first sendmsg(2); if the socket
// takes state in several writes, the rest follows without fds. fd itself is
// left open: the caller closes it.
func SendListener(path string, fd int, state []byte) error {
	if path == "" {
		return errors.New("linux.seccomp.listenerPath: empty")
	}
	if fd < 0 {
		return fmt.Errorf("send seccomp listener to %s: invalid fd %d", path, fd)
	}
	if len(state) == 0 {
		// A stream socket carries ancillary data only with at least
		// one byte of payload.
		return fmt.Errorf("send seccomp listener to %s: empty container process state", path)
	}
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("send seccomp listener to %s: socket: %w", path, err)
	}
	defer func() {
		if sock >= 0 {
			unix.Close(sock)
		}
	}()

	if err := retryEINTR(func() error { return unix.Connect(sock, &unix.SockaddrUnix{Name: path}) }); err != nil {
		return fmt.Errorf("linux.seccomp.listenerPath: connect to %s: %w", path, err)
	}

	oob := unix.UnixRights(fd)
	for len(state) > 0 {
		var n int
		err := retryEINTR(func() error {
			var err error
			n, err = unix.SendmsgN(sock, state, oob, nil, 0)
			return err
		})
		if err != nil {
			return fmt.Errorf("linux.seccomp.listenerPath: send seccomp fd and state to %s: %w", path, err)
		}
		state = state[n:]
		oob = nil
	}
	if err := unix.Close(sock); err != nil && !errors.Is(err, unix.EINTR) {
		return fmt.Errorf("linux.seccomp.listenerPath: close connection to %s: %w", path, err)
	}
	sock = -1
	return nil
}

func retryEINTR(f func() error) error {
	for {
		if err := f(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}
