package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-project/berth/containers"
	"github.com/berth-project/berth/metadata"
)

// Docker's restart backoff: the first restart waits restartDelayMin, each
// further one twice the last, at most restartDelayMax; a container that
// ran restartResetAfter or longer starts again from restartDelayMin.
const (
	restartDelayMin   = 100 * time.Millisecond
	restartDelayMax   = time.Minute
	restartResetAfter = 10 * time.Second
)

// errRestartAbandoned is what a policy restart returns when the container
// was stopped, started or removed while it waited.
var errRestartAbandoned = errors.New("restart abandoned: the container was stopped, started or removed meanwhile")

// decideRestart applies the restart policy hc to st, the state of a
// container that just exited (Status, ExitCode, StartedAt and FinishedAt
// already recorded): when the policy restarts it, st becomes Restarting,
// its RestartCount grows and RestartDelay is the backoff to wait. As
// docker does, a container the user stopped or one with --rm is never
// restarted, and on-failure:N restarts on a non-zero exit code while
// fewer than N restarts were made (N = 0: no limit).
func decideRestart(st *containers.State, hc *container.HostConfig) bool {
	if hc == nil || hc.AutoRemove || st.ManuallyStopped {
		return false
	}
	p := hc.RestartPolicy
	restart := false
	switch {
	case p.IsAlways(), p.IsUnlessStopped():
		restart = true
	case p.IsOnFailure():
		restart = st.ExitCode != 0 && (p.MaximumRetryCount == 0 || st.RestartCount < p.MaximumRetryCount)
	}
	if !restart {
		return false
	}
	switch {
	case st.RestartDelay <= 0 || st.FinishedAt.Sub(st.StartedAt) >= restartResetAfter:
		st.RestartDelay = restartDelayMin
	default:
		st.RestartDelay = min(st.RestartDelay*2, restartDelayMax)
	}
	st.Status = containers.Restarting
	st.RestartCount++
	return true
}

// startedState fills in st, the state of a container that was just
// started, from prev, its state before: a policy restart keeps the
// restart count and backoff; a start by the user (or by Restore) resets
// both, as docker does. A container with a health check starts in health
// "starting", keeping the log of earlier checks.
func startedState(st *containers.State, prev containers.State, cfg *container.Config, policyRestart bool) {
	st.RestartCount, st.RestartDelay = 0, 0
	if policyRestart {
		st.RestartCount, st.RestartDelay = prev.RestartCount, prev.RestartDelay
	}
	st.Health = nil
	if _, ok := healthCommand(cfg); ok {
		st.Health = &containers.Health{Status: healthStarting}
		if prev.Health != nil {
			st.Health.Log = prev.Health.Log
		}
	}
}

// restartAfterBackoff is the second half of a policy restart, run by the
// container's cleanup command (the monitor's exit command): it waits the
// backoff recorded in c's state, then starts c again unless, meanwhile,
// the user stopped, started or removed it. StartContainer re-reads the
// record under the container's lock, so a stop that took the lock first
// wins.
func (s *Store) restartAfterBackoff(ctx context.Context, c *containers.Container) error {
	t := time.NewTimer(c.State.RestartDelay)
	select {
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	case <-t.C:
	}
	if _, err := os.Stat(s.containerDir(c.ID)); errors.Is(err, os.ErrNotExist) {
		return nil // removed
	}
	_, conn, err := s.StartContainer(ctx, c.ID, StartOptions{policyRestart: true})
	if conn != nil {
		conn.Close()
	}
	switch {
	case errors.Is(err, errRestartAbandoned), errors.Is(err, metadata.ErrNotFound), errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		// The restart failed: docker leaves such a container exited
		// (StartContainer recorded the error); later exits of a
		// container that did start again are handled by its own
		// cleanup.
		s.db.UpdateContainer(context.WithoutCancel(ctx), c.ID, func(rec *containers.Container) error {
			if rec.State.Status == containers.Restarting {
				rec.State.Status = containers.Exited
			}
			return nil
		})
		return fmt.Errorf("restart container %s: %w", c.ID, err)
	}
	return nil
}

// checkPolicyRestart is StartContainer's test, under the container's
// lock, that a policy restart of c is still wanted.
func checkPolicyRestart(c *containers.Container) error {
	if c.State.Status != containers.Restarting || c.State.ManuallyStopped {
		return errRestartAbandoned
	}
	return nil
}

// markManuallyStopped records that the user stopped (or killed, or
// force-removed) the container, so that its restart policy leaves it
// stopped; a container waiting to be restarted is stopped at once. It
// takes the container's lock, so a policy restart that already took it
// finishes first and the caller then sees the container running.
func (s *Store) markManuallyStopped(ctx context.Context, id string) (*containers.Container, error) {
	unlock, err := s.lockContainer(id)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return s.db.UpdateContainer(ctx, id, func(rec *containers.Container) error {
		rec.State.ManuallyStopped = true
		if rec.State.Status == containers.Restarting {
			rec.State.Status = containers.Exited
		}
		return nil
	})
}

// Restore starts, without delay, the containers that docker's daemon
// would start when it starts: those with restart policy always (even if
// the user stopped them), those with unless-stopped that the user did not
// stop, and those whose restart was pending. Containers that ran when the
// host went down are cleaned up first, so their restart policy decides
// too. berth has no daemon: a unit run at boot runs `berth container
// restore` (as podman-restart.service runs `podman start --all --filter
// restart-policy=always`). It returns the containers it started and the
// errors of those it could not start.
func (s *Store) Restore(ctx context.Context) ([]*containers.Container, error) {
	list, err := s.Containers(ctx)
	if err != nil {
		return nil, err
	}
	var started []*containers.Container
	var errs []error
	for _, c := range list {
		if !wantsRestore(c) {
			continue
		}
		nc, conn, err := s.StartContainer(ctx, c.ID, StartOptions{})
		if conn != nil {
			conn.Close()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("restore container %s: %w", c.Name, err))
			continue
		}
		started = append(started, nc)
	}
	return started, errors.Join(errs...)
}

// wantsRestore reports whether Restore starts c.
func wantsRestore(c *containers.Container) bool {
	p := c.HostConfig.RestartPolicy
	switch c.State.Status {
	case containers.Restarting:
		return true
	case containers.Exited:
		return p.IsAlways() || (p.IsUnlessStopped() && !c.State.ManuallyStopped)
	}
	return false
}

// spawnRestarter runs, detached, the cleanup command that the monitor of
// container id would have run had it not died: it waits the backoff and
// restarts the container.
func (s *Store) spawnRestarter(id string) {
	exe, err := s.exe()
	if err != nil {
		return
	}
	cmd := exec.Command(exe, "--root", s.root, "--runroot", s.runRoot, "container", "cleanup", id)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if cmd.Start() == nil {
		cmd.Process.Release()
	}
}
