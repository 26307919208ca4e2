package engine

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"reflect"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/cgroups"
	"github.com/berth-project/berth/containers"
	"github.com/berth-project/berth/monitor"
	"github.com/berth-project/berth/oci"
	"github.com/berth-project/berth/runtime/container"
)

// launch starts container c, whose bundle is dir, with this process as
// its runtime: its monitor l (started by monitor.Launch with mo) forks
// only the container's stage 0, so that init is the monitor's child,
// while the runtime's own code (runtime/container.Runtime.Launch: config
// validation, cgroup, the namespaces' bootstrap, init's configuration,
// state.json) runs here. That saves the Go runtime's start-up of a
// `berth runtime run` process per container start. The container's
// runtime state is where `berth runtime` (and the engine's kill, exec,
// pause) find it. spec is the bundle's config, which the caller may still
// be writing: bundleReady returns once the bundle is complete (or why it
// is not), and init gets its config only then. beforeStart runs once the
// container is created, before its process may start; its error fails
// the start; starting (if not nil) is called once init was told to
// execute the container's process. On error l is aborted.
//
// If this process dies before the container runs, the monitor kills what
// it started and exits without recording an exit; the next start or
// remove clears what is left (see clearLeftovers).
func (s *Store) launch(c *containers.Container, l *monitor.Launcher, pre *container.Prespawned, mo monitor.Options, dir string, spec *specs.Spec, bundleReady, beforeStart func() error, starting func(monitor.Started)) (_ *monitor.Conn, _ monitor.Started, retErr error) {
	defer func() {
		if retErr != nil {
			l.Abort()
		}
	}()
	root := s.runtimeRoot()
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, monitor.Started{}, fmt.Errorf("runtime root %s: %w", root, err)
	}
	o := container.CreateOpts{ID: c.ID, Bundle: dir, Spec: spec, Starter: l, Prespawned: pre, BundleReady: bundleReady, BeforeStart: beforeStart}
	if starting != nil {
		o.Starting = func(pid int) { starting(monitor.Started{MonitorPID: l.MonitorPID(), Pid: pid}) }
	}
	if mo.Terminal {
		var err error
		if o.Console, err = monitor.DialConsole(mo.RunDir); err != nil {
			return nil, monitor.Started{}, err
		}
		defer o.Console.Close()
	}
	// A signal that would end this process in the middle would leave
	// the container half made: the usual ones wait until it runs, and
	// then go to it if a foreground client with a terminal attaches
	// (mo.Attach, mo.Terminal), as runc's run does. Without a terminal
	// the client catches the signals it passes on itself, from before
	// the start.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT)
	defer signal.Stop(sigs)
	rt := &container.Runtime{Root: root, Log: slog.New(slog.DiscardHandler)}
	rc, err := rt.Launch(o)
	if err != nil {
		return nil, monitor.Started{}, err
	}
	started, err := l.Running(rc.State.Pid)
	if err != nil {
		rc.Delete(true)
		return nil, monitor.Started{}, err
	}
	for mo.Attach && mo.Terminal {
		select {
		case sig := <-sigs:
			rc.Kill(sig.(unix.Signal), false)
			continue
		default:
		}
		break
	}
	return l.Conn(), started, nil
}

// clearLeftovers removes what a start of c cut short (its berth process
// killed) left behind, so that c can be started or removed again: the
// runtime's state (killing whatever runs in its cgroup) and the network
// namespace. Start and remove run it on containers that do not run.
func (s *Store) clearLeftovers(ctx context.Context, c *containers.Container) error {
	if err := s.runtime().deleteState(c.ID); err != nil {
		return fmt.Errorf("container %s: remove the runtime state of an earlier start: %w", c.ID, err)
	}
	if _, err := os.Lstat(s.netnsPath(c.ID)); err == nil {
		if err := s.teardownNetwork(ctx, c); err != nil {
			return fmt.Errorf("container %s: remove the network of an earlier start: %w", c.ID, err)
		}
	}
	return nil
}

// earlyLaunch is a container's monitor being started in the background
// and, once it is given the container's namespaces, its init prespawned
// through it (container.Prespawn): the exec of the monitor, stage 0 and
// init's own start-up overlap the work of the caller until the runtime
// creates the container (the container's record, snapshot, rootfs mount
// and bundle). start makes one; a create for a start that follows at
// once (CreateOptions.Start) makes it earlier still.
type earlyLaunch struct {
	opts StartOptions // what it was started for
	nsc  chan []specs.LinuxNamespace
	once sync.Once
	done chan struct{}
	l    *monitor.Launcher
	pre  *container.Prespawned
	err  error
	// stopPriming ends the priming of cgroup migrations begun with the
	// launch (see cgroups.PrimeMigrations): the runtime's create moves
	// init into the container's cgroup, and the kernel's wait before a
	// first migration passes meanwhile. Called once create returned.
	stopPriming func()
}

// beginLaunch starts the monitor mo in the background.
func (s *layout) beginLaunch(ctx context.Context, mo monitor.Options, opts StartOptions) *earlyLaunch {
	e := &earlyLaunch{opts: opts, nsc: make(chan []specs.LinuxNamespace, 1), done: make(chan struct{}),
		stopPriming: cgroups.PrimeMigrations()}
	go func() {
		defer close(e.done)
		if e.l, e.err = monitor.Launch(ctx, mo); e.err != nil {
			return
		}
		ns := <-e.nsc
		if ns == nil {
			return
		}
		root := s.runtimeRoot()
		if err := os.MkdirAll(root, 0o711); err != nil {
			e.err = fmt.Errorf("runtime root %s: %w", root, err)
			return
		}
		rt := &container.Runtime{Root: root, Log: slog.New(slog.DiscardHandler)}
		e.pre, e.err = rt.Prespawn(e.l, ns)
	}()
	return e
}

// prespawn gives the container's namespaces (nil: do not prespawn, the
// runtime's create spawns init itself); only the first call counts.
func (e *earlyLaunch) prespawn(ns []specs.LinuxNamespace) { e.once.Do(func() { e.nsc <- ns }) }

// wait returns the monitor and the prespawned init (nil if none), once
// started (prespawn must have been called).
func (e *earlyLaunch) wait() (*monitor.Launcher, *container.Prespawned, error) {
	<-e.done
	return e.l, e.pre, e.err
}

// abort gives the launch up: the monitor kills the prespawned init and
// exits.
func (e *earlyLaunch) abort() {
	e.stopPriming()
	e.prespawn(nil)
	<-e.done
	e.pre.Discard()
	if e.l != nil {
		e.l.Abort()
	}
}

// launchEarly starts the monitor (and, where the namespaces are known
// already, the init) of container c, just planned by CreateContainer, for
// the start with opts that will follow: c's directories are made here,
// and takeEarly hands the launch to that start.
func (s *Store) launchEarly(ctx context.Context, c *containers.Container, opts StartOptions) error {
	exe, err := s.exe()
	if err != nil {
		return err
	}
	if self, err := os.Executable(); err != nil || self != exe {
		return nil // another binary runs containers: see start
	}
	mo, err := s.monitorOptions(c, exe, opts)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.containerDir(c.ID), 0o710); err != nil {
		return fmt.Errorf("create container %s: %w", c.ID, err)
	}
	if err := os.MkdirAll(mo.RunDir, 0o700); err != nil {
		return fmt.Errorf("create container %s: %w", c.ID, err)
	}
	s.addEarly(c.ID, s.beginEarly(ctx, c, mo, opts))
	return nil
}

// beginEarly begins the launch of c's monitor mo and, where nothing need
// be made before (a network namespace, a console), of its init.
func (s *layout) beginEarly(ctx context.Context, c *containers.Container, mo monitor.Options, opts StartOptions) *earlyLaunch {
	e := s.beginLaunch(ctx, mo, opts)
	switch mode := c.HostConfig.NetworkMode; {
	case c.Config.Tty:
		e.prespawn(nil) // the console is the runtime's create's to pass
	case mode == "none" || mode.IsHost():
		// No network namespace to make first: init can start now.
		if ns, err := oci.Namespaces(c.HostConfig, ""); err == nil {
			e.prespawn(ns)
		}
	}
	return e
}

// addEarly hands e to container id's start (see takeEarly).
func (s *Store) addEarly(id string, e *earlyLaunch) {
	s.earlyMu.Lock()
	defer s.earlyMu.Unlock()
	if s.early == nil {
		s.early = map[string]*earlyLaunch{}
	}
	s.early[id] = e
}

// A Prelaunch is the launch of a container's monitor (and, where it can,
// init) that a run begins before it opens the store: the start-up of
// those processes overlaps the store's opening and the image's lookup as
// well as the container's creation (see launchEarly). Its methods are
// not safe for concurrent use.
type Prelaunch struct {
	layout
	id    string
	start StartOptions
	mo    monitor.Options
	e     *earlyLaunch // nil once taken or aborted
}

// BeginPrelaunch begins the launch of the container that CreateContainer with
// co (co.Start set) will create in the store at root, opened with opts:
// it picks the container's ID and makes its directories. It returns nil
// where it cannot begin one: co.Start unset, a store not made yet, a
// binary other than this process's running containers, or an error
// (which the creation will meet again and report). Pass the result in
// co.Prelaunch: CreateContainer takes it over, or aborts it if the image
// changes the monitor's options (a HEALTHCHECK). Abort one that was not
// passed on.
func BeginPrelaunch(ctx context.Context, root string, opts Options, co CreateOptions) *Prelaunch {
	if co.Start == nil || co.Config == nil || co.HostConfig == nil {
		return nil
	}
	l, err := newLayout(root, opts)
	if err != nil {
		return nil
	}
	// A store not made yet is OpenWith's to make, with its modes.
	if _, err := os.Stat(filepath.Join(l.root, "metadata.db")); err != nil {
		return nil
	}
	exe, err := l.exe()
	if err != nil {
		return nil
	}
	if self, err := os.Executable(); err != nil || self != exe {
		return nil
	}
	id, err := newContainerID()
	if err != nil {
		return nil
	}
	c := &containers.Container{ID: id, Config: co.Config, HostConfig: co.HostConfig}
	mo, err := l.monitorOptions(c, exe, *co.Start)
	if err != nil {
		return nil
	}
	if err := os.MkdirAll(l.containerDir(id), 0o710); err != nil {
		return nil
	}
	if err := os.MkdirAll(mo.RunDir, 0o700); err != nil {
		os.Remove(l.containerDir(id))
		return nil
	}
	return &Prelaunch{layout: l, id: id, start: *co.Start, mo: mo, e: l.beginEarly(ctx, c, mo, *co.Start)}
}

// Abort gives the launch up, unless CreateContainer took it over: the
// monitor kills the init it started and exits, and the container's
// directories go. Abort of nil does nothing.
func (p *Prelaunch) Abort() {
	if p == nil || p.e == nil {
		return
	}
	p.e.abort()
	p.e = nil
	os.RemoveAll(p.runDir(p.id))
	os.RemoveAll(p.containerDir(p.id))
}

// takePrelaunch has the start of c (planned by CreateContainer with the
// ID p chose) take over the launch p began, if it fits: the same store,
// start options and monitor options. Otherwise it aborts p and reports
// false.
func (s *Store) takePrelaunch(p *Prelaunch, c *containers.Container, opts StartOptions) (bool, error) {
	if p == nil || p.e == nil {
		return false, nil
	}
	exe, err := s.exe()
	if err != nil {
		p.Abort()
		return false, err
	}
	mo, err := s.monitorOptions(c, exe, opts)
	if err != nil || p.layout != s.layout || p.id != c.ID || p.start != opts || !reflect.DeepEqual(p.mo, mo) {
		p.Abort()
		return false, err
	}
	s.addEarly(c.ID, p.e)
	p.e = nil
	return true, nil
}

// takeEarly returns the early launch made for container id's start with
// opts, or nil. A launch made for another kind of start is aborted.
func (s *Store) takeEarly(id string, opts StartOptions) *earlyLaunch {
	s.earlyMu.Lock()
	e := s.early[id]
	delete(s.early, id)
	s.earlyMu.Unlock()
	if e == nil {
		return nil
	}
	if e.opts != opts {
		e.abort()
		return nil
	}
	return e
}

// dropEarly aborts container id's early launch, if any, and removes its
// run directory.
func (s *Store) dropEarly(id string) {
	s.earlyMu.Lock()
	e := s.early[id]
	delete(s.early, id)
	s.earlyMu.Unlock()
	if e != nil {
		e.abort()
		os.RemoveAll(s.runDir(id))
	}
}
