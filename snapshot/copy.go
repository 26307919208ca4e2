package snapshot

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"
)

// copyTree copies the tree at src into the existing, empty directory dst,
// with ownership, permissions (setuid/setgid/sticky included), extended
// attributes, timestamps, symlinks, device nodes, FIFOs and hard links.
// Regular files are reflinked when the filesystem can (FICLONE), else
// copied with copy_file_range(2) (what io.Copy between files does).
// Symlinks are copied as links, never followed.
func copyTree(src, dst string) error {
	links := map[inodeKey]string{}
	type dirTimes struct {
		path string
		st   *syscall.Stat_t
	}
	var dirs []dirTimes
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("%s: no stat information", p)
		}
		if err := copyEntry(p, target, rel == ".", st, links); err != nil {
			return fmt.Errorf("copy %q: %w", rel, err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			dirs = append(dirs, dirTimes{target, st})
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Directory times last: creating their entries changed them.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := setTimes(dirs[i].path, dirs[i].st); err != nil {
			return fmt.Errorf("copy %s: %w", dirs[i].path, err)
		}
	}
	return nil
}

// inodeKey identifies an inode, to copy hard links as links.
type inodeKey struct{ dev, ino uint64 }

func copyEntry(src, dst string, isRoot bool, st *syscall.Stat_t, links map[inodeKey]string) error {
	mode := st.Mode & unix.S_IFMT
	switch mode {
	case unix.S_IFDIR:
		if !isRoot {
			if err := os.Mkdir(dst, 0o700); err != nil {
				return err
			}
		}
	case unix.S_IFREG:
		k := inodeKey{uint64(st.Dev), st.Ino}
		if st.Nlink > 1 {
			if first, ok := links[k]; ok {
				return os.Link(first, dst)
			}
			links[k] = dst
		}
		if err := copyFile(src, dst); err != nil {
			return err
		}
	case unix.S_IFLNK:
		t, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(t, dst); err != nil {
			return err
		}
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO, unix.S_IFSOCK:
		if err := unix.Mknod(dst, mode|0o600, int(st.Rdev)); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unsupported file type %#o", mode)
	}
	if err := unix.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := copyXattrs(src, dst); err != nil {
		return err
	}
	if mode == unix.S_IFLNK {
		return setTimes(dst, st)
	}
	// After chown, which clears setuid and setgid.
	if err := unix.Fchmodat(unix.AT_FDCWD, dst, st.Mode&0o7777, 0); err != nil {
		return err
	}
	if mode == unix.S_IFDIR {
		return nil // times set once the directory is filled
	}
	return setTimes(dst, st)
}

func copyFile(src, dst string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	if unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) != nil {
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
	}
	return out.Close()
}

func copyXattrs(src, dst string) error {
	names, err := listXattrs(src)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil
		}
		return fmt.Errorf("list xattrs: %w", err)
	}
	for _, n := range names {
		v, err := getXattr(src, n)
		if err != nil {
			return fmt.Errorf("xattr %s: %w", n, err)
		}
		if err := unix.Lsetxattr(dst, n, v, 0); err != nil {
			return fmt.Errorf("xattr %s: %w", n, err)
		}
	}
	return nil
}

func listXattrs(path string) ([]string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Llistxattr(path, buf)
		if errors.Is(err, unix.ERANGE) {
			sz, err := unix.Llistxattr(path, nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, sz+64)
			continue
		}
		if err != nil {
			return nil, err
		}
		return splitNUL(buf[:n]), nil
	}
}

func splitNUL(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i > start {
				out = append(out, string(b[start:i]))
			}
			start = i + 1
		}
	}
	return out
}

func getXattr(path, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			sz, err := unix.Lgetxattr(path, name, nil)
			if err != nil {
				return nil, err
			}
			buf = make([]byte, sz+64)
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

func setTimes(path string, st *syscall.Stat_t) error {
	ts := []unix.Timespec{unix.NsecToTimespec(st.Atim.Nano()), unix.NsecToTimespec(st.Mtim.Nano())}
	return unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW)
}
