package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// mounter performs the spec's mounts inside one rootfs.
type mounter struct {
	c    *Config
	root *os.File // O_PATH handle of the rootfs (after its self bind mount)
}

// hostPath returns a human readable host path for dest, for errors.
func (m *mounter) hostPath(dest string) string {
	return filepath.Join(m.c.Rootfs, dest)
}

// mountEntry performs Spec.Mounts[i].
func (m *mounter) mountEntry(i int, mnt specs.Mount) error {
	if !filepath.IsAbs(mnt.Destination) {
		return fmt.Errorf("mounts[%d]: destination %q is not absolute", i, mnt.Destination)
	}
	dest := filepath.Clean(mnt.Destination)
	opts, err := parseMountOptions(mnt.Options)
	if err != nil {
		return fmt.Errorf("mounts[%d]: %w", i, err)
	}
	if mnt.Type == "bind" || opts.isBind() {
		opts.flags |= unix.MS_BIND
		err = m.bindMount(mnt.Source, dest, opts)
		if err != nil && errors.Is(err, errBindSource) {
			return fmt.Errorf("mounts[%d]: %w", i, err)
		}
	} else {
		err = m.fsMount(mnt, dest, opts)
	}
	if err != nil {
		return fmt.Errorf("mounts[%d]: mount %s (type %q) on %s: %w", i, mnt.Source, mnt.Type, dest, err)
	}
	return nil
}

var errBindSource = errors.New("bind source")

// bindMount bind-mounts the host path src onto dest inside the rootfs, then
// applies flags, propagation and recursive attributes.
func (m *mounter) bindMount(src, dest string, opts *mountOptions) error {
	srcFile, err := os.OpenFile(src, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("%w %s: %w", errBindSource, src, err)
	}
	defer srcFile.Close()
	typ, err := fileType(srcFile)
	if err != nil {
		return err
	}
	dst, err := ensureDest(m.root, dest, typ == unix.S_IFDIR)
	if err != nil {
		return err
	}
	defer dst.Close()
	if err := unix.Mount(fdPath(srcFile), fdPath(dst), "", unix.MS_BIND|(opts.flags&unix.MS_REC), ""); err != nil {
		return fmt.Errorf("bind mount %s on %s: %w", src, m.hostPath(dest), err)
	}
	return m.finishMount(dest, opts, true)
}

// finishMount applies what mount(2) could not do in one call: the flags of a
// bind mount (a remount), propagation changes and recursive attributes.
func (m *mounter) finishMount(dest string, opts *mountOptions, bind bool) error {
	needRemount := opts.needRemount(bind)
	if !needRemount && len(opts.propagation) == 0 && !opts.hasRecursiveAttr() {
		return nil
	}
	// The handle used for the mount refers to the inode below the new
	// mount; look the destination up again to get the new mount.
	top, err := openInRoot(m.root, dest)
	if err != nil {
		return fmt.Errorf("reopen %s after mount: %w", m.hostPath(dest), err)
	}
	defer top.Close()
	return m.finishMountAt(top, dest, opts, needRemount)
}

// finishMountAt is finishMount on top, the new mount at dest.
func (m *mounter) finishMountAt(top *os.File, dest string, opts *mountOptions, needRemount bool) error {
	if needRemount {
		if err := remountBind(fdPath(top), opts.flags&^unix.MS_REC, opts.cleared); err != nil {
			return fmt.Errorf("remount %s: %w", m.hostPath(dest), err)
		}
	}
	for _, p := range opts.propagation {
		if err := unix.Mount("", fdPath(top), "", p, ""); err != nil {
			return fmt.Errorf("set propagation %#x on %s: %w", p, m.hostPath(dest), err)
		}
	}
	if opts.hasRecursiveAttr() {
		attr := opts.attr
		if err := unix.MountSetattr(int(top.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
			return fmt.Errorf("set recursive mount attributes on %s: %w", m.hostPath(dest), err)
		}
	}
	return nil
}

// needRemount reports whether a mount with opts needs a remount after
// mount(2): a bind mount's flags (mount(2) ignores them with MS_BIND).
func (opts *mountOptions) needRemount(bind bool) bool {
	return bind && (opts.flags&^(unix.MS_BIND|unix.MS_REC|unix.MS_REMOUNT) != 0 || opts.cleared != 0)
}

// lockableFlags are the per-mount flags a bind remount would silently drop
// (and that, in a user namespace, the kernel refuses to drop when they are
// locked): they are carried over from the mount unless explicitly cleared.
const lockableFlags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
const atimeFlags = unix.MS_NOATIME | unix.MS_RELATIME | unix.MS_STRICTATIME | unix.MS_NODIRATIME

// statfsMountFlags converts statfs(2) f_flags to MS_* mount flags.
func statfsMountFlags(st *unix.Statfs_t) uintptr {
	table := []struct{ st, ms uintptr }{
		{unix.ST_RDONLY, unix.MS_RDONLY},
		{unix.ST_NOSUID, unix.MS_NOSUID},
		{unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME},
		{unix.ST_RELATIME, unix.MS_RELATIME},
	}
	var flags uintptr
	for _, e := range table {
		if uintptr(st.Flags)&e.st != 0 {
			flags |= e.ms
		}
	}
	return flags
}

// remountBind changes the per-mount flags of the bind mount at target to
// flags, keeping the mount's current lockable and atime flags unless they
// are in cleared (or, for atime flags, unless flags chooses an atime mode).
func remountBind(target string, flags, cleared uintptr) error {
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); err != nil {
		return fmt.Errorf("statfs: %w", err)
	}
	cur := statfsMountFlags(&st)
	keep := cur & lockableFlags
	if (flags|cleared)&atimeFlags == 0 {
		keep |= cur & atimeFlags
	} else if (flags|cleared)&unix.MS_NODIRATIME == 0 {
		keep |= cur & unix.MS_NODIRATIME
	}
	keep &^= cleared
	flags = (flags | keep) &^ cleared
	if err := unix.Mount("", target, "", flags|unix.MS_BIND|unix.MS_REMOUNT, ""); err != nil {
		if errors.Is(err, unix.EPERM) && cur&lockableFlags&cleared != 0 {
			return fmt.Errorf("flags %#x of the source mount are locked and cannot be cleared: %w", cur&lockableFlags&cleared, err)
		}
		return err
	}
	return nil
}

// fsMount mounts a new filesystem instance (proc, tmpfs, ...) on dest.
func (m *mounter) fsMount(mnt specs.Mount, dest string, opts *mountOptions) error {
	var (
		dst *os.File
		err error
	)
	switch mnt.Type {
	case "cgroup", "cgroup2":
		if wait := m.c.BeforeCgroup; wait != nil {
			m.c.BeforeCgroup = nil
			if err := wait(); err != nil {
				return err
			}
		}
		return m.cgroupMount(mnt, dest, opts)
	case "proc", "sysfs":
		dst, err = ensureRealDir(m.root, dest)
	default:
		dst, err = ensureDest(m.root, dest, true)
	}
	if err != nil {
		return err
	}
	defer dst.Close()
	var under *os.File
	if opts.tmpcopyup {
		if mnt.Type != "tmpfs" {
			return fmt.Errorf("option tmpcopyup needs a tmpfs mount")
		}
		// The directory the tmpfs will cover, opened before it does.
		if under, err = os.OpenFile(fdPath(dst), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			return err
		}
		defer under.Close()
	}
	err = unix.Mount(mnt.Source, fdPath(dst), mnt.Type, opts.flags, opts.dataString())
	if err == nil && under != nil {
		top, err := ensureDest(m.root, dest, true)
		if err != nil {
			return err
		}
		defer top.Close()
		topDir, err := os.OpenFile(fdPath(top), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer topDir.Close()
		if err := copyTree(int(under.Fd()), int(topDir.Fd())); err != nil {
			return fmt.Errorf("tmpcopyup: %w", err)
		}
	}
	if err != nil && m.c.UserNS && errors.Is(err, unix.EPERM) {
		// In a user namespace without its own network (sysfs) or IPC
		// (mqueue) namespace the kernel refuses a new instance: show the
		// host's instead.
		switch mnt.Type {
		case "sysfs":
			opts.flags |= unix.MS_BIND | unix.MS_REC
			return m.bindMount("/sys", dest, opts)
		case "mqueue":
			opts.flags |= unix.MS_BIND
			return m.bindMount("/dev/mqueue", dest, opts)
		}
	}
	if err != nil {
		return err
	}
	return m.finishMount(dest, opts, false)
}
