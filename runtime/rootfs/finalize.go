package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Finalize runs after Pivot: it makes linux.readonlyPaths read-only, masks
// linux.maskedPaths (null device over files, an empty read-only tmpfs over
// directories), remounts "/" read-only for root.readonly and applies
// linux.rootfsPropagation to "/". It releases what Prepare opened.
func Finalize(c *Config) error {
	defer c.Close()
	if err := c.validate(); err != nil {
		return err
	}
	root, err := openDir("/")
	if err != nil {
		return fmt.Errorf("open /: %w", err)
	}
	defer root.Close()
	l := c.linux()
	for i, p := range l.ReadonlyPaths {
		if err := c.readonlyPath(root, p); err != nil {
			return fmt.Errorf("linux.readonlyPaths[%d]: %s: %w", i, p, err)
		}
	}
	if len(l.MaskedPaths) > 0 && c.null == nil {
		return errors.New("linux.maskedPaths: Prepare did not open the host /dev/null")
	}
	for i, p := range l.MaskedPaths {
		if err := c.maskPath(root, p); err != nil {
			return fmt.Errorf("linux.maskedPaths[%d]: %s: %w", i, p, err)
		}
	}
	if c.Spec.Root != nil && c.Spec.Root.Readonly {
		if err := c.readonlyRoot(); err != nil {
			return fmt.Errorf("root.readonly: %w", err)
		}
	}
	if prop, set, err := c.rootPropagation(); err != nil {
		return err
	} else if set {
		if err := unix.Mount("", "/", "", prop, ""); err != nil {
			return fmt.Errorf("linux.rootfsPropagation: set on /: %w", err)
		}
	}
	return nil
}

// readonlyPath bind-mounts p (recursively) onto itself read-only, keeping
// its other flags. A missing path is ignored.
func (c *Config) readonlyPath(root *os.File, p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("path is not absolute")
	}
	target, err := openInRoot(root, p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer target.Close()
	if !c.legacyMountAPI {
		err := readonlyPathSetattr(target)
		if !errors.Is(err, unix.ENOSYS) {
			return err
		}
	}
	if err := unix.Mount(fdPath(target), fdPath(target), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind mount: %w", err)
	}
	top, err := openInRoot(root, p)
	if err != nil {
		return fmt.Errorf("reopen after mount: %w", err)
	}
	defer top.Close()
	return remountBind(fdPath(top), unix.MS_RDONLY, 0)
}

// readonlyPathSetattr clones the mount tree at target, makes the clone
// read-only with mount_setattr(2) (other flags untouched) and mounts it on
// target. It returns ENOSYS when the kernel lacks the new mount API.
func readonlyPathSetattr(target *os.File) error {
	tree, err := unix.OpenTree(int(target.Fd()), "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE|unix.AT_EMPTY_PATH)
	if err != nil {
		return err
	}
	defer unix.Close(tree)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, &attr); err != nil {
		return fmt.Errorf("mount_setattr read-only: %w", err)
	}
	if err := unix.MoveMount(tree, "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}

// maskPath hides p: the verified host null device over a file, an empty
// read-only tmpfs over a directory. The final component is not followed:
// a symlink is left alone; a missing path is ignored.
func (c *Config) maskPath(root *os.File, p string) error {
	if !filepath.IsAbs(p) {
		return fmt.Errorf("path is not absolute")
	}
	p = filepath.Clean(p)
	if p == "/" {
		return fmt.Errorf("refusing to mask /")
	}
	parent, err := openInRoot(root, filepath.Dir(p))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer parent.Close()
	target, err := openNoFollow(parent, filepath.Base(p))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer target.Close()
	typ, err := fileType(target)
	if err != nil {
		return err
	}
	switch typ {
	case unix.S_IFLNK:
		return nil
	case unix.S_IFDIR:
		return c.maskDir(target)
	}
	if err := c.null.maskFile(target); err != nil {
		return fmt.Errorf("mount null device: %w", err)
	}
	return nil
}

// maskDir mounts an empty read-only tmpfs on the directory target.
func (c *Config) maskDir(target *os.File) error {
	if !c.legacyMountAPI {
		err := maskDirFsmount(target)
		if !errors.Is(err, unix.ENOSYS) {
			return err
		}
	}
	if err := unix.Mount("tmpfs", fdPath(target), "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0"); err != nil {
		return fmt.Errorf("mount read-only tmpfs: %w", err)
	}
	return nil
}

func maskDirFsmount(target *os.File) error {
	fs, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return err
	}
	defer unix.Close(fs)
	if err := unix.FsconfigSetString(fs, "size", "0"); err != nil {
		return fmt.Errorf("configure tmpfs: %w", err)
	}
	if err := unix.FsconfigCreate(fs); err != nil {
		return fmt.Errorf("create tmpfs: %w", err)
	}
	mnt, err := unix.Fsmount(fs, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_RDONLY|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return fmt.Errorf("fsmount tmpfs: %w", err)
	}
	defer unix.Close(mnt)
	if err := unix.MoveMount(mnt, "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount tmpfs: %w", err)
	}
	return nil
}

// readonlyRoot makes the mount at "/" read-only, keeping its other flags.
func (c *Config) readonlyRoot() error {
	if !c.legacyMountAPI {
		attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
		err := unix.MountSetattr(unix.AT_FDCWD, "/", 0, &attr)
		if !errors.Is(err, unix.ENOSYS) {
			return err
		}
	}
	return remountBind("/", unix.MS_RDONLY, 0)
}
