package archive

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// copyChunk is the unit in which file content is copied; a chunk of zeros
// this large becomes a hole.
const copyChunk = 128 << 10

// xattrPrefix marks the PAX records that carry extended attributes.
const xattrPrefix = "SCHILY.xattr."

func fd(f *os.File) int { return int(f.Fd()) }

// create applies the non-whiteout entry hdr, named name, as base in pdir.
func (a *applier) create(pdir *os.File, name, base string, hdr *tar.Header, r io.Reader) error {
	pfd := fd(pdir)
	switch hdr.Typeflag {
	case tar.TypeLink:
		return a.hardlink(pfd, base, hdr)
	case tar.TypeDir:
		return a.dir(pfd, name, base, hdr)
	case tar.TypeReg, '\x00', tar.TypeGNUSparse: // '\x00' is the old TypeRegA
		return a.regular(pfd, base, hdr, r)
	case tar.TypeSymlink:
		if err := a.removeExisting(pfd, base, false); err != nil {
			return err
		}
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return fmt.Errorf("symlink: %w", err)
		}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if err := a.removeExisting(pfd, base, false); err != nil {
			return err
		}
		mode := uint32(unix.S_IFIFO)
		switch hdr.Typeflag {
		case tar.TypeChar:
			mode = unix.S_IFCHR
		case tar.TypeBlock:
			mode = unix.S_IFBLK
		}
		dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
		if err := unix.Mknodat(pfd, base, mode|0o600, int(dev)); err != nil {
			if errors.Is(err, unix.EPERM) && a.opts.SkipDeviceErrors && hdr.Typeflag != tar.TypeFifo {
				return nil
			}
			return fmt.Errorf("mknod: %w", err)
		}
	default:
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
	if err := a.attrs(pfd, base, nil, hdr); err != nil {
		return err
	}
	return setTimes(pfd, base, hdr)
}

func (a *applier) dir(pfd int, name, base string, hdr *tar.Header) error {
	var st unix.Stat_t
	err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
		// Merge into the existing directory.
	case err == nil || errors.Is(err, unix.ENOENT):
		if err := a.removeExisting(pfd, base, false); err != nil {
			return err
		}
		if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
			return fmt.Errorf("mkdir: %w", err)
		}
	default:
		return err
	}
	dfd, err := unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open directory: %w", err)
	}
	d := os.NewFile(uintptr(dfd), name)
	defer d.Close()
	if err := a.attrs(pfd, base, d, hdr); err != nil {
		return err
	}
	a.dirTimes[name] = tarTimes(hdr)
	return nil
}

func (a *applier) regular(pfd int, base string, hdr *tar.Header, r io.Reader) error {
	if hdr.Size < 0 {
		return fmt.Errorf("negative size %d", hdr.Size)
	}
	if hdr.Size > a.opts.MaxBytes-a.written {
		return fmt.Errorf("%w: size %d takes the layer's files past %d bytes (MaxBytes)", ErrTooLarge, hdr.Size, a.opts.MaxBytes)
	}
	a.written += hdr.Size
	if err := a.removeExisting(pfd, base, false); err != nil {
		return err
	}
	ffd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	f := os.NewFile(uintptr(ffd), base)
	defer f.Close()
	if err := a.copyContent(f, r, hdr.Size); err != nil {
		return err
	}
	if err := a.attrs(pfd, base, f, hdr); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return setTimes(pfd, base, hdr)
}

// copyContent writes size bytes of r to f, leaving holes for chunks of
// zeros (sparse files stay sparse).
func (a *applier) copyContent(f *os.File, r io.Reader, size int64) error {
	var off int64
	hole := false
	for off < size {
		if err := a.ctx.Err(); err != nil {
			return err
		}
		n := min(int64(len(a.buf)), size-off)
		m, err := io.ReadFull(r, a.buf[:n])
		if m == copyChunk && bytes.Equal(a.buf, a.zero) {
			hole = true
		} else if m > 0 {
			if _, err := f.WriteAt(a.buf[:m], off); err != nil {
				return err
			}
			hole = false
		}
		off += int64(m)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	if hole {
		return f.Truncate(size)
	}
	return nil
}

func (a *applier) hardlink(pfd int, base string, hdr *tar.Header) error {
	target, err := cleanName(hdr.Linkname)
	if err != nil {
		return fmt.Errorf("hardlink target: %w", err)
	}
	if target == "" {
		return errors.New("hardlink to the layer root")
	}
	tparent, tbase := splitName(target)
	tdir := a.root
	if tparent != "" {
		tdir, err = pathrs.OpenatInRoot(a.root, tparent)
	}
	var tst, st unix.Stat_t
	if err == nil {
		err = unix.Fstatat(fd(tdir), tbase, &tst, unix.AT_SYMLINK_NOFOLLOW)
	}
	if errors.Is(err, unix.ENOENT) && a.opts.Overlay && len(a.opts.Lowers) > 0 {
		if tdir != nil && tdir != a.root {
			tdir.Close()
		}
		tdir, err = a.copyUp(hdr.Linkname, tparent, tbase)
		if err == nil {
			err = unix.Fstatat(fd(tdir), tbase, &tst, unix.AT_SYMLINK_NOFOLLOW)
		}
	}
	if tdir != nil && tdir != a.root {
		defer tdir.Close()
	}
	if errors.Is(err, unix.ENOENT) && a.opts.Overlay && len(a.opts.Lowers) == 0 {
		return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, ErrLinkToLower)
	}
	if err != nil {
		return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
	}
	if tst.Mode&unix.S_IFMT == unix.S_IFDIR {
		return fmt.Errorf("hardlink target %q is a directory", hdr.Linkname)
	}
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Dev == tst.Dev && st.Ino == tst.Ino {
		return nil // already that file
	}
	if err := a.removeExisting(pfd, base, false); err != nil {
		return err
	}
	if err := unix.Linkat(fd(tdir), tbase, pfd, base, 0); err != nil {
		return fmt.Errorf("hardlink to %q: %w", hdr.Linkname, err)
	}
	return nil
}

// removeExisting removes whatever is at base in pfd, so that an entry can
// take its place (the later entry wins). A directory is kept if keepDir.
func (a *applier) removeExisting(pfd int, base string, keepDir bool) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		if keepDir {
			return nil
		}
		a.parents.invalidate()
	case unix.S_IFLNK:
		a.parents.invalidate()
	}
	if err := removeAllAt(pfd, base); err != nil {
		return fmt.Errorf("replace existing entry: %w", err)
	}
	return nil
}

// removeAllAt removes name in dirfd and, for a directory, all it holds,
// never following symlinks.
func removeAllAt(dirfd int, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unix.Unlinkat(dirfd, name, 0)
	}
	cfd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	names, err := readDirNames(cfd)
	if err == nil {
		for _, n := range names {
			if err = removeAllAt(cfd, n); err != nil {
				break
			}
		}
	}
	unix.Close(cfd)
	if err != nil {
		return err
	}
	return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR)
}

// readDirNames lists the directory dirfd (which may be an O_PATH handle).
func readDirNames(dirfd int) ([]string, error) {
	dfd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	d := os.NewFile(uintptr(dfd), ".")
	defer d.Close()
	return d.Readdirnames(-1)
}

// attrs sets the owner, mode and xattrs of the entry base in pfd, just
// created; f is an open descriptor of it if there is one. Owner goes
// first: chown clears setuid bits and file capabilities.
func (a *applier) attrs(pfd int, base string, f *os.File, hdr *tar.Header) error {
	if !a.opts.NoOwnership {
		if hdr.Uid < 0 || hdr.Gid < 0 || hdr.Uid > 1<<32-2 || hdr.Gid > 1<<32-2 {
			return fmt.Errorf("owner %d:%d out of range", hdr.Uid, hdr.Gid)
		}
		var err error
		if f != nil {
			err = unix.Fchown(fd(f), hdr.Uid, hdr.Gid)
		} else {
			err = unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW)
		}
		if err != nil {
			return fmt.Errorf("chown %d:%d: %w", hdr.Uid, hdr.Gid, err)
		}
	}
	if hdr.Typeflag != tar.TypeSymlink {
		mode := uint32(hdr.Mode) & 0o7777
		var err error
		if f != nil {
			err = unix.Fchmod(fd(f), mode)
		} else {
			// A device or fifo created by this very entry, never a symlink.
			err = unix.Fchmodat(pfd, base, mode, 0)
		}
		if err != nil {
			return fmt.Errorf("chmod %#o: %w", mode, err)
		}
	}
	for k, v := range hdr.PAXRecords {
		key, ok := strings.CutPrefix(k, xattrPrefix)
		if !ok || skipXattr(key) {
			continue
		}
		var err error
		if f != nil {
			err = unix.Fsetxattr(fd(f), key, []byte(v), 0)
		} else {
			err = unix.Lsetxattr(fmt.Sprintf("/proc/self/fd/%d/%s", pfd, base), key, []byte(v), 0)
		}
		if err != nil && !a.ignoreXattrError(key, err) {
			return fmt.Errorf("set xattr %q: %w", key, err)
		}
	}
	return nil
}

// skipXattr tells the xattrs a layer may not set: overlayfs' own, which
// would let a layer redirect lookups or fake whiteouts in an overlay
// mount, and SELinux labels, which belong to the host's policy.
func skipXattr(key string) bool {
	return strings.HasPrefix(key, "trusted.overlay.") || strings.HasPrefix(key, "user.overlay.") || key == "security.selinux"
}

func (a *applier) ignoreXattrError(key string, err error) bool {
	if errors.Is(err, unix.ENOTSUP) {
		return true // the filesystem has no xattrs of that kind
	}
	return a.opts.NoOwnership && errors.Is(err, unix.EPERM) &&
		(strings.HasPrefix(key, "security.") || strings.HasPrefix(key, "trusted."))
}

func tarTimes(hdr *tar.Header) [2]unix.Timespec {
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = hdr.ModTime
	}
	return [2]unix.Timespec{
		{Sec: atime.Unix(), Nsec: int64(atime.Nanosecond())},
		{Sec: hdr.ModTime.Unix(), Nsec: int64(hdr.ModTime.Nanosecond())},
	}
}

func setTimes(pfd int, base string, hdr *tar.Header) error {
	ts := tarTimes(hdr)
	if err := unix.UtimesNanoAt(pfd, base, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// parentCache holds the handle of the last parent directory resolved:
// consecutive entries of a sorted layer share their parent. It is marked
// stale whenever a directory or symlink is removed, as that can change
// what a path resolves to.
type parentCache struct {
	name  string
	f     *os.File
	stale bool
}

// get resolves the directory name inside root, creating missing
// directories if create. The handle stays valid until the next get.
func (c *parentCache) get(root *os.File, name string, create bool) (*os.File, error) {
	if name == "" {
		return root, nil
	}
	if c.f != nil && !c.stale && c.name == name {
		return c.f, nil
	}
	var (
		f   *os.File
		err error
	)
	if create {
		f, err = pathrs.MkdirAllHandle(root, name, 0o755)
	} else {
		f, err = pathrs.OpenatInRoot(root, name)
	}
	if err != nil {
		return nil, err
	}
	c.close()
	c.name, c.f, c.stale = name, f, false
	return f, nil
}

func (c *parentCache) invalidate() { c.stale = true }

func (c *parentCache) close() {
	if c.f != nil {
		c.f.Close()
		c.f = nil
	}
}
