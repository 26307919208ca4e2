package rootfs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// cgroupHierarchy is one cgroup hierarchy the process belongs to.
type cgroupHierarchy struct {
	controllers string // "cpu,cpuacct", "name=systemd"; empty for cgroup v2
	path        string // the process's cgroup in that hierarchy
	mount       mountInfo
}

// hasCgroupNS reports whether the spec asks for a cgroup namespace.
func (c *Config) hasCgroupNS() bool {
	if c.Spec.Linux == nil {
		return false
	}
	for _, ns := range c.Spec.Linux.Namespaces {
		if ns.Type == specs.CgroupNamespace {
			return true
		}
	}
	return false
}

// cgroupMount handles a mount of type "cgroup" (or "cgroup2"): the
// container sees its own cgroups, read-only or not per the options.
func (m *mounter) cgroupMount(mnt specs.Mount, dest string, opts *mountOptions) error {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return fmt.Errorf("statfs /sys/fs/cgroup: %w", err)
	}
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		return m.cgroup2Mount(dest, opts)
	}
	return m.cgroup1Mount(dest, opts)
}

// cgroup2Mount mounts a unified hierarchy: a fresh cgroup2 instance when the
// container has a cgroup namespace, else a bind of its own cgroup.
func (m *mounter) cgroup2Mount(dest string, opts *mountOptions) error {
	if m.c.hasCgroupNS() {
		dst, err := ensureDest(m.root, dest, true)
		if err != nil {
			return err
		}
		err = unix.Mount("cgroup2", fdPath(dst), "cgroup2", opts.flags, opts.dataString())
		dst.Close()
		if err == nil {
			return m.finishMount(dest, opts, false)
		}
		if !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EBUSY) {
			return err
		}
	}
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	for _, h := range hs {
		if h.mount.FSType == "cgroup2" && h.mount.Mountpoint == "/sys/fs/cgroup" {
			bind := *opts
			bind.flags |= unix.MS_BIND | unix.MS_REC
			return m.bindMount(h.hostDir(), dest, &bind)
		}
	}
	return errors.New("cannot find the process's cgroup2 hierarchy")
}

// cgroup1Mount follows the v1 layout: a tmpfs at dest and one directory per
// hierarchy (cpu,cpuacct, memory, ...) with the container's cgroup in it,
// plus symlinks for co-mounted controllers.
func (m *mounter) cgroup1Mount(dest string, opts *mountOptions) error {
	hs, err := cgroupHierarchies()
	if err != nil {
		return err
	}
	dst, err := ensureDest(m.root, dest, true)
	if err != nil {
		return err
	}
	tmpfsFlags := opts.flags&^unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	err = unix.Mount("tmpfs", fdPath(dst), "tmpfs", tmpfsFlags, "mode=755")
	dst.Close()
	if err != nil {
		return fmt.Errorf("mount tmpfs: %w", err)
	}
	top, err := openInRoot(m.root, dest)
	if err != nil {
		return err
	}
	defer top.Close()

	// The hierarchies' directories are made in the tmpfs just mounted,
	// which only this process can reach until the container starts: no
	// symlink can be in the way, and plain *at calls on top resolve them
	// (the resolution inside the rootfs that other mounts need costs
	// some 20 system calls each, here times a dozen hierarchies).
	cgns := m.c.hasCgroupNS()
	for _, h := range hs {
		name := filepath.Base(h.mount.Mountpoint)
		sub := filepath.Join(dest, name)
		if cgns {
			if err := m.cgroupFresh(h, top, name, sub, opts); err != nil {
				return err
			}
		} else {
			bind := *opts
			bind.flags |= unix.MS_BIND | unix.MS_REC
			bind.propagation = nil
			if err := m.bindInFresh(h.hostDir(), top, name, sub, &bind); err != nil {
				return err
			}
		}
		if strings.Contains(name, ",") {
			for _, ctrl := range strings.Split(name, ",") {
				if err := unix.Symlinkat(name, int(top.Fd()), ctrl); err != nil && !errors.Is(err, unix.EEXIST) {
					return fmt.Errorf("symlink %s -> %s: %w", filepath.Join(dest, ctrl), name, err)
				}
			}
		}
	}
	if opts.flags&unix.MS_RDONLY != 0 {
		if err := unix.Mount("", fdPath(top), "", unix.MS_REMOUNT|unix.MS_RDONLY|tmpfsFlags, "mode=755"); err != nil {
			return fmt.Errorf("remount tmpfs read-only: %w", err)
		}
	}
	return m.finishMount(dest, &mountOptions{propagation: opts.propagation, attr: opts.attr}, false)
}

// freshDir makes directory name in dir, a file system this process just
// mounted and alone can reach (see cgroup1Mount), and opens it.
func freshDir(dir *os.File, name, path string) (*os.File, error) {
	if err := unix.Mkdirat(int(dir.Fd()), name, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("create directory %q in rootfs: %w", path, err)
	}
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %q in rootfs: %w", path, err)
	}
	return os.NewFile(uintptr(fd), path), nil
}

// bindInFresh bind-mounts the host directory src on directory name of dir
// (see freshDir), which is dest in the rootfs.
func (m *mounter) bindInFresh(src string, dir *os.File, name, dest string, opts *mountOptions) error {
	srcFile, err := os.OpenFile(src, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w %s: %w", errBindSource, src, err)
	}
	defer srcFile.Close()
	dst, err := freshDir(dir, name, dest)
	if err != nil {
		return err
	}
	err = unix.Mount(fdPath(srcFile), fdPath(dst), "", unix.MS_BIND|(opts.flags&unix.MS_REC), "")
	dst.Close()
	if err != nil {
		return fmt.Errorf("bind mount %s on %s: %w", src, m.hostPath(dest), err)
	}
	needRemount := opts.needRemount(true)
	if !needRemount && len(opts.propagation) == 0 && !opts.hasRecursiveAttr() {
		return nil
	}
	top, err := freshDir(dir, name, dest) // now the new mount
	if err != nil {
		return err
	}
	defer top.Close()
	return m.finishMountAt(top, dest, opts, needRemount)
}

// cgroupFresh mounts a new instance of hierarchy h on directory name of
// dir (see freshDir), which is sub in the rootfs (the container has a
// cgroup namespace, so the instance's root is its own cgroup).
func (m *mounter) cgroupFresh(h cgroupHierarchy, dir *os.File, name, sub string, opts *mountOptions) error {
	dst, err := freshDir(dir, name, sub)
	if err != nil {
		return err
	}
	defer dst.Close()
	fstype, data := "cgroup", h.controllers
	if h.mount.FSType == "cgroup2" {
		fstype, data = "cgroup2", ""
	}
	if err := unix.Mount("cgroup", fdPath(dst), fstype, opts.flags, data); err != nil {
		return fmt.Errorf("mount %s (%s) on %s: %w", fstype, data, m.hostPath(sub), err)
	}
	return nil
}

// hostDir is the host directory of the process's cgroup in h.
func (h cgroupHierarchy) hostDir() string {
	rel := h.path
	if h.mount.Root != "/" {
		rel = strings.TrimPrefix(rel, h.mount.Root)
	}
	return filepath.Join(h.mount.Mountpoint, rel)
}

// cgroupHierarchies matches /proc/self/cgroup with the mounted hierarchies.
func cgroupHierarchies() ([]cgroupHierarchy, error) {
	mounts, err := readMountinfo()
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []cgroupHierarchy
	s := bufio.NewScanner(f)
	for s.Scan() {
		parts := strings.SplitN(s.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		h := cgroupHierarchy{controllers: parts[1], path: parts[2]}
		mi, ok := findCgroupMount(mounts, parts[0] == "0" && parts[1] == "", parts[1])
		if !ok {
			continue // hierarchy not mounted (e.g. an empty named one)
		}
		h.mount = mi
		out = append(out, h)
	}
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("read /proc/self/cgroup: %w", err)
	}
	return out, nil
}

// findCgroupMount finds the mount of the hierarchy with the given
// controllers (v2 when unified), preferring ones under /sys/fs/cgroup.
func findCgroupMount(mounts []mountInfo, unified bool, controllers string) (mountInfo, bool) {
	var found []mountInfo
	for _, mi := range mounts {
		if unified {
			if mi.FSType == "cgroup2" {
				found = append(found, mi)
			}
			continue
		}
		if mi.FSType != "cgroup" {
			continue
		}
		super := map[string]bool{}
		for _, o := range strings.Split(mi.SuperOpts, ",") {
			super[o] = true
		}
		all := true
		for _, c := range strings.Split(controllers, ",") {
			if !super[c] {
				all = false
				break
			}
		}
		if all {
			found = append(found, mi)
		}
	}
	for _, mi := range found {
		if strings.HasPrefix(mi.Mountpoint, "/sys/fs/cgroup") {
			return mi, true
		}
	}
	if len(found) > 0 {
		return found[0], true
	}
	return mountInfo{}, false
}
