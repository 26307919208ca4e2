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
	// ClaimCleanup (with Attach) has the first attach connection claim
	// the cleanup (Conn.ClaimCleanup) before the container starts, so
	// that even a container that exits at once leaves it to that client
	// rather than to ExitCommand.
	ClaimCleanup bool
	// HealthCmd runs while the container runs, one at a time, as docker
	// times its checks: each waits HealthInterval after the container's
	// start or the last check's end, or HealthStartInterval instead
	// during the first HealthStartPeriod.
	HealthCmd           []string
	HealthInterval      time.Duration
	HealthStartInterval time.Duration
	HealthStartPeriod   time.Duration
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
func (o *Options) config(inline bool) ([]byte, error) {
	if inline {
		if o.RunDir == "" || len(o.Runtime) > 0 || o.PidFile != "" {
			return nil, errors.New("monitor: Launch needs RunDir, and neither Runtime nor PidFile")
		}
	} else if o.RunDir == "" || len(o.Runtime) == 0 || o.PidFile == "" {
		return nil, errors.New("monitor: RunDir, Runtime and PidFile are required")
	} else if !filepath.IsAbs(o.Runtime[0]) {
		return nil, fmt.Errorf("monitor: runtime %q is not an absolute path", o.Runtime[0])
	} else if o.Terminal && !slices.Contains(o.Runtime, "--console-socket") {
		return nil, errors.New("monitor: Terminal needs --console-socket " + ConsoleSocket + " in Runtime")
	}
	// The monitor runs in RunDir: relative paths would change meaning.
	dir, err := filepath.Abs(o.RunDir)
	if err != nil {
		return nil, err
	}
	if o.PidFile != "" {
		if o.PidFile, err = filepath.Abs(o.PidFile); err != nil {
			return nil, err
		}
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
	errs = append(errs, add("dir", dir))
	if inline {
		flag("inline", true)
	} else {
		errs = append(errs, add("pidfile", o.PidFile))
	}
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
	add("hstart", strconv.FormatInt(int64(o.HealthStartInterval), 10))
	add("hperiod", strconv.FormatInt(int64(o.HealthStartPeriod), 10))
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
	l, err := launch(ctx, o, attach, false)
	if err != nil {
		return Started{}, nil, err
	}
	defer l.stop()
	return l.report(ctx)
}

// Launcher is a monitor started by Launch: it waits for its caller to
// create the container with the runtime's code in the caller's own
// process, and forks only the container's stage 0 (StartStage0, which
// makes it a runtime/container.Starter), so that the container's init is
// the monitor's child. Running then hands the container over; Abort (or
// the caller's death) makes the monitor kill what it started and exit.
type Launcher struct {
	local   *os.File
	r       *bufio.Reader
	waitErr chan error
	stop    func() bool
	monPID  int
	conn    *Conn
	runDir  string
}

// Launch starts a monitor for a container that the caller creates itself
// (see Launcher). o.Runtime and o.PidFile must be empty. With o.Attach it
// returns with the monitor's first attach connection (Conn). If ctx ends,
// the monitor's requests fail and it exits.
func Launch(ctx context.Context, o Options) (*Launcher, error) {
	return launch(ctx, o, o.Attach, true)
}

func launch(ctx context.Context, o Options, attach, inline bool) (_ *Launcher, retErr error) {
	msg, err := o.config(inline)
	if err != nil {
		return nil, err
	}
	exe := o.Exe
	if exe == "" {
		exe = "/proc/self/exe"
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("monitor: socketpair: %w", err)
	}
	local := os.NewFile(uintptr(fds[0]), "monitor-sync")
	remote := os.NewFile(uintptr(fds[1]), "monitor-sync-child")
	defer func() {
		if retErr != nil {
			local.Close()
		}
	}()
	cmd := exec.Command(exe)
	cmd.Args = []string{"berth-monitor"}
	cmd.Env = append(withoutEnv(os.Environ(), EnvMonitor, "_BERTH_INITPIPE"), EnvMonitor+"=3")
	cmd.ExtraFiles = []*os.File{remote}
	err = cmd.Start()
	remote.Close()
	if err != nil {
		return nil, fmt.Errorf("monitor: start %s: %w", exe, err)
	}
	// The first process forks the monitor and exits at once.
	l := &Launcher{local: local, r: bufio.NewReader(local), waitErr: make(chan error, 1), runDir: o.RunDir}
	go func() { l.waitErr <- cmd.Wait() }()
	l.stop = context.AfterFunc(ctx, func() { local.SetDeadline(time.Now()) })
	defer func() {
		if retErr != nil {
			l.stop()
		}
	}()
	if _, err := local.Write(msg); err != nil {
		return nil, l.fail(ctx, fmt.Errorf("monitor: send configuration: %w", err))
	}
	typ, err := l.r.ReadByte()
	if err != nil {
		return nil, l.fail(ctx, l.readErr(err))
	}
	switch typ {
	case 'A':
		var pid int32
		if err := binary.Read(l.r, binary.NativeEndian, &pid); err != nil {
			return nil, l.fail(ctx, fmt.Errorf("monitor: read report: %w", err))
		}
		l.monPID = int(pid)
		<-l.waitErr
		if attach {
			if l.conn, err = Attach(o.RunDir); err != nil {
				return nil, l.fail(ctx, err)
			}
			if o.ClaimCleanup {
				if err := l.conn.ClaimCleanup(); err != nil {
					l.conn.Close()
					return nil, l.fail(ctx, fmt.Errorf("monitor: claim the cleanup: %w", err))
				}
			}
		}
		return l, nil
	case 'E':
		return nil, l.fail(ctx, l.readError())
	}
	return nil, l.fail(ctx, fmt.Errorf("monitor: unknown report %q", typ))
}

// fail is err, or ctx's error if ctx ended.
func (l *Launcher) fail(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// readErr names a failed read of the monitor's report.
func (l *Launcher) readErr(err error) error {
	if errors.Is(err, io.EOF) {
		select {
		case werr := <-l.waitErr:
			return fmt.Errorf("monitor: exited without a report (%v)", werr)
		default:
			return errors.New("monitor: exited without a report")
		}
	}
	return fmt.Errorf("monitor: read report: %w", err)
}

// readError reads the message of an 'E' report.
func (l *Launcher) readError() error {
	var n uint32
	if err := binary.Read(l.r, binary.NativeEndian, &n); err != nil || n > 1<<20 {
		return fmt.Errorf("monitor: read report: %v", err)
	}
	msg := make([]byte, n)
	if _, err := io.ReadFull(l.r, msg); err != nil {
		return fmt.Errorf("monitor: read report: %w", err)
	}
	return errors.New(string(msg))
}

// report reads the monitor's report on a runtime it ran: the container's
// pid, or the runtime's error.
func (l *Launcher) report(ctx context.Context) (Started, *Conn, error) {
	defer l.local.Close()
	fail := func(err error) (Started, *Conn, error) {
		if l.conn != nil {
			l.conn.Close()
		}
		return Started{}, nil, l.fail(ctx, err)
	}
	typ, err := l.r.ReadByte()
	if err != nil {
		return fail(l.readErr(err))
	}
	switch typ {
	case 'P':
		var pid int32
		if err := binary.Read(l.r, binary.NativeEndian, &pid); err != nil {
			return fail(fmt.Errorf("monitor: read report: %w", err))
		}
		return Started{MonitorPID: l.monPID, Pid: int(pid)}, l.conn, nil
	case 'E':
		return fail(l.readError())
	}
	return fail(fmt.Errorf("monitor: unknown report %q", typ))
}

// MonitorPID is the monitor's pid.
func (l *Launcher) MonitorPID() int { return l.monPID }

// Conn is the first attach connection (Options.Attach), or nil.
func (l *Launcher) Conn() *Conn { return l.conn }

// StartStage0 has the monitor fork and exec exe with argv ["berth-init"],
// exactly the environment env, the container's stdio (pipes, or /dev/null)
// and files as fds 3, 4, ...; it returns the process's pid. The monitor
// reaps it, and holds any other child (the init it forks) unreaped until
// Running names it. Only one call is allowed.
func (l *Launcher) StartStage0(exe *os.File, env []string, files []*os.File) (int, error) {
	var payload []byte
	for _, e := range env {
		if strings.IndexByte(e, 0) >= 0 {
			return 0, fmt.Errorf("monitor: environment entry %q contains a NUL byte", e)
		}
		payload = append(append(payload, e...), 0)
	}
	fds := []int{int(exe.Fd())}
	for _, f := range files {
		fds = append(fds, int(f.Fd()))
	}
	if len(fds) > 64 {
		return 0, fmt.Errorf("monitor: %d files for stage 0, at most 63", len(files))
	}
	msg := binary.NativeEndian.AppendUint32([]byte{'X'}, uint32(len(payload)))
	msg = append(msg, payload...)
	sc, err := l.local.SyscallConn()
	if err != nil {
		return 0, err
	}
	var serr error
	if err := sc.Write(func(fd uintptr) bool {
		// The fds ride on the first byte; the rest follows in order.
		var n int
		n, serr = unix.SendmsgN(int(fd), msg, unix.UnixRights(fds...), nil, 0)
		if serr == unix.EAGAIN {
			return false
		}
		if serr == nil && n < len(msg) {
			_, serr = unix.Write(int(fd), msg[n:])
		}
		return true
	}); err != nil {
		serr = err
	}
	if serr != nil {
		return 0, fmt.Errorf("monitor: request stage 0: %w", serr)
	}
	typ, err := l.r.ReadByte()
	if err != nil {
		return 0, l.readErr(err)
	}
	switch typ {
	case 'S':
		var pid int32
		if err := binary.Read(l.r, binary.NativeEndian, &pid); err != nil {
			return 0, fmt.Errorf("monitor: read report: %w", err)
		}
		return int(pid), nil
	case 'E':
		return 0, l.readError()
	}
	return 0, fmt.Errorf("monitor: unknown report %q", typ)
}

// Running tells the monitor that the container runs with init pid (its
// child through stage 0) and returns the monitor's confirmation. The
// monitor then reaps init and records its exit as for Start.
func (l *Launcher) Running(pid int) (Started, error) {
	defer l.stop()
	defer l.local.Close()
	msg := binary.NativeEndian.AppendUint32([]byte{'G'}, uint32(int32(pid)))
	if _, err := l.local.Write(msg); err != nil {
		return Started{}, fmt.Errorf("monitor: report init: %w", err)
	}
	typ, err := l.r.ReadByte()
	if err != nil {
		return Started{}, l.readErr(err)
	}
	switch typ {
	case 'P':
		var got int32
		if err := binary.Read(l.r, binary.NativeEndian, &got); err != nil {
			return Started{}, fmt.Errorf("monitor: read report: %w", err)
		}
		return Started{MonitorPID: l.monPID, Pid: int(got)}, nil
	case 'E':
		return Started{}, l.readError()
	}
	return Started{}, fmt.Errorf("monitor: unknown report %q", typ)
}

// Abort gives up the start: the monitor kills stage 0 and init (if they
// run) and exits without recording an exit. The first attach connection
// is closed too.
func (l *Launcher) Abort() {
	l.stop()
	if l.conn != nil {
		l.conn.Close()
	}
	l.local.Close()
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

// DialConsole connects to the console socket of the monitor whose run
// directory is runDir (Options.Terminal with Launch): the container's
// init sends its pty master there (runtime/container.CreateOpts.Console).
// Like Attach it reaches the socket through /proc/self/fd.
func DialConsole(runDir string) (*os.File, error) {
	dfd, err := unix.Open(runDir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("console: open %s: %w", runDir, err)
	}
	defer unix.Close(dfd)
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("console: socket: %w", err)
	}
	addr := &unix.SockaddrUnix{Name: fmt.Sprintf("/proc/self/fd/%d/%s", dfd, ConsoleSocket)}
	if err := unix.Connect(fd, addr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("console: connect to %s: %w", filepath.Join(runDir, ConsoleSocket), err)
	}
	return os.NewFile(uintptr(fd), ConsoleSocket), nil
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
