package archive

import (
	"errors"
	"fmt"
	"io"
	"os"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// copyUp finds the hardlink target name (parent tparent, base tbase) in
// the lower layers and copies it into the upper directory, as overlayfs
// copies a lower file up before linking to it. It returns the handle of
// the target's parent in the upper directory, or an error wrapping ENOENT
// if no lower layer holds the target.
func (a *applier) copyUp(name, tparent, tbase string) (*os.File, error) {
	for _, lower := range a.opts.Lowers {
		src, st, err := findInLower(lower, tparent, tbase)
		if err != nil {
			return nil, fmt.Errorf("lower layer %s: %w", lower, err)
		}
		if src == nil {
			continue
		}
		defer src.Close()
		if st.Mode&unix.S_IFMT == unix.S_IFCHR && st.Rdev == 0 {
			break // a whiteout: deleted in this lower layer
		}
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return nil, fmt.Errorf("copy up %q: only regular files are copied up, found mode %#o", name, st.Mode)
		}
		if st.Size > a.opts.MaxBytes-a.written {
			return nil, fmt.Errorf("%w: copy up %q of %d bytes takes the layer past %d bytes (MaxBytes)", ErrTooLarge, name, st.Size, a.opts.MaxBytes)
		}
		a.written += st.Size
		tdir := a.root
		if tparent != "" {
			if tdir, err = pathrs.MkdirAllHandle(a.root, tparent, 0o755); err != nil {
				return nil, fmt.Errorf("copy up %q: %w", name, err)
			}
		}
		if err := copyUpFile(src, st, fd(tdir), tbase); err != nil {
			if tdir != a.root {
				tdir.Close()
			}
			return nil, fmt.Errorf("copy up %q: %w", name, err)
		}
		return tdir, nil
	}
	return nil, fmt.Errorf("%w (in this layer or its lower layers)", unix.ENOENT)
}

// findInLower opens tparent/tbase inside lower without following
// symlinks out of it. It returns nil if lower does not hold it.
func findInLower(lower, tparent, tbase string) (*os.File, *unix.Stat_t, error) {
	root, err := os.OpenFile(lower, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	defer root.Close()
	pdir := root
	if tparent != "" {
		pdir, err = pathrs.OpenatInRoot(root, tparent)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil, nil, nil
		}
		if err != nil {
			return nil, nil, err
		}
		defer pdir.Close()
	}
	ffd, err := unix.Openat(fd(pdir), tbase, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(ffd, &st); err != nil {
		unix.Close(ffd)
		return nil, nil, err
	}
	return os.NewFile(uintptr(ffd), tbase), &st, nil
}

// copyUpFile copies the regular file src (an O_PATH handle) with its
// owner, mode, xattrs and times to base in dirfd.
func copyUpFile(src *os.File, st *unix.Stat_t, dirfd int, base string) error {
	in, err := pathrs.Reopen(src, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := removeAllAt(dirfd, base); err != nil {
		return err
	}
	ofd, err := unix.Openat(dirfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	out := os.NewFile(uintptr(ofd), base)
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		return err
	}
	if err := unix.Fchown(ofd, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := unix.Fchmod(ofd, st.Mode&0o7777); err != nil {
		return err
	}
	ifd := fd(in)
	names, err := listXattrsWith(func(b []byte) (int, error) { return unix.Flistxattr(ifd, b) })
	if err != nil {
		return err
	}
	for _, k := range names {
		if skipXattr(k) {
			continue
		}
		v, err := getXattrWith(func(b []byte) (int, error) { return unix.Fgetxattr(ifd, k, b) })
		if err != nil {
			return fmt.Errorf("xattr %q: %w", k, err)
		}
		if err := unix.Fsetxattr(ofd, k, v, 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
			return fmt.Errorf("set xattr %q: %w", k, err)
		}
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(dirfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	return out.Close()
}
