package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// fdPath returns the /proc/self/fd path that refers to f. Mounting onto (or
// from) that path acts on the exact inode f holds, whatever happened to the
// path it was opened by.
func fdPath(f *os.File) string {
	return "/proc/self/fd/" + strconv.Itoa(int(f.Fd()))
}

// openDir opens path as an O_PATH directory handle.
func openDir(path string) (*os.File, error) {
	return os.OpenFile(path, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// fileType returns the S_IFMT bits of the inode f refers to.
func fileType(f *os.File) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, fmt.Errorf("fstat %s: %w", f.Name(), err)
	}
	return st.Mode & unix.S_IFMT, nil
}

// openInRoot resolves path inside root (symlinks are resolved as if root were
// "/") and returns an O_PATH handle.
//
// It asks the kernel directly: openat2 with RESOLVE_IN_ROOT, which
// pathrs.OpenatInRoot uses too, but without its last step, a readlink of
// the new handle in a private procfs to give the *os.File the resolved
// path as its name. That step costs a procfs lookup and a dup per call,
// and a container's rootfs setup makes dozens of these calls on the way
// to the user's program; the handles' names here only appear in errors,
// where the path asked for serves. Kernels without openat2 (before 5.6)
// and processes whose seccomp filter refuses it get pathrs's fallback.
func openInRoot(root *os.File, path string) (*os.File, error) {
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	for range openat2Retries {
		fd, err := unix.Openat2(int(root.Fd()), path, &how)
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), filepath.Join(root.Name(), path)), nil
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.EAGAIN):
			// EAGAIN: a rename or mount raced the lookup; the
			// kernel asks for another try.
			continue
		case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM):
			// No openat2 (or a seccomp filter refusing it, as
			// older container profiles do): pathrs resolves the
			// path itself.
			return pathrs.OpenatInRoot(root, path)
		default:
			return nil, &os.PathError{Op: "openat2", Path: filepath.Join(root.Name(), path), Err: err}
		}
	}
	return nil, &os.PathError{Op: "openat2", Path: filepath.Join(root.Name(), path), Err: unix.EAGAIN}
}

// openat2Retries bounds the retries of an openat2 the kernel answered
// with EAGAIN (as pathrs does).
const openat2Retries = 32

// resolveInRoot resolves the symlinks of path lexically inside root (a
// dangling symlink is followed to where its target would be), returning a
// path relative to root. The result is only a hint for which names to
// create: it is always used with the race-safe pathrs functions, which
// resolve it inside root again.
func resolveInRoot(root *os.File, path string) (string, error) {
	joined, err := securejoin.SecureJoin(root.Name(), path)
	if err != nil {
		return "", fmt.Errorf("resolve %q in rootfs: %w", path, err)
	}
	rel, err := filepath.Rel(root.Name(), joined)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("resolve %q in rootfs: %s is outside %s", path, joined, root.Name())
	}
	return filepath.Clean("/" + rel), nil
}

// openParentInRoot resolves the parent directory of path inside root,
// creating missing directories, and returns it with the final component
// (which is not resolved).
func openParentInRoot(root *os.File, path string) (*os.File, string, error) {
	path = filepath.Clean("/" + path)
	base := filepath.Base(path)
	if base == "/" || base == "." || base == ".." {
		return nil, "", fmt.Errorf("%q has no final path component", path)
	}
	// Mostly the parent exists already: one lookup.
	if parent, err := openInRoot(root, filepath.Dir(path)); err == nil {
		if typ, err := fileType(parent); err == nil && typ == unix.S_IFDIR {
			return parent, base, nil
		}
		parent.Close()
	}
	dir, err := resolveInRoot(root, filepath.Dir(path))
	if err != nil {
		return nil, "", err
	}
	parent, err := pathrs.MkdirAllHandle(root, dir, 0o755)
	if err != nil {
		return nil, "", fmt.Errorf("create parent of %q: %w", path, err)
	}
	return parent, base, nil
}

// ensureDest makes sure the mount destination path exists inside root as a
// directory (isDir) or a non-directory, creating it (and its parents)
// without ever leaving root, and returns a handle to it.
func ensureDest(root *os.File, path string, isDir bool) (*os.File, error) {
	f, err := openInRoot(root, path)
	switch {
	case err == nil:
		if err := checkType(f, path, isDir); err != nil {
			f.Close()
			return nil, err
		}
		return f, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("open %q in rootfs: %w", path, err)
	}
	// The path, or a symlink on it, points to something missing: create
	// it where the symlinks lead, inside root.
	resolved, err := resolveInRoot(root, path)
	if err != nil {
		return nil, err
	}
	if isDir {
		f, err := pathrs.MkdirAllHandle(root, resolved, 0o755)
		if err != nil {
			return nil, fmt.Errorf("create directory %q in rootfs: %w", path, err)
		}
		return f, nil
	}
	parent, base, err := openParentInRoot(root, resolved)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	fd, err := unix.Openat(int(parent.Fd()), base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err == nil {
		unix.Close(fd)
	} else if !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("create file %q in rootfs: %w", path, err)
	}
	f, err = openNoFollow(parent, base)
	if err != nil {
		return nil, fmt.Errorf("open %q in rootfs: %w", path, err)
	}
	if err := checkType(f, path, isDir); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// openNoFollow opens name in dir as O_PATH without following a trailing
// symlink.
func openNoFollow(dir *os.File, name string) (*os.File, error) {
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "openat", Path: filepath.Join(dir.Name(), name), Err: err}
	}
	return os.NewFile(uintptr(fd), filepath.Join(dir.Name(), name)), nil
}

func checkType(f *os.File, path string, isDir bool) error {
	typ, err := fileType(f)
	if err != nil {
		return err
	}
	switch {
	case typ == unix.S_IFLNK:
		return fmt.Errorf("%q in rootfs is a symlink to a missing target", path)
	case isDir && typ != unix.S_IFDIR:
		return fmt.Errorf("%q in rootfs is not a directory", path)
	case !isDir && typ == unix.S_IFDIR:
		return fmt.Errorf("%q in rootfs is a directory, but the source is not", path)
	}
	return nil
}

// ensureRealDir is like ensureDest for a directory, but refuses a final
// component that is a symlink (even one pointing inside root): procfs and
// sysfs must be mounted on real directories.
func ensureRealDir(root *os.File, path string) (*os.File, error) {
	parent, base, err := openParentInRoot(root, path)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	if err := unix.Mkdirat(int(parent.Fd()), base, 0o755); err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("create directory %q in rootfs: %w", path, err)
	}
	f, err := openNoFollow(parent, base)
	if err != nil {
		return nil, fmt.Errorf("open %q in rootfs: %w", path, err)
	}
	typ, err := fileType(f)
	if err == nil && typ != unix.S_IFDIR {
		if typ == unix.S_IFLNK {
			err = fmt.Errorf("%q in rootfs is a symlink, refusing to mount over it", path)
		} else {
			err = fmt.Errorf("%q in rootfs is not a directory", path)
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}
