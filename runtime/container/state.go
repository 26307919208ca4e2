package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/cgroups"
)

// Status values, as the OCI state names them.
const (
	Creating = specs.StateCreating
	Created  = specs.StateCreated
	Running  = specs.StateRunning
	Stopped  = specs.StateStopped
	Paused   = specs.ContainerState("paused")
)

const (
	stateFile = "state.json"
	fifoFile  = "exec.fifo"
)

// ErrNotExist is returned for a container id with no state.
var ErrNotExist = errors.New("container does not exist")

// ValidateID refuses ids that are not safe as a directory name: runc's
// rule, letters, digits and _ + - . only.
func ValidateID(id string) error {
	ok := id != "" && id != "." && id != ".." && len(id) <= 1024
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("_+-.", c)) {
			ok = false
		}
	}
	if !ok {
		return fmt.Errorf("invalid container id %q: use letters, digits, '_', '+', '-' and '.'", id)
	}
	return nil
}

// State is what berth keeps on disk for a container, in ROOT/ID/state.json.
type State struct {
	ID          string            `json:"id"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Pid         int               `json:"pid"`
	PidStart    uint64            `json:"pidStart"` // init's start time, against pid reuse
	Created     time.Time         `json:"created"`
	Owner       string            `json:"owner"` // uid
	Rootless    bool              `json:"rootless"`
	CgroupPaths map[string]string `json:"cgroupPaths"`
	Spec        *specs.Spec       `json:"spec"`
}

// Container is a container in a runtime root.
type Container struct {
	dir   string
	State State
}

// ociState is the OCI state document, with runc's extra fields that
// containerd and podman read.
type ociState struct {
	specs.State
	Rootfs  string    `json:"rootfs"`
	Created time.Time `json:"created"`
	Owner   string    `json:"owner"`
}

func (r *Runtime) dir(id string) string { return filepath.Join(r.Root, id) }

// Load reads a container's state.
func (r *Runtime) Load(id string) (*Container, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	dir := r.dir(id)
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("container %s: %w", id, ErrNotExist)
		}
		return nil, fmt.Errorf("container %s: %w", id, err)
	}
	c := &Container{dir: dir}
	if err := json.Unmarshal(data, &c.State); err != nil {
		return nil, fmt.Errorf("container %s: corrupt %s: %w", id, stateFile, err)
	}
	return c, nil
}

func (c *Container) save() error {
	data, err := json.Marshal(&c.State)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(c.dir, stateFile), data, 0o600)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// Status reports the container's live status.
func (c *Container) Status() specs.ContainerState {
	if !c.initAlive() {
		return Stopped
	}
	if _, err := os.Lstat(filepath.Join(c.dir, fifoFile)); err == nil {
		return Created
	}
	if m, err := c.cgroup(); err == nil {
		if frozen, err := m.Frozen(); err == nil && frozen {
			return Paused
		}
	}
	return Running
}

// initAlive reports whether the container's init is still the process
// that was started (not a zombie, not a reused pid).
func (c *Container) initAlive() bool {
	if c.State.Pid <= 0 {
		return false
	}
	start, state, err := procStat(c.State.Pid)
	if err != nil || start != c.State.PidStart {
		return false
	}
	return state != 'Z' && state != 'X'
}

// procStat returns a process's start time (clock ticks since boot) and
// state letter from /proc/PID/stat.
func procStat(pid int) (uint64, byte, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	// The command name may contain spaces and parentheses: fields start
	// after the last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	start, err := strconv.ParseUint(f[19], 10, 64)
	return start, f[0][0], err
}

// OCIState returns the state document `state` prints.
func (c *Container) OCIState() any {
	st := c.Status()
	pid := c.State.Pid
	if st == Stopped {
		pid = 0
	}
	var ann map[string]string
	if c.State.Spec != nil {
		ann = c.State.Spec.Annotations
	}
	return ociState{
		State: specs.State{Version: specs.Version, ID: c.State.ID, Status: st, Pid: pid,
			Bundle: c.State.Bundle, Annotations: ann},
		Rootfs: c.State.Rootfs, Created: c.State.Created, Owner: c.Owner(),
	}
}

// Owner is the name of the user who created the container (its uid when
// the name is unknown). Resolved when shown: create stays off NSS.
func (c *Container) Owner() string {
	if u, err := user.LookupId(c.State.Owner); err == nil {
		return u.Username
	}
	return c.State.Owner
}

// hookState is the state hooks get on stdin.
func (c *Container) hookState(status specs.ContainerState) []byte {
	var ann map[string]string
	if c.State.Spec != nil {
		ann = c.State.Spec.Annotations
	}
	data, _ := json.Marshal(specs.State{Version: specs.Version, ID: c.State.ID, Status: status,
		Pid: c.State.Pid, Bundle: c.State.Bundle, Annotations: ann})
	return data
}

func (c *Container) cgroup() (cgroups.Manager, error) {
	return cgroups.Load(c.State.CgroupPaths)
}

// signalInit sends sig to init through a pidfd, so a pid reused since
// init exited can never receive it.
func (c *Container) signalInit(sig unix.Signal) error {
	fd, err := unix.PidfdOpen(c.State.Pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("container %s: %w", c.State.ID, ErrNotRunning)
		}
		return fmt.Errorf("container %s: open init: %w", c.State.ID, err)
	}
	defer unix.Close(fd)
	if !c.initAlive() {
		return fmt.Errorf("container %s: %w", c.State.ID, ErrNotRunning)
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil {
		return fmt.Errorf("container %s: signal %d: %w", c.State.ID, sig, err)
	}
	return nil
}

// List returns every container in the root.
func (r *Runtime) List() ([]*Container, error) {
	ents, err := os.ReadDir(r.Root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []*Container
	for _, e := range ents {
		if !e.IsDir() || ValidateID(e.Name()) != nil {
			continue
		}
		c, err := r.Load(e.Name())
		if err != nil {
			continue // being created, or its state is unreadable
		}
		out = append(out, c)
	}
	return out, nil
}
