package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/containers"
	"github.com/berth-project/berth/monitor"
)

// Docker's health check defaults, used where the container's
// Healthcheck leaves a field zero, and its limits on what is kept.
const (
	defaultHealthInterval = 30 * time.Second
	defaultHealthTimeout  = 30 * time.Second
	defaultHealthRetries  = 3
	healthLogMax          = 5       // results kept in State.Health.Log
	healthOutputMax       = 4 << 10 // bytes of a check's output kept
)

// Health statuses, in docker's words.
var (
	healthStarting  = string(container.Starting)
	healthHealthy   = string(container.Healthy)
	healthUnhealthy = string(container.Unhealthy)
)

// healthCommand is the command of cfg's health check: Test ["CMD", args...]
// runs args, ["CMD-SHELL", cmd] runs cmd with the container's shell
// (/bin/sh -c unless SHELL says otherwise). No Test, or ["NONE"], is no
// check.
func healthCommand(cfg *container.Config) ([]string, bool) {
	if cfg == nil || cfg.Healthcheck == nil || len(cfg.Healthcheck.Test) == 0 {
		return nil, false
	}
	test := cfg.Healthcheck.Test
	switch test[0] {
	case "CMD":
		if len(test) < 2 {
			return nil, false
		}
		return test[1:], true
	case "CMD-SHELL":
		if len(test) < 2 {
			return nil, false
		}
		shell := cfg.Shell
		if len(shell) == 0 {
			shell = []string{"/bin/sh", "-c"}
		}
		return append(append([]string{}, shell...), strings.Join(test[1:], " ")), true
	}
	return nil, false
}

// healthOptions configures the monitor mo to run `berth container
// healthcheck ID` on c's health check interval, if c has a health check.
// Each check waits the interval after the last one ended (docker's
// timing), the start interval instead during the start period. Docker
// also leaves the start interval at the first healthy result; the
// monitor keeps it for the whole start period.
func (s *layout) healthOptions(c *containers.Container, exe string, mo *monitor.Options) {
	if _, ok := healthCommand(c.Config); !ok {
		return
	}
	h := c.Config.Healthcheck
	mo.HealthCmd = []string{exe, "--root", s.root, "--runroot", s.runRoot, "container", "healthcheck", c.ID}
	mo.HealthInterval = cmp(h.Interval, defaultHealthInterval)
	if h.StartPeriod > 0 && h.StartInterval > 0 {
		mo.HealthStartInterval, mo.HealthStartPeriod = h.StartInterval, h.StartPeriod
	}
}

// cmp is d, or def if d is not positive.
func cmp(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Healthcheck runs the health check of the running container ref once,
// in the container as exec does, and records the result in its
// State.Health as docker does: the last 5 results (output cut at 4 KiB),
// status healthy after a success, unhealthy after Retries consecutive
// failures; failures during the start period, before any success, are
// not counted. A check that runs longer than the timeout is killed and
// fails. The container's monitor runs it (as `berth container
// healthcheck ID`) on the check's interval. It returns the new health
// state.
func (s *Store) Healthcheck(ctx context.Context, ref string) (*containers.Health, error) {
	c, err := s.Container(ctx, ref)
	if err != nil {
		return nil, err
	}
	cmd, ok := healthCommand(c.Config)
	if !ok {
		return nil, fmt.Errorf("container %s has no health check", c.Name)
	}
	if c.State.Status != containers.Running {
		return nil, fmt.Errorf("container %s is %s, not running: %w", c.Name, c.State.Status, ErrConflict)
	}
	result := s.probe(ctx, c, cmd, cmp(c.Config.Healthcheck.Timeout, defaultHealthTimeout))
	started := c.State.StartedAt
	nc, err := s.db.UpdateContainer(ctx, c.ID, func(rec *containers.Container) error {
		if rec.State.Status != containers.Running || !rec.State.StartedAt.Equal(started) {
			return errHealthStale
		}
		rec.State.Health = recordHealth(rec.State.Health, result, rec.Config.Healthcheck, started)
		return nil
	})
	if errors.Is(err, errHealthStale) {
		return nil, fmt.Errorf("container %s stopped during its health check: %w", c.Name, ErrConflict)
	}
	if err != nil {
		return nil, err
	}
	return nc.State.Health, nil
}

var errHealthStale = errors.New("container stopped or restarted during the check")

// recordHealth is h after result, for a container started at started
// with health check cfg.
func recordHealth(h *containers.Health, result containers.HealthResult, cfg *container.HealthConfig, started time.Time) *containers.Health {
	if h == nil {
		h = &containers.Health{Status: healthStarting}
	} else {
		cp := *h
		h = &cp
	}
	h.Log = append(append([]containers.HealthResult{}, h.Log...), result)
	if len(h.Log) > healthLogMax {
		h.Log = h.Log[len(h.Log)-healthLogMax:]
	}
	if result.ExitCode == 0 {
		h.FailingStreak = 0
		h.Status = healthHealthy
		return h
	}
	if h.Status == healthStarting && result.Start.Sub(started) < cfg.StartPeriod {
		return h // still starting: the failure does not count
	}
	h.FailingStreak++
	retries := cfg.Retries
	if retries <= 0 {
		retries = defaultHealthRetries
	}
	if h.FailingStreak >= retries {
		h.Status = healthUnhealthy
	}
	return h
}

// probe runs cmd in c, killing it after timeout, and returns its result:
// its exit code and combined output; -1 and docker's message when it
// timed out or could not be run.
func (s *Store) probe(ctx context.Context, c *containers.Container, cmd []string, timeout time.Duration) containers.HealthResult {
	res := containers.HealthResult{Start: time.Now().UTC(), ExitCode: -1}
	fail := func(err error) containers.HealthResult {
		res.Output, res.End = err.Error(), time.Now().UTC()
		return res
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return fail(err)
	}
	defer devnull.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	defer r.Close()
	out := make(chan []byte, 1)
	go func() { out <- readLimited(r, healthOutputMax) }()

	type result struct {
		code int
		err  error
	}
	pidFile := filepath.Join(s.runDir(c.ID), fmt.Sprintf("health-%d.pid", os.Getpid()))
	defer os.Remove(pidFile)
	exited := make(chan result, 1)
	go func() {
		code, err := s.Exec(ctx, c.ID, ExecOptions{Cmd: cmd, Stdio: [3]*os.File{devnull, w, w}, PidFile: pidFile})
		w.Close()
		exited <- result{code, err}
	}()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var ex result
	timedOut := false
	select {
	case ex = <-exited:
	case <-timer.C:
		// Kill the check: the runtime writes its pid once it runs,
		// and it stays our child (its pid ours) until Exec reaps it.
		timedOut = true
		tick := time.NewTicker(10 * time.Millisecond)
	wait:
		for killed := false; ; {
			if pid := readPid(pidFile); pid > 0 && !killed {
				killed = unix.Kill(pid, unix.SIGKILL) == nil
			}
			select {
			case ex = <-exited:
				break wait
			case <-tick.C:
			}
		}
		tick.Stop()
	}
	// A process the check left in the background may hold the pipe.
	r.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	output := <-out
	switch {
	case timedOut:
		return fail(fmt.Errorf("Health check exceeded timeout (%s)", timeout))
	case ex.err != nil:
		return fail(ex.err)
	}
	res.ExitCode, res.Output, res.End = ex.code, string(output), time.Now().UTC()
	return res
}

// readLimited reads r to its end (or its deadline) and returns the first
// max bytes.
func readLimited(r io.Reader, max int) []byte {
	var buf bytes.Buffer
	io.Copy(&buf, io.LimitReader(r, int64(max)))
	io.Copy(io.Discard, r)
	return buf.Bytes()
}

// readPid reads a pid file, 0 if it is not (yet) there.
func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}
