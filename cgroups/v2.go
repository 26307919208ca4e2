package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// v2Manager manages a cgroup in a pure cgroup v2 hierarchy.
type v2Manager struct {
	dir        string
	mountpoint string
	rootless   bool
	// unavailable is set when, in rootless mode, the cgroup could not be
	// created for lack of permission.
	unavailable bool
}

// Paths implements Manager.
func (m *v2Manager) Paths() map[string]string {
	return map[string]string{"": m.dir}
}

// Apply implements Manager.
func (m *v2Manager) Apply(pid int) error {
	if err := m.create(); err != nil {
		if m.rootless && isPermission(err) {
			m.unavailable = true
			return nil
		}
		return err
	}
	if pid > 0 {
		if err := writeFile("", m.dir, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			if m.rootless && isPermission(err) {
				return nil
			}
			return fmt.Errorf("add process %d to cgroup: %w", pid, err)
		}
	}
	return nil
}

// create makes the cgroup directory and its missing ancestors, enabling
// in every ancestor's cgroup.subtree_control the controllers it has, so
// that they are available in the container's cgroup.
func (m *v2Manager) create() error {
	rel, err := filepath.Rel(m.mountpoint, m.dir)
	if err != nil || rel == "." || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("cgroup %s is not below the cgroup2 mount %s", m.dir, m.mountpoint)
	}
	cur := m.mountpoint
	for _, elem := range strings.Split(rel, "/") {
		if err := enableControllers(cur); err != nil {
			return err
		}
		cur = filepath.Join(cur, elem)
		if err := os.Mkdir(cur, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create cgroup %s: %w", cur, err)
		}
	}
	return nil
}

// enableControllers writes +<controller> to dir/cgroup.subtree_control for
// every controller of dir/cgroup.controllers not enabled yet. Controllers
// the kernel refuses (e.g. a parent with processes in it, or cpu with
// realtime tasks) are left disabled: Set reports a clear error if a
// resource needs them.
func enableControllers(dir string) error {
	avail, err := readFile(dir, "cgroup.controllers")
	if err != nil {
		return fmt.Errorf("read controllers of %s: %w", dir, err)
	}
	enabled, err := readFile(dir, "cgroup.subtree_control")
	if err != nil {
		return fmt.Errorf("read enabled controllers of %s: %w", dir, err)
	}
	on := strings.Fields(enabled)
	for _, c := range strings.Fields(avail) {
		if hasAll(on, []string{c}) {
			continue
		}
		err := writeFile("", dir, "cgroup.subtree_control", "+"+c)
		if err != nil && isPermission(err) {
			return err
		}
	}
	return nil
}

// Destroy implements Manager.
func (m *v2Manager) Destroy() error {
	return removeTree(m.dir)
}

// Pids implements Manager.
func (m *v2Manager) Pids() ([]int, error) {
	return pidsTree(m.dir)
}

// Freeze implements Manager.
func (m *v2Manager) Freeze() error {
	return m.setFrozen(true)
}

// Thaw implements Manager.
func (m *v2Manager) Thaw() error {
	return m.setFrozen(false)
}

func (m *v2Manager) setFrozen(frozen bool) error {
	op, want := "thaw", "0"
	if frozen {
		op, want = "freeze", "1"
	}
	if !exists(m.dir, "cgroup.freeze") {
		if _, err := os.Stat(m.dir); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		return fmt.Errorf("%s: the kernel has no cgroup v2 freezer (%s missing)", op, filepath.Join(m.dir, "cgroup.freeze"))
	}
	if err := writeFile("", m.dir, "cgroup.freeze", want); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	ok, err := waitFor(freezeTimeout, func() (bool, error) {
		ev, err := readKeyValues(m.dir, "cgroup.events")
		if err != nil {
			return false, err
		}
		return strconv.FormatUint(ev["frozen"], 10) == want, nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if !ok {
		if frozen {
			_ = writeFile("", m.dir, "cgroup.freeze", "0")
		}
		return fmt.Errorf("%s: %s did not report frozen %s within %v", op, filepath.Join(m.dir, "cgroup.events"), want, freezeTimeout)
	}
	return nil
}

// Frozen implements Manager.
func (m *v2Manager) Frozen() (bool, error) {
	s, err := readFile(m.dir, "cgroup.freeze")
	if err != nil {
		return false, fmt.Errorf("read freezer state: %w", err)
	}
	return s == "1", nil
}
