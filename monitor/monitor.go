package monitor

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// EnvMonitor names the environment variable that makes berth's binary act
// as a monitor: it holds the number of the configuration socket.
const EnvMonitor = "_BERTH_MONITOR"

// Names of the files the monitor keeps in its run directory.
const (
	AttachSocket  = "attach"       // the attach socket
	ConsoleSocket = "console.sock" // where the runtime sends the pty master
	ExitFile      = "exit"         // "CODE FINISHED_UNIX_NANOS\n"
	RuntimeLog    = "runtime.log"  // the runtime's JSON log, for its error
)

// Options configure one monitor.
type Options struct {
	// Exe is the berth binary to run as the monitor (default
	// /proc/self/exe).
	Exe string
	// RunDir is the container's run directory, which must exist. The
	// monitor keeps attach, console.sock, exit and runtime.log there and
	// runs Runtime in it.
	RunDir string
	// Runtime is the argv of the runtime command that creates and starts
	// the container detached, e.g. [berth runtime --root R --log
	// RUNDIR/runtime.log --log-format json run --detach --bundle B
	// --pid-file P ID]. Runtime[0] must be an absolute path. With
	// Terminal it must pass --console-socket console.sock (relative:
	// the runtime runs in RunDir).
	Runtime []string
	// PidFile is where Runtime writes the container's init pid.
	PidFile string
	// LogPath is the json-file log; "" for none.
	LogPath string
	// LogMaxSize rotates the log when it would grow beyond it (0: never).
	LogMaxSize int64
	// LogMaxFiles is how many log files rotation keeps, LogPath included
	// (docker's max-file; 0 or 1: the log is truncated instead).
	LogMaxFiles int
	// Terminal gives the container a pty (the spec's process.terminal).
	Terminal bool
	// Stdin keeps the container's stdin open as a pipe fed by attach
	// clients; otherwise it is /dev/null.
	Stdin bool
	// StdinOnce closes the container's stdin when the client that
	// wrote to it closes stdin or disconnects.
	StdinOnce bool
	// Attach makes the monitor wait for its first attach client before
	// it runs Runtime, so that client sees all output. Use StartAttached.
	Attach bool
	// ExitCommand runs (detached) after the container exited and the
	// exit file is written.
	ExitCommand []string
	// HealthCmd runs every HealthInterval, first after HealthStartDelay
	// (or HealthInterval), while the container runs; never two at once.
	HealthCmd        []string
	HealthInterval   time.Duration
	HealthStartDelay time.Duration
}

// Started describes a running container's monitor.
type Started struct {
	MonitorPID int // the monitor's pid
	Pid        int // the container's init, as the host sees it
}

// Start runs a monitor for a new container and returns once the container
// runs, or with the runtime's error if it could not be started. It must
// not be used with o.Attach (see StartAttached). If ctx ends first, Start
// returns ctx.Err(), and the container may still start.
func Start(ctx context.Context, o Options) (Started, error) {
	if o.Attach {
		return Started{}, errors.New("monitor: Start with Attach waits forever: use StartAttached")
	}
	s, _, err := start(ctx, o, false)
	return s, err
}

// StartAttached is Start with o.Attach: it connects to the monitor as soon
// as its attach socket listens, so the returned connection sees all the
// container's output. On error no connection is returned.
func StartAttached(ctx context.Context, o Options) (Started, *Conn, error) {
	o.Attach = true
	return start(ctx, o, true)
}

// config is the message that configures the monitor: u32 length, then
// NUL-terminated key=value records (see monitor.c).
func (o *Options) config() ([]byte, error) {
	if o.RunDir == "" || len(o.Runtime) == 0 || o.PidFile == "" {
		return nil, errors.New("monitor: RunDir, Runtime and PidFile are required")
	}
	if !filepath.IsAbs(o.Runtime[0]) {
		return nil, fmt.Errorf("monitor: runtime %q is not an absolute path", o.Runtime[0])
	}
	if o.Terminal && !slices.Contains(o.Runtime, "--console-socket") {
		return nil, errors.New("monitor: Terminal needs --console-socket " + ConsoleSocket + " in Runtime")
	}
	// The monitor runs in RunDir: relative paths would change meaning.
	dir, err := filepath.Abs(o.RunDir)
	if err != nil {
		return nil, err
	}
	if o.PidFile, err = filepath.Abs(o.PidFile); err != nil {
		return nil, err
	}
	if o.LogPath != "" {
		if o.LogPath, err = filepath.Abs(o.LogPath); err != nil {
			return nil, err
		}
	}
	var b []byte
	add := func(k, v string) error {
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("monitor: %s %q contains a NUL byte", k, v)
		}
		b = append(b, k...)
		b = append(b, '=')
		b = append(b, v...)
		b = append(b, 0)
		return nil
	}
	flag := func(k string, on bool) {
		if on {
			add(k, "1")
		}
	}
	var errs []error
	errs = append(errs, add("dir", dir), add("pidfile", o.PidFile))
	for _, a := range o.Runtime {
		errs = append(errs, add("rt", a))
	}
	for _, a := range o.ExitCommand {
		errs = append(errs, add("exit", a))
	}
	for _, a := range o.HealthCmd {
		errs = append(errs, add("health", a))
	}
	if o.LogPath != "" {
		errs = append(errs, add("log", o.LogPath))
	}
	add("logmax", strconv.FormatInt(o.LogMaxSize, 10))
	add("logfiles", strconv.Itoa(o.LogMaxFiles))
	add("hint", strconv.FormatInt(int64(o.HealthInterval), 10))
	add("hstart", strconv.FormatInt(int64(o.HealthStartDelay), 10))
	flag("terminal", o.Terminal)
	flag("stdin", o.Stdin)
	flag("stdinonce", o.StdinOnce)
	flag("attach", o.Attach)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return append(binary.NativeEndian.AppendUint32(nil, uint32(len(b))), b...), nil
}

func start(ctx context.Context, o Options, attach bool) (Started, *Conn, error) {
	msg, err := o.config()
	if err != nil {
		return Started{}, nil, err
	}
	exe := o.Exe
	if exe == "" {
		exe = "/proc/self/exe"
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return Started{}, nil, fmt.Errorf("monitor: socketpair: %w", err)
	}
	local := os.NewFile(uintptr(fds[0]), "monitor-sync")
	remote := os.NewFile(uintptr(fds[1]), "monitor-sync-child")
	defer local.Close()
	cmd := exec.Command(exe)
	cmd.Args = []string{"berth-monitor"}
	cmd.Env = append(withoutEnv(os.Environ(), EnvMonitor, "_BERTH_INITPIPE"), EnvMonitor+"=3")
	cmd.ExtraFiles = []*os.File{remote}
	err = cmd.Start()
	remote.Close()
	if err != nil {
		return Started{}, nil, fmt.Errorf("monitor: start %s: %w", exe, err)
	}
	// The first process forks the monitor and exits at once.
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()

	stop := context.AfterFunc(ctx, func() { local.SetDeadline(time.Now()) })
	defer stop()
	fail := func(err error) (Started, *Conn, error) {
		if ctx.Err() != nil {
			return Started{}, nil, ctx.Err()
		}
		return Started{}, nil, err
	}
	if _, err := local.Write(msg); err != nil {
		return fail(fmt.Errorf("monitor: send configuration: %w", err))
	}
	r := bufio.NewReader(local)
	var s Started
	var conn *Conn
	for {
		typ, err := r.ReadByte()
		if err != nil {
			if conn != nil {
				conn.Close()
			}
			if errors.Is(err, io.EOF) {
				werr := <-waitErr
				return fail(fmt.Errorf("monitor: exited without a report (%v)", werr))
			}
			return fail(fmt.Errorf("monitor: read report: %w", err))
		}
		switch typ {
		case 'A':
			var pid int32
			if err := binary.Read(r, binary.NativeEndian, &pid); err != nil {
				return fail(fmt.Errorf("monitor: read report: %w", err))
			}
			s.MonitorPID = int(pid)
			<-waitErr
			if attach {
				if conn, err = Attach(o.RunDir); err != nil {
					return fail(err)
				}
			}
		case 'P':
			var pid int32
			if err := binary.Read(r, binary.NativeEndian, &pid); err != nil {
				if conn != nil {
					conn.Close()
				}
				return fail(fmt.Errorf("monitor: read report: %w", err))
			}
			s.Pid = int(pid)
			return s, conn, nil
		case 'E':
			if conn != nil {
				conn.Close()
			}
			var n uint32
			if err := binary.Read(r, binary.NativeEndian, &n); err != nil || n > 1<<20 {
				return fail(fmt.Errorf("monitor: read report: %v", err))
			}
			msg := make([]byte, n)
			if _, err := io.ReadFull(r, msg); err != nil {
				return fail(fmt.Errorf("monitor: read report: %w", err))
			}
			return fail(errors.New(string(msg)))
		default:
			if conn != nil {
				conn.Close()
			}
			return fail(fmt.Errorf("monitor: unknown report %q", typ))
		}
	}
}

func withoutEnv(env []string, names ...string) []string {
	out := env[:0:0]
	for _, e := range env {
		k, _, _ := strings.Cut(e, "=")
		if !slices.Contains(names, k) {
			out = append(out, e)
		}
	}
	return out
}

// Frame types of the attach protocol.
const (
	frameStdin      = 0
	frameCloseStdin = 1
	frameResize     = 2
	frameClaim      = 3
	frameStdout     = 1
	frameStderr     = 2
	frameExit       = 3
)

// Conn is a connection to a monitor's attach socket.
type Conn struct {
	c  *net.UnixConn
	mu sync.Mutex // serialises frames written
}

// Attach connects to the monitor of the container whose run directory is
// runDir. It reaches the socket through /proc/self/fd, so runDir may be
// longer than a socket address allows.
func Attach(runDir string) (*Conn, error) {
	dfd, err := unix.Open(runDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("attach: open %s: %w", runDir, err)
	}
	defer unix.Close(dfd)
	addr := &net.UnixAddr{Net: "unix", Name: fmt.Sprintf("/proc/self/fd/%d/%s", dfd, AttachSocket)}
	c, err := net.DialUnix("unix", nil, addr)
	if err != nil {
		return nil, fmt.Errorf("attach: connect to %s: %w", filepath.Join(runDir, AttachSocket), err)
	}
	return &Conn{c: c}, nil
}

// Stream copies the container's output to stdout and stderr (with a
// terminal, all is stdout) until the monitor sends the exit frame or
// closes the connection. exitCode is -1 if no exit frame came.
func (c *Conn) Stream(stdout, stderr io.Writer) (exitCode int, err error) {
	r := bufio.NewReaderSize(c.c, 32<<10)
	var hdr [5]byte
	buf := make([]byte, 32<<10)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return -1, nil
			}
			return -1, fmt.Errorf("attach: read: %w", err)
		}
		n := binary.BigEndian.Uint32(hdr[1:])
		if n > uint32(cap(buf)) {
			buf = make([]byte, n)
		}
		p := buf[:n]
		if _, err := io.ReadFull(r, p); err != nil {
			return -1, fmt.Errorf("attach: read: %w", err)
		}
		var w io.Writer
		switch hdr[0] {
		case frameStdout:
			w = stdout
		case frameStderr:
			w = stderr
		case frameExit:
			if n != 4 {
				return -1, fmt.Errorf("attach: exit frame of %d bytes", n)
			}
			return int(int32(binary.BigEndian.Uint32(p))), nil
		default:
			return -1, fmt.Errorf("attach: unknown frame type %d", hdr[0])
		}
		if w != nil {
			if _, err := w.Write(p); err != nil {
				return -1, err
			}
		}
	}
}

func (c *Conn) frame(typ byte, p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	hdr := [5]byte{typ}
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(p)))
	if _, err := c.c.Write(append(hdr[:], p...)); err != nil {
		return fmt.Errorf("attach: write: %w", err)
	}
	return nil
}

// Write sends p to the container's stdin.
func (c *Conn) Write(p []byte) (int, error) {
	const chunk = 32 << 10
	n := 0
	for len(p) > 0 {
		k := min(len(p), chunk)
		if err := c.frame(frameStdin, p[:k]); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

// CloseStdin asks the monitor to close the container's stdin (with
// StdinOnce).
func (c *Conn) CloseStdin() error { return c.frame(frameCloseStdin, nil) }

// Resize sets the container's terminal size.
func (c *Conn) Resize(rows, cols uint16) error {
	var p [4]byte
	binary.BigEndian.PutUint16(p[:2], rows)
	binary.BigEndian.PutUint16(p[2:], cols)
	return c.frame(frameResize, p[:])
}

// ClaimCleanup tells the monitor that this client runs the cleanup after
// the container exits (as berth's foreground run does), so the monitor
// does not start Options.ExitCommand once it has sent this client the
// exit frame. A client that disconnects first loses its claim; one that
// dies after the exit frame leaves the exit file for the next reader.
func (c *Conn) ClaimCleanup() error { return c.frame(frameClaim, nil) }

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// ReadExit reads the container's exit file in runDir. ok is false while
// there is none: the container has not exited (or its monitor died).
func ReadExit(runDir string) (code int, finished time.Time, ok bool, err error) {
	path := filepath.Join(runDir, ExitFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, time.Time{}, false, nil
	}
	if err != nil {
		return 0, time.Time{}, false, err
	}
	f := strings.Fields(string(data))
	if len(f) != 2 {
		return 0, time.Time{}, false, fmt.Errorf("exit file %s: malformed %q", path, data)
	}
	code, err1 := strconv.Atoi(f[0])
	ns, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, time.Time{}, false, fmt.Errorf("exit file %s: malformed %q", path, data)
	}
	return code, time.Unix(0, ns), true, nil
}
