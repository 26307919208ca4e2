package container

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/runtime/exeseal"
	"github.com/berth-project/berth/runtime/nsexec"
)

// nsJoin is a namespace to enter by path.
type nsJoin struct {
	flag int
	path string
}

// spawnSpec describes a process to start through stage 0 (nsexec.c).
type spawnSpec struct {
	stdio      [3]*os.File // nil: /dev/null
	preserve   []*os.File  // become fds 3.. in the child, in order
	extra      []*os.File  // after the sync socket
	cloneFlags int
	joins      []nsJoin
	timens     string
	uidMap     []specs.LinuxIDMapping
	gidMap     []specs.LinuxIDMapping
	// placed is called with stage 0's pid before it enters any namespace:
	// the cgroup goes here, so a new cgroup namespace is rooted in it.
	placed func(pid int) error
	// starter, when set, starts stage 0 instead of this process (which
	// then does not wait for it); stdio is then the starter's.
	starter Starter
}

// Starter starts stage 0 of a container's init for Create, in place of
// the calling process: berth's engine has its per-container monitor fork
// it, so that init (stage 0's CLONE_PARENT child) is the monitor's child,
// which reaps it and records its exit, while the engine's own process
// runs the rest of Create.
type Starter interface {
	// StartStage0 runs exe (the sealed runtime binary, an fd to exec)
	// with argv ["berth-init"], exactly the environment env, its own
	// choice of stdio and files as fds 3, 4, ... in order, and returns
	// the new process's pid. The starter reaps it.
	StartStage0(exe *os.File, env []string, files []*os.File) (pid int, err error)
}

// proc is a started init or exec process and the parent's end of its
// sync socket.
type proc struct {
	pid  int
	sock *os.File
	dec  *json.Decoder
	enc  *json.Encoder
	// syncFd is the sync socket's number in the child; extra files follow.
	syncFd int
	// detached: (in init) the parent no longer listens.
	detached bool
}

// message is one JSON message on the sync socket.
type message struct {
	Type   string      `json:"type"`
	Error  string      `json:"error,omitempty"`
	Config *initConfig `json:"config,omitempty"`
}

const (
	msgConfig = "config" // parent -> child: what to set up
	msgHooks  = "hooks"  // child -> parent: run createRuntime hooks now
	msgOK     = "ok"     // parent -> child: hooks done
	msgPlaced = "placed" // parent -> child (PlaceLater): init is in its cgroup
	msgReady  = "ready"  // child -> parent: created, waiting for start
	msgStart  = "start"  // parent -> child (run): go
	msgError  = "error"  // child -> parent: setup failed
)

func (r *Runtime) sealedExe() (*os.File, error) {
	f, err := exeseal.Open(r.initBinary(), filepath.Join(r.Root, ".empty"))
	if err != nil {
		return nil, err
	}
	// Keep the handle above the numbers the child's files are moved to.
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 100)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("seal runtime binary: %w", err)
	}
	return os.NewFile(uintptr(fd), "berth"), nil
}

// initEnv is the whole environment of a container's init (or exec
// process) until it execs the user's program: the number of its sync
// socket, and GOMAXPROCS=1. Init does its work on one locked thread; with
// one P its Go runtime starts fewer threads and spreads its first
// allocations over fewer spans, which is fewer page faults on init's
// critical path. Init removes both before anything it starts could
// inherit them (hooks).
func initEnv(syncFd int) []string {
	return []string{nsexec.EnvInitPipe + "=" + strconv.Itoa(syncFd), "GOMAXPROCS=1"}
}

func (r *Runtime) spawn(s *spawnSpec) (_ *proc, retErr error) {
	exe, err := r.sealedExe()
	if err != nil {
		return nil, err
	}
	defer exe.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("sync socket: %w", err)
	}
	parent := os.NewFile(uintptr(fds[0]), "sync")
	child := os.NewFile(uintptr(fds[1]), "sync")
	defer child.Close()
	syncFd := 3 + len(s.preserve)
	if s.starter != nil {
		return r.spawnVia(s, exe, parent, child, syncFd)
	}
	cmd := &exec.Cmd{
		Path:       fmt.Sprintf("/proc/self/fd/%d", exe.Fd()),
		Args:       []string{"berth-init"},
		Env:        initEnv(syncFd),
		ExtraFiles: append(append(append([]*os.File{}, s.preserve...), child), s.extra...),
	}
	if s.stdio[0] != nil {
		cmd.Stdin = s.stdio[0]
	}
	if s.stdio[1] != nil {
		cmd.Stdout = s.stdio[1]
	}
	if s.stdio[2] != nil {
		cmd.Stderr = s.stdio[2]
	}
	if err := cmd.Start(); err != nil {
		parent.Close()
		return nil, fmt.Errorf("start container init: %w", err)
	}
	child.Close()
	p := &proc{sock: parent, dec: json.NewDecoder(parent), enc: json.NewEncoder(parent), syncFd: syncFd}
	defer func() {
		if retErr != nil {
			cmd.Process.Kill()
			cmd.Wait()
			if p.pid > 0 {
				unix.Kill(p.pid, unix.SIGKILL)
				reap(p.pid)
			}
			parent.Close()
		}
	}()
	if s.placed != nil {
		if err := s.placed(cmd.Process.Pid); err != nil {
			return nil, err
		}
	}
	if err := writeBootstrap(parent, s); err != nil {
		return nil, fmt.Errorf("send bootstrap to container init: %w", err)
	}
	pid, err := readStage0(parent, cmd.Process.Pid, s)
	if werr := cmd.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("container init stage 0: %w", werr)
	}
	p.pid = pid
	if err != nil {
		return nil, err
	}
	return p, nil
}

// spawnVia is spawn through s.starter: stage 0 is not this process's
// child, so nothing here waits for it. The starter reaps stage 0 and
// keeps init unreaped until told its pid (see monitor.Launcher), so
// killing either by pid here cannot hit a reused pid: stage 0 is killed
// only while it waits for the bootstrap, init only once reported.
func (r *Runtime) spawnVia(s *spawnSpec, exe, parent, child *os.File, syncFd int) (*proc, error) {
	files := append(append(append([]*os.File{}, s.preserve...), child), s.extra...)
	stage0, err := s.starter.StartStage0(exe, initEnv(syncFd), files)
	child.Close()
	if err != nil {
		parent.Close()
		return nil, fmt.Errorf("start container init: %w", err)
	}
	fail := func(err error) (*proc, error) {
		unix.Kill(stage0, unix.SIGKILL)
		parent.Close()
		return nil, err
	}
	if s.placed != nil {
		if err := s.placed(stage0); err != nil {
			return fail(err)
		}
	}
	if err := writeBootstrap(parent, s); err != nil {
		return fail(fmt.Errorf("send bootstrap to container init: %w", err))
	}
	pid, err := readStage0(parent, stage0, s)
	if err != nil {
		parent.Close()
		return nil, err
	}
	return &proc{pid: pid, sock: parent, dec: json.NewDecoder(parent), enc: json.NewEncoder(parent), syncFd: syncFd}, nil
}

func writeBootstrap(w io.Writer, s *spawnSpec) error {
	var recs []string
	recs = append(recs, "clone="+strconv.Itoa(s.cloneFlags))
	for _, j := range s.joins {
		recs = append(recs, fmt.Sprintf("ns=%d:%s", j.flag, j.path))
	}
	if s.timens != "" {
		recs = append(recs, "timens="+s.timens)
	}
	if len(s.uidMap) > 0 && os.Geteuid() != 0 {
		recs = append(recs, "setgroups=deny")
	}
	payload := strings.Join(recs, "\x00") + "\x00"
	buf := binary.LittleEndian.AppendUint32(nil, uint32(len(payload)))
	_, err := w.Write(append(buf, payload...))
	return err
}

// readStage0 follows stage 0 until it reports init's pid.
func readStage0(r io.ReadWriter, stage0 int, s *spawnSpec) (int, error) {
	var b [1]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return 0, fmt.Errorf("container init stage 0 exited early: %w", err)
		}
		switch b[0] {
		case 'U':
			if err := writeIDMaps(stage0, s.uidMap, s.gidMap); err != nil {
				return 0, err
			}
			if _, err := r.Write([]byte{'M'}); err != nil {
				return 0, err
			}
		case 'P':
			var pid int32
			if err := binary.Read(r, binary.LittleEndian, &pid); err != nil {
				return 0, err
			}
			return int(pid), nil
		case 'E':
			var n uint32
			if err := binary.Read(r, binary.LittleEndian, &n); err != nil || n > 1<<16 {
				return 0, fmt.Errorf("container init stage 0 failed")
			}
			msg := make([]byte, n)
			io.ReadFull(r, msg)
			return 0, errors.New(string(msg))
		default:
			return 0, fmt.Errorf("container init stage 0: unexpected message %q", b[0])
		}
	}
}

func writeIDMaps(pid int, uids, gids []specs.LinuxIDMapping) error {
	format := func(m []specs.LinuxIDMapping) string {
		var b strings.Builder
		for _, e := range m {
			fmt.Fprintf(&b, "%d %d %d\n", e.ContainerID, e.HostID, e.Size)
		}
		return b.String()
	}
	dir := fmt.Sprintf("/proc/%d/", pid)
	if os.Geteuid() != 0 {
		if err := os.WriteFile(dir+"setgroups", []byte("deny"), 0); err != nil {
			return fmt.Errorf("write setgroups: %w", err)
		}
	}
	write := func(file, helper string, m []specs.LinuxIDMapping, field string) error {
		err := os.WriteFile(dir+file, []byte(format(m)), 0)
		if err == nil {
			return nil
		}
		// An unprivileged user may map more than its own id only
		// through the setuid helpers of the uidmap package.
		if path, lerr := exec.LookPath(helper); lerr == nil && errors.Is(err, os.ErrPermission) {
			args := []string{strconv.Itoa(pid)}
			for _, e := range m {
				args = append(args, strconv.Itoa(int(e.ContainerID)), strconv.Itoa(int(e.HostID)), strconv.Itoa(int(e.Size)))
			}
			out, herr := exec.Command(path, args...).CombinedOutput()
			if herr == nil {
				return nil
			}
			return fmt.Errorf("%s: %s %v: %s", field, helper, herr, strings.TrimSpace(string(out)))
		}
		return fmt.Errorf("%s: write %s: %w", field, dir+file, err)
	}
	if err := write("uid_map", "newuidmap", uids, "linux.uidMappings"); err != nil {
		return err
	}
	return write("gid_map", "newgidmap", gids, "linux.gidMappings")
}

// reap waits for a child of this process (init is one, through
// CLONE_PARENT) and returns its exit status in shell form.
func reap(pid int) int {
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return -1
		}
		return exitCode(ws)
	}
}

func exitCode(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// send writes one message to the child.
func (p *proc) send(m message) error { return p.enc.Encode(m) }

// recv reads one message, turning the child's error report into an error.
func (p *proc) recv() (message, error) {
	var m message
	if err := p.dec.Decode(&m); err != nil {
		return m, err
	}
	if m.Type == msgError {
		return m, errors.New(m.Error)
	}
	return m, nil
}

// waitExec waits for the child to exec the user's program: its end of the
// sync socket closes on exec, or it reports why it could not.
func (p *proc) waitExec() error {
	m, err := p.recv()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("unexpected message %q from container init", m.Type)
}
