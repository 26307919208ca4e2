package cgroups

import "golang.org/x/sys/unix"

// Mode reports how cgroups are mounted on the host.
type Mode int

const (
	// Legacy means only cgroup v1 hierarchies are mounted.
	Legacy Mode = iota
	// Hybrid means cgroup v1 controllers are mounted and a cgroup v2
	// hierarchy (usually without controllers) is mounted at
	// /sys/fs/cgroup/unified.
	Hybrid
	// Unified means a pure cgroup v2 hierarchy is mounted at /sys/fs/cgroup.
	Unified
)

// String returns the name of the mode.
func (m Mode) String() string {
	switch m {
	case Legacy:
		return "legacy"
	case Hybrid:
		return "hybrid"
	case Unified:
		return "unified"
	}
	return "unknown"
}

// cgroupRoot is where every init system mounts the cgroup hierarchies.
const cgroupRoot = "/sys/fs/cgroup"

// DetectMode reports how cgroups are mounted on this host by looking at the
// file system types of /sys/fs/cgroup and /sys/fs/cgroup/unified.
func DetectMode() Mode {
	if isCgroup2(cgroupRoot) {
		return Unified
	}
	if isCgroup2(cgroupRoot + "/unified") {
		return Hybrid
	}
	return Legacy
}

func isCgroup2(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC
}
