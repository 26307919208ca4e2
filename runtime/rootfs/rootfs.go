// Package rootfs sets up a container's filesystem from inside its init
// process: the spec's mounts, /dev, the switch to the new root, read-only
// and masked paths.
//
// All functions run in the container's own (already unshared) mount
// namespace. Every destination is resolved inside the rootfs with
// filepath-securejoin's pathrs-lite, and mounts are made onto the resolved
// handle (/proc/self/fd/N), so a symlink in the rootfs can never redirect a
// mount to the host (CVE-2021-30465).
package rootfs

import (
	"errors"
	"fmt"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Config describes the filesystem of one container.
type Config struct {
	// Spec is the container's OCI spec; Spec.Root.Path is absolute.
	Spec *specs.Spec
	// Rootfs is the absolute host path of the container's rootfs.
	Rootfs string
	// NoPivot uses MS_MOVE and chroot instead of pivot_root.
	NoPivot bool
	// UserNS is set when the container has its own user namespace: device
	// nodes are then bind-mounted from the host instead of created.
	UserNS bool
	// BeforeCgroup, when set, runs once before the first mount that shows
	// the process's own cgroups (type cgroup or cgroup2): such a mount
	// reads /proc/self/cgroup (or is rooted in the cgroup namespace), so
	// the process must be in its cgroup by then. A container init placed
	// while it prepares its root waits here.
	BeforeCgroup func() error

	// null is the verified host /dev/null, opened by Prepare and released
	// by Finalize (or Close).
	null *nullSource
	// legacyMountAPI forces mount(2) where the new mount API would be used
	// (tests exercise the fallback for old kernels with it).
	legacyMountAPI bool
}

// Close releases what Prepare holds open. Finalize calls it; call it
// directly only when Finalize is not reached.
func (c *Config) Close() error {
	err := c.null.Close()
	c.null = nil
	return err
}

func (c *Config) linux() *specs.Linux {
	if c.Spec.Linux == nil {
		return &specs.Linux{}
	}
	return c.Spec.Linux
}

// rootPropagation returns the propagation for "/" from
// linux.rootfsPropagation (default rslave) and whether it was set.
func (c *Config) rootPropagation() (uintptr, bool, error) {
	p := c.linux().RootfsPropagation
	if p == "" {
		return unix.MS_SLAVE | unix.MS_REC, false, nil
	}
	flag, ok := propagationOptions[p]
	if !ok {
		return 0, false, fmt.Errorf("linux.rootfsPropagation: unknown value %q", p)
	}
	return flag, true, nil
}

func (c *Config) validate() error {
	if c.Spec == nil {
		return errors.New("rootfs: no spec")
	}
	if !filepath.IsAbs(c.Rootfs) {
		return fmt.Errorf("root.path: %q is not absolute", c.Rootfs)
	}
	return nil
}

// Prepare runs before Pivot. It makes "/" slave (or per
// linux.rootfsPropagation) so nothing propagates back to the host, makes
// the rootfs a mount point, opens the verified host /dev/null, performs the
// spec's mounts in order and populates /dev.
func Prepare(c *Config) error {
	if err := c.validate(); err != nil {
		return err
	}
	prop, _, err := c.rootPropagation()
	if err != nil {
		return err
	}
	if err := unix.Mount("", "/", "", prop, ""); err != nil {
		return fmt.Errorf("set propagation of / to %#x: %w", prop, err)
	}
	if err := makeParentPrivate(c.Rootfs); err != nil {
		return err
	}
	if err := unix.Mount(c.Rootfs, c.Rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind mount rootfs %s onto itself: %w", c.Rootfs, err)
	}
	c.Close()
	c.null, err = newNullSource(len(c.linux().MaskedPaths), c.legacyMountAPI)
	if err != nil {
		return err
	}
	root, err := openDir(c.Rootfs)
	if err != nil {
		return fmt.Errorf("open rootfs: %w", err)
	}
	defer root.Close()
	m := &mounter{c: c, root: root}
	for i, mnt := range c.Spec.Mounts {
		if err := m.mountEntry(i, mnt); err != nil {
			return err
		}
	}
	if needsDevSetup(c.Spec) {
		if err := m.setupDev(); err != nil {
			return err
		}
	}
	return nil
}

// makeParentPrivate makes the mount holding the rootfs's parent directory
// private: pivot_root and MS_MOVE refuse shared parents.
func makeParentPrivate(rootfs string) error {
	path := filepath.Dir(rootfs)
	for {
		err := unix.Mount("", path, "", unix.MS_PRIVATE, "")
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINVAL) || path == "/" {
			return fmt.Errorf("make mount of %s private: %w", path, err)
		}
		path = filepath.Dir(path)
	}
}

// Pivot makes c.Rootfs the root directory and "/" the working directory:
// pivot_root(".", ".") and a lazy unmount of the old root, or (NoPivot)
// MS_MOVE of the rootfs onto "/" and chroot.
func Pivot(c *Config) error {
	if err := c.validate(); err != nil {
		return err
	}
	if c.NoPivot {
		return moveRoot(c.Rootfs)
	}
	return pivotRoot(c.Rootfs)
}

func pivotRoot(rootfs string) error {
	oldRoot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open old root: %w", err)
	}
	defer unix.Close(oldRoot)
	newRoot, err := unix.Open(rootfs, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open rootfs %s: %w", rootfs, err)
	}
	defer unix.Close(newRoot)
	if err := unix.Fchdir(newRoot); err != nil {
		return fmt.Errorf("chdir to rootfs %s: %w", rootfs, err)
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root to %s: %w", rootfs, err)
	}
	// The old root is now stacked on "."; get to it and detach it without
	// propagating the unmount anywhere.
	if err := unix.Fchdir(oldRoot); err != nil {
		return fmt.Errorf("chdir to old root: %w", err)
	}
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make old root rslave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach old root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	return nil
}

func moveRoot(rootfs string) error {
	if err := unix.Chdir(rootfs); err != nil {
		return fmt.Errorf("chdir to rootfs %s: %w", rootfs, err)
	}
	if err := unix.Mount(rootfs, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move rootfs %s to /: %w", rootfs, err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot to rootfs %s: %w", rootfs, err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	return nil
}
