package engine

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/containers"
	"github.com/berth-project/berth/monitor"
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
// pause) find it. beforeStart runs once the container is created, before
// its process may start; its error fails the start. On error l is aborted.
//
// If this process dies before the container runs, the monitor kills what
// it started and exits without recording an exit; the next start or
// remove clears what is left (see clearLeftovers).
func (s *Store) launch(c *containers.Container, l *monitor.Launcher, mo monitor.Options, dir string, beforeStart func() error) (_ *monitor.Conn, _ monitor.Started, retErr error) {
	defer func() {
		if retErr != nil {
			l.Abort()
		}
	}()
	root := s.runtimeRoot()
	if err := os.MkdirAll(root, 0o711); err != nil {
		return nil, monitor.Started{}, fmt.Errorf("runtime root %s: %w", root, err)
	}
	o := container.CreateOpts{ID: c.ID, Bundle: dir, Starter: l, BeforeStart: beforeStart}
	if mo.Terminal {
		var err error
		if o.Console, err = monitor.DialConsole(mo.RunDir); err != nil {
			return nil, monitor.Started{}, err
		}
		defer o.Console.Close()
	}
	// A signal that would end this process in the middle would leave
	// the container half made: the usual ones wait until it runs, and
	// then go to it if a foreground client will pass signals on anyway
	// (mo.Attach), as runc's run does.
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
	for mo.Attach {
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
