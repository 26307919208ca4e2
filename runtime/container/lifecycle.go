package container

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/cgroups"
	"github.com/berth-project/berth/runtime/hooks"
)

// Start releases a created container's init, which then runs the
// startContainer hooks and execs the user's program; then the poststart
// hooks run here.
func (c *Container) Start() error {
	if st := c.Status(); st != Created {
		return fmt.Errorf("container %s: cannot start a container that is %s", c.State.ID, st)
	}
	fifo := filepath.Join(c.dir, fifoFile)
	if err := c.releaseFifo(fifo); err != nil {
		return err
	}
	os.Remove(fifo)
	c.postStart()
	return nil
}

// releaseFifo opens the exec fifo for reading, which unblocks init, and
// gives up if init dies first.
func (c *Container) releaseFifo(fifo string) error {
	pidfd, err := unix.PidfdOpen(c.State.Pid, 0)
	if err != nil {
		return fmt.Errorf("container %s: init is gone: %w", c.State.ID, err)
	}
	defer unix.Close(pidfd)
	type result struct {
		data []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		f, err := os.OpenFile(fifo, os.O_RDONLY, 0)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer f.Close()
		data, err := io.ReadAll(f)
		done <- result{data, err}
	}()
	exited := make(chan struct{})
	go func() {
		fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
		for {
			if _, err := unix.Poll(fds, -1); err != unix.EINTR {
				break
			}
		}
		close(exited)
	}()
	var r result
	select {
	case r = <-done:
	case <-exited:
		// init is gone: its end of the fifo closed, or it never opened
		// it, and then the reader is unblocked by a writer of ours. A
		// program that exits at once after exec lands here too: the
		// fifo's content tells which.
		for {
			select {
			case r = <-done:
			case <-time.After(time.Millisecond):
				if f, err := os.OpenFile(fifo, os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
					f.Close()
				}
				continue
			}
			break
		}
	}
	if r.err != nil {
		return fmt.Errorf("container %s: open exec fifo: %w", c.State.ID, r.err)
	}
	if len(r.data) == 0 {
		return fmt.Errorf("container %s: init exited before it was started", c.State.ID)
	}
	return nil
}

func (c *Container) postStart() {
	if h := c.State.Spec.Hooks; h != nil {
		// A failing poststart hook is only worth a warning (runtime spec).
		if err := hooks.Run("poststart", h.Poststart, c.hookState(Running)); err != nil {
			fmt.Fprintf(os.Stderr, "warning: %v\n", err)
		}
	}
}

// Kill sends sig to init, or with all to every process in the container.
func (c *Container) Kill(sig unix.Signal, all bool) error {
	st := c.Status()
	if !all {
		if st == Stopped {
			return fmt.Errorf("container %s: %w", c.State.ID, ErrNotRunning)
		}
		return c.signalInit(sig)
	}
	cg, err := c.cgroup()
	if err != nil {
		return err
	}
	return signalAll(cg, sig)
}

// signalAll signals every process in the cgroup, frozen so none can fork
// away in between.
func signalAll(cg cgroups.Manager, sig unix.Signal) error {
	frozen := cg.Freeze() == nil
	pids, err := cg.Pids()
	if err == nil {
		for _, pid := range pids {
			unix.Kill(pid, sig)
		}
	}
	if frozen {
		cg.Thaw()
	}
	return err
}

// Delete removes a container. A created container's init is killed; a
// running or paused one needs force.
func (c *Container) Delete(force bool) error {
	st := c.Status()
	switch st {
	case Running, Paused:
		if !force {
			return fmt.Errorf("container %s is %s: stop it first or use --force", c.State.ID, st)
		}
	}
	cg, cgErr := c.cgroup()
	if st != Stopped {
		c.signalInit(unix.SIGKILL)
		if cgErr == nil {
			signalAll(cg, unix.SIGKILL)
		}
		c.waitInitGone(5 * time.Second)
	}
	if cgErr == nil {
		// Processes of a container without its own pid namespace outlive
		// init: kill what is left.
		if pids, _ := cg.Pids(); len(pids) > 0 {
			signalAll(cg, unix.SIGKILL)
		}
		if err := cg.Destroy(); err != nil {
			return fmt.Errorf("container %s: %w", c.State.ID, err)
		}
	}
	if h := c.State.Spec.Hooks; h != nil {
		if err := hooks.Run("poststop", h.Poststop, c.hookState(Stopped)); err != nil {
			fmt.Fprintf(os.Stderr, "warning: %v\n", err)
		}
	}
	if err := os.RemoveAll(c.dir); err != nil {
		return fmt.Errorf("container %s: remove state: %w", c.State.ID, err)
	}
	return nil
}

func (c *Container) waitInitGone(timeout time.Duration) {
	// If init is our child (run), reap it; otherwise poll.
	var ws unix.WaitStatus
	deadline := time.Now().Add(timeout)
	for c.initAlive() && time.Now().Before(deadline) {
		if pid, _ := unix.Wait4(c.State.Pid, &ws, unix.WNOHANG, nil); pid == c.State.Pid {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// Pause freezes every process of the container.
func (c *Container) Pause() error {
	if st := c.Status(); st != Running && st != Created {
		return fmt.Errorf("container %s is %s: cannot pause it", c.State.ID, st)
	}
	cg, err := c.cgroup()
	if err != nil {
		return err
	}
	return cg.Freeze()
}

// Resume thaws a paused container.
func (c *Container) Resume() error {
	if st := c.Status(); st != Paused {
		return fmt.Errorf("container %s is %s, not paused", c.State.ID, st)
	}
	cg, err := c.cgroup()
	if err != nil {
		return err
	}
	return cg.Thaw()
}

// Update applies new resource limits and records them.
func (c *Container) Update(r *specs.LinuxResources) error {
	if c.Status() == Stopped {
		return fmt.Errorf("container %s is stopped", c.State.ID)
	}
	cg, err := c.cgroup()
	if err != nil {
		return err
	}
	if err := cg.Set(r); err != nil {
		return err
	}
	c.State.Spec.Linux.Resources = r
	return c.save()
}

// Pids lists the container's processes.
func (c *Container) Pids() ([]int, error) {
	cg, err := c.cgroup()
	if err != nil {
		return nil, err
	}
	return cg.Pids()
}

// Stats reads the container's cgroup statistics.
func (c *Container) Stats() (*cgroups.Stats, error) {
	cg, err := c.cgroup()
	if err != nil {
		return nil, err
	}
	return cg.Stats()
}

// ID returns the container's id.
func (c *Container) ID() string { return c.State.ID }

// ErrNotRunning is returned when an operation needs a live container. Its
// text is runc's: containerd's shim matches it to tell "already exited"
// from a failure.
var ErrNotRunning = errors.New("container not running")

// Forget removes container id in whatever state a create cut short (its
// process killed) left it: a container with a state as Delete(true) does;
// a directory without a state holds nothing else, since Create saves the
// state before it makes the cgroup or any process, and is removed. An id
// with no directory is not an error. The caller must know no create of id
// is under way.
func (r *Runtime) Forget(id string) error {
	c, err := r.Load(id)
	if err == nil {
		return c.Delete(true)
	}
	if !errors.Is(err, ErrNotExist) {
		return err
	}
	if err := os.RemoveAll(r.dir(id)); err != nil {
		return fmt.Errorf("container %s: remove state: %w", id, err)
	}
	return nil
}
