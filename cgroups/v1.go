package cgroups

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// v1Manager manages a cgroup on a legacy or hybrid host.
type v1Manager struct {
	// paths maps each v1 controller ("cpu", "memory", "name=systemd") to
	// the container's directory in its hierarchy. Co-mounted controllers
	// share a directory.
	paths map[string]string
	// unified is the directory in the controller-less cgroup2 hierarchy
	// of a hybrid host, or "".
	unified  string
	rootless bool
}

// Paths implements Manager.
func (m *v1Manager) Paths() map[string]string {
	out := maps.Clone(m.paths)
	if m.unified != "" {
		out[""] = m.unified
	}
	return out
}

// optional reports whether failures on a hierarchy are ignored: named
// hierarchies (name=systemd) carry no controller, so like the hybrid
// cgroup2 directory they only serve to place the process fully.
func optional(ctrl string) bool {
	return strings.HasPrefix(ctrl, "name=")
}

// dirs returns the distinct directories with the controllers using each,
// in a stable order.
func (m *v1Manager) dirs() ([]string, map[string][]string) {
	byDir := make(map[string][]string)
	for ctrl, dir := range m.paths {
		byDir[dir] = append(byDir[dir], ctrl)
	}
	dirs := slices.Sorted(maps.Keys(byDir))
	return dirs, byDir
}

// Apply implements Manager.
func (m *v1Manager) Apply(pid int) error {
	dirs, byDir := m.dirs()
	for _, dir := range dirs {
		ctrls := byDir[dir]
		opt := slices.ContainsFunc(ctrls, optional) && len(ctrls) == 1
		if err := m.applyDir(dir, ctrls, pid); err != nil {
			switch {
			case opt:
			case m.rootless && isPermission(err):
				for _, c := range ctrls {
					delete(m.paths, c)
				}
			default:
				return err
			}
		}
	}
	if m.unified != "" {
		// Best effort: the hybrid cgroup2 hierarchy has no controllers.
		if err := os.MkdirAll(m.unified, 0o755); err == nil && pid > 0 {
			_ = writeFile("", m.unified, "cgroup.procs", strconv.Itoa(pid))
		}
	}
	return nil
}

func (m *v1Manager) applyDir(dir string, ctrls []string, pid int) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	if slices.Contains(ctrls, "cpuset") {
		if err := ensureCpuset(dir); err != nil {
			return err
		}
	}
	if pid > 0 {
		if err := writeFile("", dir, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("add process %d to cgroup: %w", pid, err)
		}
	}
	return nil
}

// ensureCpuset fills the empty cpuset.cpus and cpuset.mems of dir (and of
// its ancestors, top-down) with the parent's values: a v1 cpuset cgroup
// with empty sets cannot hold processes.
func ensureCpuset(dir string) error {
	cpus, err := readFile(dir, "cpuset.cpus")
	if err != nil {
		return fmt.Errorf("read cpuset of %s: %w", dir, err)
	}
	mems, err := readFile(dir, "cpuset.mems")
	if err != nil {
		return fmt.Errorf("read cpuset of %s: %w", dir, err)
	}
	if cpus != "" && mems != "" {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent == dir || !exists(parent, "cpuset.cpus") {
		return fmt.Errorf("cpuset of %s is empty and has no parent to copy from", dir)
	}
	if err := ensureCpuset(parent); err != nil {
		return err
	}
	if cpus == "" {
		v, err := readFile(parent, "cpuset.cpus")
		if err != nil {
			return fmt.Errorf("read cpuset of %s: %w", parent, err)
		}
		if err := writeFile("", dir, "cpuset.cpus", v); err != nil {
			return fmt.Errorf("copy cpuset.cpus from parent: %w", err)
		}
	}
	if mems == "" {
		v, err := readFile(parent, "cpuset.mems")
		if err != nil {
			return fmt.Errorf("read cpuset of %s: %w", parent, err)
		}
		if err := writeFile("", dir, "cpuset.mems", v); err != nil {
			return fmt.Errorf("copy cpuset.mems from parent: %w", err)
		}
	}
	return nil
}

// Destroy implements Manager.
func (m *v1Manager) Destroy() error {
	dirs, _ := m.dirs()
	if m.unified != "" {
		dirs = append(dirs, m.unified)
	}
	var errs []error
	for _, dir := range dirs {
		if err := removeTree(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// pidsDir picks the hierarchy whose membership Pids reports.
func (m *v1Manager) pidsDir() (string, error) {
	for _, c := range []string{"pids", "freezer", "devices", "memory", "cpu", "cpuacct", "cpuset", "blkio"} {
		if dir, ok := m.paths[c]; ok {
			return dir, nil
		}
	}
	for _, dir := range m.paths {
		return dir, nil
	}
	return "", errors.New("no cgroup v1 hierarchy available")
}

// Pids implements Manager.
func (m *v1Manager) Pids() ([]int, error) {
	dir, err := m.pidsDir()
	if err != nil {
		return nil, err
	}
	return pidsTree(dir)
}

func (m *v1Manager) freezerDir() (string, error) {
	dir, ok := m.paths["freezer"]
	if !ok {
		return "", errors.New("the freezer cgroup controller is not mounted")
	}
	return dir, nil
}

// Freeze implements Manager.
func (m *v1Manager) Freeze() error {
	dir, err := m.freezerDir()
	if err != nil {
		return fmt.Errorf("freeze: %w", err)
	}
	ok, err := waitFor(freezeTimeout, func() (bool, error) {
		// Writing FROZEN again retries the tasks that were missed while
		// the cgroup was FREEZING (e.g. forking ones).
		if err := writeFile("", dir, "freezer.state", "FROZEN"); err != nil {
			return false, err
		}
		s, err := readFile(dir, "freezer.state")
		return s == "FROZEN", err
	})
	if err != nil {
		return fmt.Errorf("freeze: %w", err)
	}
	if !ok {
		_ = writeFile("", dir, "freezer.state", "THAWED")
		return fmt.Errorf("freeze: %s did not reach FROZEN within %v", filepath.Join(dir, "freezer.state"), freezeTimeout)
	}
	return nil
}

// Thaw implements Manager.
func (m *v1Manager) Thaw() error {
	dir, err := m.freezerDir()
	if err != nil {
		return fmt.Errorf("thaw: %w", err)
	}
	if err := writeFile("", dir, "freezer.state", "THAWED"); err != nil {
		return fmt.Errorf("thaw: %w", err)
	}
	ok, err := waitFor(freezeTimeout, func() (bool, error) {
		s, err := readFile(dir, "freezer.state")
		return s == "THAWED", err
	})
	if err != nil {
		return fmt.Errorf("thaw: %w", err)
	}
	if !ok {
		return fmt.Errorf("thaw: %s did not reach THAWED within %v", filepath.Join(dir, "freezer.state"), freezeTimeout)
	}
	return nil
}

// Frozen implements Manager.
func (m *v1Manager) Frozen() (bool, error) {
	dir, err := m.freezerDir()
	if err != nil {
		return false, err
	}
	s, err := readFile(dir, "freezer.state")
	if err != nil {
		return false, fmt.Errorf("read freezer state: %w", err)
	}
	return s == "FROZEN", nil
}
