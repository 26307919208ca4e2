package cgroups

import (
	"fmt"
	"path/filepath"
	"strings"
)

// hierarchy is one mounted cgroup hierarchy as seen by the calling process.
type hierarchy struct {
	// controllers attached to a v1 hierarchy ("cpu", "cpuacct",
	// "name=systemd"); empty for cgroup v2.
	controllers []string
	mnt         mount
	// self is the cgroup of the calling process in this hierarchy, as
	// printed in /proc/self/cgroup.
	self string
}

// discoverHierarchies matches the lines of /proc/self/cgroup with the
// cgroup mounts of /proc/self/mountinfo. It returns the v1 hierarchies and
// the v2 one (nil when cgroup2 is not mounted).
func discoverHierarchies() ([]hierarchy, *hierarchy, error) {
	mounts, err := readCgroupMounts()
	if err != nil {
		return nil, nil, err
	}
	cgs, err := readProcCgroup()
	if err != nil {
		return nil, nil, err
	}
	return matchHierarchies(mounts, cgs)
}

func matchHierarchies(mounts []mount, cgs []procCgroup) ([]hierarchy, *hierarchy, error) {
	var v1 []hierarchy
	var v2 *hierarchy
	for _, cg := range cgs {
		if len(cg.controllers) == 0 {
			if m, ok := findCgroup2Mount(mounts); ok {
				v2 = &hierarchy{mnt: m, self: cg.path}
			}
			continue
		}
		for _, m := range mounts {
			if m.fstype == "cgroup" && hasAll(m.superOpts, cg.controllers) {
				v1 = append(v1, hierarchy{controllers: cg.controllers, mnt: m, self: cg.path})
				break
			}
		}
	}
	return v1, v2, nil
}

// findCgroup2Mount prefers a cgroup2 mount below /sys/fs/cgroup.
func findCgroup2Mount(mounts []mount) (mount, bool) {
	var found []mount
	for _, m := range mounts {
		if m.fstype == "cgroup2" {
			found = append(found, m)
		}
	}
	for _, m := range found {
		if m.mountpoint == cgroupRoot || strings.HasPrefix(m.mountpoint, cgroupRoot+"/") {
			return m, true
		}
	}
	if len(found) > 0 {
		return found[0], true
	}
	return mount{}, false
}

// checkCgroupsPath rejects linux.cgroupsPath values that berth cannot use
// whatever the hierarchy.
func checkCgroupsPath(p string) error {
	if parts := strings.Split(p, ":"); len(parts) == 3 && !strings.Contains(parts[0], "/") {
		return fmt.Errorf("linux.cgroupsPath %q has the systemd form slice:prefix:name; systemd cgroup paths need --systemd-cgroup, which berth does not support", p)
	}
	return nil
}

// dir returns the absolute directory of the cgroup for cgroupsPath (the
// OCI linux.cgroupsPath, already defaulted to the container ID) in
// hierarchy h.
func (h hierarchy) dir(cgroupsPath string) (string, error) {
	base := "/"
	if !filepath.IsAbs(cgroupsPath) {
		self, err := trimMountRoot(h.self, h.mnt.root)
		if err != nil {
			return "", fmt.Errorf("linux.cgroupsPath %q: %w", cgroupsPath, err)
		}
		base = self
	}
	cg, err := within(base, cgroupsPath)
	if err != nil {
		return "", err
	}
	return filepath.Join(h.mnt.mountpoint, cg), nil
}

// trimMountRoot makes a cgroup path of /proc/self/cgroup relative to the
// root of the mount (only differs from the path when a subtree of the
// hierarchy is mounted, e.g. in a nested container).
func trimMountRoot(self, root string) (string, error) {
	if root == "/" || root == "" {
		return self, nil
	}
	if self == root {
		return "/", nil
	}
	if strings.HasPrefix(self, root+"/") {
		return self[len(root):], nil
	}
	return "", fmt.Errorf("the calling process's cgroup %s is outside the mounted subtree %s", self, root)
}

// within joins p to base lexically and fails when p climbs above the root
// of the hierarchy with "..", or when the result is the root itself.
func within(base, p string) (string, error) {
	var stack []string
	if !filepath.IsAbs(p) {
		for _, c := range strings.Split(base, "/") {
			if c != "" && c != "." {
				stack = append(stack, c)
			}
		}
	}
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "", ".":
		case "..":
			if len(stack) == 0 {
				return "", fmt.Errorf("linux.cgroupsPath %q escapes the root of the cgroup hierarchy", p)
			}
			stack = stack[:len(stack)-1]
		default:
			stack = append(stack, c)
		}
	}
	if len(stack) == 0 {
		return "", fmt.Errorf("linux.cgroupsPath %q resolves to the root of the cgroup hierarchy; a container needs its own cgroup", p)
	}
	return "/" + strings.Join(stack, "/"), nil
}
