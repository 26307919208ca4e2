package volume

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// Seed copies the image's content at path (a path inside the container
// root filesystem rootfs) into dst, a new volume's directory, as docker
// does when a volume is first mounted over a non-empty directory of the
// image. It copies directories, files, symlinks, hard links, device
// nodes and fifos with their owners, modes, times and extended
// attributes. Symbolic links are copied as links, never followed; path
// itself is resolved inside rootfs. Seed does nothing when dst is not
// empty or path does not exist in rootfs.
func Seed(dst string, rootfs, path string) error {
	empty, err := isEmptyDir(dst)
	if err != nil {
		return fmt.Errorf("seed volume %s: %w", dst, err)
	}
	if !empty {
		return nil
	}
	src, err := securejoin.SecureJoin(rootfs, path)
	if err != nil {
		return fmt.Errorf("seed volume %s from %s: %w", dst, path, err)
	}
	st, err := os.Lstat(src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("seed volume %s from %s: %w", dst, path, err)
	}
	if !st.IsDir() {
		return nil // a file over which a volume is mounted: nothing docker copies
	}
	c := copier{links: map[fileID]string{}}
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		return c.copy(p, filepath.Join(dst, rel), rel == ".")
	})
	if err != nil {
		return fmt.Errorf("seed volume %s from %s: %w", dst, path, err)
	}
	// Directories' times last: copying into them changed their mtimes.
	for i := len(c.dirs) - 1; i >= 0; i-- {
		if err := setTimes(c.dirs[i].path, c.dirs[i].st); err != nil {
			return fmt.Errorf("seed volume %s: %w", dst, err)
		}
	}
	return nil
}

// fileID names a file: an inode number alone is not unique when the
// rootfs spans filesystems (overlayfs reports lower layers' devices).
type fileID struct{ dev, ino uint64 }

type copier struct {
	links map[fileID]string // a multiply-linked file → its copy
	dirs  []struct {
		path string
		st   *syscall.Stat_t
	}
}

func (c *copier) copy(src, dst string, root bool) error {
	info, err := os.Lstat(src)
	if err != nil {
		return err
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("%s: no stat data", src)
	}
	mode := info.Mode()
	switch {
	case mode.IsDir():
		if !root {
			if err := os.Mkdir(dst, 0o700); err != nil {
				return err
			}
		}
		c.dirs = append(c.dirs, struct {
			path string
			st   *syscall.Stat_t
		}{dst, st})
	case mode&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
	case mode.IsRegular():
		if st.Nlink > 1 {
			id := fileID{uint64(st.Dev), st.Ino}
			if first, ok := c.links[id]; ok {
				return os.Link(first, dst)
			}
			c.links[id] = dst
		}
		if err := copyFile(src, dst); err != nil {
			return err
		}
	case mode&(fs.ModeDevice|fs.ModeNamedPipe) != 0:
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return fmt.Errorf("mknod %s: %w", dst, err)
		}
	default:
		return nil // sockets: docker does not copy them either
	}
	if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := copyXattrs(src, dst); err != nil {
		return err
	}
	if mode&fs.ModeSymlink == 0 {
		// After chown, which clears set-id bits.
		if err := unix.Chmod(dst, st.Mode&07777); err != nil {
			return fmt.Errorf("chmod %s: %w", dst, err)
		}
	}
	if !mode.IsDir() {
		return setTimes(dst, st)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

func setTimes(p string, st *syscall.Stat_t) error {
	ts := []unix.Timespec{unix.NsecToTimespec(st.Atim.Nano()), unix.NsecToTimespec(st.Mtim.Nano())}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times of %s: %w", p, err)
	}
	return nil
}

// copyXattrs copies the extended attributes a filesystem lets us read and
// write; a filesystem without them is not an error.
func copyXattrs(src, dst string) error {
	size, err := unix.Llistxattr(src, nil)
	if err != nil || size == 0 {
		return nil
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(src, buf)
	if err != nil {
		return nil
	}
	for _, name := range splitNul(buf[:size]) {
		n, err := unix.Lgetxattr(src, name, nil)
		if err != nil {
			continue
		}
		val := make([]byte, n)
		if n, err = unix.Lgetxattr(src, name, val); err != nil {
			continue
		}
		err = unix.Lsetxattr(dst, name, val[:n], 0)
		if err != nil && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("set xattr %s on %s: %w", name, dst, err)
		}
	}
	return nil
}

func splitNul(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != 0 {
			i++
		}
		if i > 0 {
			out = append(out, string(b[:i]))
		}
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return out
}
