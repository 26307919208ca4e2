package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/berth-project/berth/containers"
	"github.com/berth-project/berth/oci"
	"github.com/berth-project/berth/runtime/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ExecOptions are the options of Exec.
type ExecOptions struct {
	Cmd        []string
	Env        []string // KEY=VALUE over the container's environment
	User       string   // docker's -u forms; "" the container's user
	WorkingDir string   // "" the container's
	Tty        bool     // a pty on this process's terminal
	Detach     bool
	// Privileged gives the process every capability berth can grant
	// (docker's exec --privileged); the container's seccomp profile and
	// no_new_privs still apply.
	Privileged bool
	Stdio      [3]*os.File
	PidFile    string // where the process's host pid is written once it runs
}

// Exec runs a new process in the running container ref, with the
// container's capabilities, seccomp profile and cgroup, and returns its
// exit code (0 when detached). A command that cannot be run gives a
// *StartError with docker's 126 or 127.
func (s *Store) Exec(ctx context.Context, ref string, o ExecOptions) (code int, _ error) {
	c, err := s.Container(ctx, ref)
	if err != nil {
		return -1, err
	}
	if c.State.Status == containers.Paused {
		return -1, fmt.Errorf("container %s is paused, unpause the container before exec: %w", c.ID, ErrConflict)
	}
	if c.State.Status != containers.Running {
		return -1, fmt.Errorf("container %s is not running: %w", c.ID, ErrConflict)
	}
	if len(o.Cmd) == 0 {
		return -1, fmt.Errorf("exec: no command specified")
	}
	rt := s.runtime()
	rc := rt.load(c.ID)
	if rc == nil {
		return -1, fmt.Errorf("container %s is not running: %w", c.ID, ErrConflict)
	}
	p := *rc.State.Spec.Process
	p.Args = o.Cmd
	p.Env = mergeEnv(p.Env, o.Env)
	p.Terminal = o.Tty
	p.ConsoleSize = nil
	if o.WorkingDir != "" {
		p.Cwd = o.WorkingDir
	}
	if o.User != "" {
		u, err := oci.ResolveUser(filepath.Join(s.containerDir(c.ID), "rootfs"), o.User)
		if err != nil {
			return -1, err
		}
		p.User = u
	}
	if o.Privileged {
		all, err := oci.PrivilegedCapabilities()
		if err != nil {
			return -1, err
		}
		p.Capabilities = &specs.LinuxCapabilities{Bounding: all, Effective: slices.Clone(all), Permitted: slices.Clone(all)}
	}
	defer s.execEvents(ctx, c, o)(&code)
	code, err = rt.rt.Exec(rc, container.ExecOpts{Process: &p, Detach: o.Detach, Stdio: o.Stdio, PidFile: o.PidFile})
	if err != nil {
		return -1, &StartError{Code: StartErrorCode(err.Error()), Err: err}
	}
	return code, nil
}

// mergeEnv returns base with over's variables replacing those of the
// same name.
func mergeEnv(base, over []string) []string {
	out := slices.Clone(base)
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		i := slices.IndexFunc(out, func(e string) bool { e, _, _ = strings.Cut(e, "="); return e == k })
		if i >= 0 {
			out[i] = kv
		} else {
			out = append(out, kv)
		}
	}
	return out
}
