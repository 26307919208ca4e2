package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Config says where a container's cgroup lives.
type Config struct {
	// Path is linux.cgroupsPath from config.json. An absolute path is
	// relative to the root of each hierarchy, a relative one to the cgroup
	// of the calling process. Empty means the relative path ContainerID.
	Path string
	// ContainerID names the default cgroup when Path is empty.
	ContainerID string
	// Rootless is set when the runtime runs without root: permission
	// errors creating cgroups or moving processes are tolerated, and Set
	// fails only when resources are requested for a cgroup that could not
	// be created.
	Rootless bool
}

// Manager manages the cgroup of one container.
type Manager interface {
	// Apply creates the cgroup directories (every mounted v1 hierarchy, or
	// the v2 directory after enabling the available controllers in the
	// parents' cgroup.subtree_control) and, if pid > 0, moves pid into
	// them.
	Apply(pid int) error
	// Set writes the resource limits of r. Every error names the
	// linux.resources field and the file involved.
	Set(r *specs.LinuxResources) error
	// Freeze freezes every process of the cgroup and waits until the
	// kernel reports the cgroup as frozen.
	Freeze() error
	// Thaw thaws the cgroup and waits until it is no longer frozen.
	Thaw() error
	// Frozen reports whether the cgroup is frozen.
	Frozen() (bool, error)
	// Pids returns the pids of every process in the cgroup and its
	// descendants.
	Pids() ([]int, error)
	// Stats reads the usage statistics of the cgroup.
	Stats() (*Stats, error)
	// Destroy removes the cgroup directories, children first. It retries
	// briefly while exiting processes keep a directory busy and ignores
	// directories that do not exist. It does not kill processes.
	Destroy() error
	// Paths returns the cgroup directories, to be saved in the container's
	// state and passed to Load: on v1 controller name -> absolute
	// directory, on v2 "" -> absolute directory.
	Paths() map[string]string
}

// New resolves the cgroup location described by c for the calling process.
// It creates nothing.
func New(c Config) (Manager, error) {
	p := c.Path
	if err := checkCgroupsPath(p); err != nil {
		return nil, err
	}
	if p == "" {
		if c.ContainerID == "" || strings.Contains(c.ContainerID, "/") {
			return nil, fmt.Errorf("linux.cgroupsPath is empty and container ID %q cannot name a cgroup", c.ContainerID)
		}
		p = c.ContainerID
	}
	mode := DetectMode()
	v1, v2, err := discoverHierarchies()
	if err != nil {
		return nil, err
	}
	if mode == Unified {
		if v2 == nil {
			return nil, errors.New("cgroup v2 is mounted at /sys/fs/cgroup but not listed in /proc/self/mountinfo or /proc/self/cgroup")
		}
		dir, err := v2.dir(p)
		if err != nil {
			return nil, err
		}
		return &v2Manager{dir: dir, mountpoint: v2.mnt.mountpoint, rootless: c.Rootless}, nil
	}
	if len(v1) == 0 {
		return nil, errors.New("no cgroup v1 hierarchy is mounted")
	}
	m := &v1Manager{paths: make(map[string]string), rootless: c.Rootless}
	for _, h := range v1 {
		dir, err := h.dir(p)
		if err != nil {
			return nil, err
		}
		for _, ctrl := range h.controllers {
			m.paths[ctrl] = dir
		}
	}
	if mode == Hybrid && v2 != nil {
		if dir, err := v2.dir(p); err == nil {
			m.unified = dir
		}
	}
	return m, nil
}

// Load re-opens the manager of a container from the directories saved from
// Manager.Paths.
func Load(paths map[string]string) (Manager, error) {
	if len(paths) == 0 {
		return nil, errors.New("load cgroup: no cgroup paths saved")
	}
	for k, p := range paths {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("load cgroup: path %q of %q is not absolute", p, k)
		}
	}
	if dir, ok := paths[""]; ok && len(paths) == 1 {
		return &v2Manager{dir: filepath.Clean(dir), mountpoint: cgroup2MountOf(dir)}, nil
	}
	m := &v1Manager{paths: make(map[string]string)}
	for k, p := range paths {
		if k == "" {
			m.unified = filepath.Clean(p)
			continue
		}
		m.paths[k] = filepath.Clean(p)
	}
	return m, nil
}

// cgroup2MountOf returns the cgroup2 mount point containing dir, or
// /sys/fs/cgroup when it cannot be found.
func cgroup2MountOf(dir string) string {
	mounts, err := readCgroupMounts()
	if err != nil {
		return cgroupRoot
	}
	best := ""
	for _, m := range mounts {
		if m.fstype != "cgroup2" {
			continue
		}
		if (dir == m.mountpoint || strings.HasPrefix(dir, m.mountpoint+"/")) && len(m.mountpoint) > len(best) {
			best = m.mountpoint
		}
	}
	if best == "" {
		return cgroupRoot
	}
	return best
}

// isPermission reports whether err is a permission error, the only kind
// tolerated in rootless mode.
func isPermission(err error) bool {
	return errors.Is(err, os.ErrPermission)
}
