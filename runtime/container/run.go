package container

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/runtime/console"
	"github.com/berth-project/berth/runtime/namespaces"
	"github.com/berth-project/berth/runtime/spec"
)

// Run creates and starts a container, then (unless detach) waits for it,
// passing signals on, and deletes it. It returns the container's exit
// code in shell form (128+N for signal N).
func (r *Runtime) Run(o CreateOpts, detach bool) (int, error) {
	if detach {
		sigs := forwardSignals() // caught, so a signal cannot cut create short
		defer signal.Stop(sigs)
		if _, err := r.Launch(o); err != nil {
			return -1, err
		}
		return 0, nil
	}
	o.Run = true
	s, err := spec.Load(o.Bundle)
	if err != nil {
		return -1, err
	}
	o.loaded = s
	var local *os.File
	if s.Process.Terminal && o.ConsoleSocket == "" && o.Console == nil {
		var child *os.File
		local, child, err = socketPair()
		if err != nil {
			return -1, err
		}
		defer local.Close()
		o.Console = child
	}
	sigs := forwardSignals()
	defer signal.Stop(sigs)
	c, p, err := r.Create(o)
	if o.Console != nil {
		o.Console.Close()
	}
	if err != nil {
		return -1, err
	}
	defer p.sock.Close()
	var drain func()
	if local != nil {
		master, err := console.RecvFd(local)
		if err != nil {
			c.Delete(true)
			return -1, err
		}
		defer master.Close()
		drain = console.Proxy(master, os.Stdin, os.Stdout)
	}
	if err := p.send(message{Type: msgStart}); err != nil {
		c.Delete(true)
		return -1, err
	}
	if err := c.saveStarted(); err != nil {
		return -1, err
	}
	if err := p.waitExec(); err != nil {
		c.Delete(true)
		return -1, err
	}
	r.Log.Debug("user process started", "id", o.ID)
	c.postStart()
	code := waitForwarding(p.pid, sigs)
	r.Log.Debug("container exited", "id", o.ID, "code", code)
	if drain != nil {
		drain()
	}
	if err := c.Delete(true); err != nil {
		return code, err
	}
	r.Log.Debug("container deleted", "id", o.ID)
	return code, nil
}

// Launch creates and starts a container and returns it running (Run with
// detach): c.State.Pid is its init. With o.Starter, init is not this
// process's child and Launch is all the runtime work of a start done in
// the caller's process (berth's engine starts its containers so).
func (r *Runtime) Launch(o CreateOpts) (*Container, error) {
	o.Run = true
	s := o.Spec
	if s == nil {
		var err error
		if s, err = spec.Load(o.Bundle); err != nil {
			return nil, err
		}
		o.loaded = s
	}
	if s.Process.Terminal && o.ConsoleSocket == "" && o.Console == nil {
		return nil, fmt.Errorf("process.terminal with --detach needs --console-socket")
	}
	c, p, err := r.Create(o)
	if err != nil {
		return nil, err
	}
	defer p.sock.Close()
	if o.BeforeStart != nil {
		if err := o.BeforeStart(); err != nil {
			c.Delete(true)
			return nil, err
		}
	}
	if err := p.send(message{Type: msgStart}); err != nil {
		c.Delete(true)
		return nil, err
	}
	if err := c.saveStarted(); err != nil {
		return nil, err
	}
	if o.Starting != nil {
		o.Starting(p.pid)
	}
	if err := p.waitExec(); err != nil {
		c.Delete(true)
		return nil, err
	}
	r.Log.Debug("user process started", "id", o.ID)
	c.postStart()
	return c, nil
}

// ExecOpts are the options of `exec`.
type ExecOpts struct {
	Process       *specs.Process
	PidFile       string
	ConsoleSocket string
	Detach        bool
	PreserveFds   int
	Stdio         [3]*os.File
}

// Exec runs a new process in the container's namespaces and cgroup.
// Without Detach it waits and returns the process's exit code.
func (r *Runtime) Exec(c *Container, o ExecOpts) (int, error) {
	if err := spec.ValidateProcess(o.Process); err != nil {
		return -1, err
	}
	filter, err := r.validateSystem(&specs.Spec{Process: o.Process, Linux: c.State.Spec.Linux})
	if err != nil {
		return -1, err
	}
	switch st := c.Status(); st {
	case Created, Running:
	default:
		return -1, fmt.Errorf("container %s is %s: cannot exec in it", c.State.ID, st)
	}
	cg, err := c.cgroup()
	if err != nil {
		return -1, err
	}
	sp := &spawnSpec{stdio: o.Stdio, placed: cg.Apply}
	for i := 0; i < o.PreserveFds; i++ {
		sp.preserve = append(sp.preserve, os.NewFile(uintptr(3+i), "preserved"))
	}
	userns := false
	for _, ns := range c.State.Spec.Linux.Namespaces {
		path := fmt.Sprintf("/proc/%d/ns/%s", c.State.Pid, namespaces.ProcName(ns.Type))
		if sameNamespace(path, "/proc/self/ns/"+namespaces.ProcName(ns.Type)) {
			continue
		}
		flag, _ := namespaces.CloneFlag(ns.Type)
		sp.joins = append(sp.joins, nsJoin{flag, path})
		userns = userns || ns.Type == specs.UserNamespace
	}
	s := *initSpec(c.State.Spec)
	s.Process = o.Process
	cfg := &initConfig{Protocol: initProtocol, Exec: true, Spec: &s, Seccomp: filter, ID: c.State.ID, Bundle: c.State.Bundle, HostPid: c.State.Pid,
		UserNS: userns, PreserveFds: len(sp.preserve), FifoFd: -1, ConsoleFd: -1}
	var local *os.File
	if o.Process.Terminal {
		var conn *os.File
		if o.ConsoleSocket != "" {
			conn, err = dialUnix(o.ConsoleSocket)
			if err != nil {
				return -1, fmt.Errorf("--console-socket %s: %w", o.ConsoleSocket, err)
			}
		} else {
			if o.Detach {
				return -1, fmt.Errorf("a terminal with --detach needs --console-socket")
			}
			local, conn, err = socketPair()
			if err != nil {
				return -1, err
			}
			defer local.Close()
		}
		defer conn.Close()
		sp.extra = append(sp.extra, conn)
		cfg.ConsoleFd = len(sp.preserve) + 4
	}
	sigs := forwardSignals()
	defer signal.Stop(sigs)
	p, err := r.spawn(sp)
	if err != nil {
		return -1, err
	}
	defer p.sock.Close()
	fail := func(err error) (int, error) {
		unix.Kill(p.pid, unix.SIGKILL)
		reap(p.pid)
		return -1, err
	}
	if err := p.send(message{Type: msgConfig, Config: cfg}); err != nil {
		return fail(err)
	}
	var drain func()
	if local != nil {
		master, err := console.RecvFd(local)
		if err != nil {
			return fail(initError(err))
		}
		defer master.Close()
		drain = console.Proxy(master, os.Stdin, os.Stdout)
	}
	if err := p.waitExec(); err != nil {
		return fail(err)
	}
	if o.PidFile != "" {
		if err := writeFileAtomic(o.PidFile, []byte(strconv.Itoa(p.pid)), 0o644); err != nil {
			return fail(fmt.Errorf("--pid-file: %w", err))
		}
	}
	if o.Detach {
		return 0, nil
	}
	code := waitForwarding(p.pid, sigs)
	if drain != nil {
		drain()
	}
	return code, nil
}

func sameNamespace(a, b string) bool {
	var sa, sb unix.Stat_t
	if unix.Stat(a, &sa) != nil || unix.Stat(b, &sb) != nil {
		return false
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino
}

func socketPair() (*os.File, *os.File, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("console socket pair: %w", err)
	}
	return os.NewFile(uintptr(fds[0]), "console"), os.NewFile(uintptr(fds[1]), "console"), nil
}

// forwardSignals catches the signals the runtime passes on to the
// container's process while it waits for it.
func forwardSignals() chan os.Signal {
	ch := make(chan os.Signal, 32)
	var list []os.Signal
	for s := unix.Signal(1); s <= sigRTMax; s++ {
		switch s {
		case unix.SIGKILL, unix.SIGSTOP, unix.SIGCHLD, unix.SIGURG, unix.SIGWINCH, unix.SIGPIPE:
			continue
		}
		if s >= 32 && s < 34 { // reserved by libc for threads
			continue
		}
		list = append(list, s)
	}
	signal.Notify(ch, list...)
	return ch
}

// waitForwarding waits for pid (a child of this process) while passing
// caught signals to it.
func waitForwarding(pid int, sigs chan os.Signal) int {
	done := make(chan int, 1)
	go func() { done <- reap(pid) }()
	for {
		select {
		case code := <-done:
			return code
		case s := <-sigs:
			unix.Kill(pid, s.(unix.Signal))
		}
	}
}

// BundleAbs is filepath.Abs for a bundle flag ("" is the current dir).
func BundleAbs(b string) (string, error) {
	if b == "" {
		b = "."
	}
	return filepath.Abs(b)
}

// sigRTMax is Linux's highest signal number (SIGRTMAX).
const sigRTMax = unix.Signal(64)
