package rootfs

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// OpenHostNull opens the host's /dev/null as an O_PATH handle and checks
// that it really is the null character device (1:3). Masked paths are
// covered with this inode, never with a /dev/null the container controls
// (CVE-2025-31133).
func OpenHostNull() (*os.File, error) {
	f, err := os.OpenFile("/dev/null", unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open host /dev/null: %w", err)
	}
	if err := verifyNull(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("host /dev/null: %w", err)
	}
	return f, nil
}

// verifyNull checks that f is the character device 1:3.
func verifyNull(f *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fmt.Errorf("fstat: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
		return fmt.Errorf("not the null device (mode %#o, rdev %d:%d)", st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	return nil
}

// nullSource hands out detached copies of the verified host /dev/null.
//
// After pivot_root the host's mounts are detached from the namespace, and
// the kernel refuses to bind-mount from a detached mount. So Prepare clones
// the host /dev/null mount once per masked path with open_tree(2) while it
// is still attached; Finalize moves one clone onto each masked file.
type nullSource struct {
	host   *os.File
	clones []int
}

// newNullSource opens the host /dev/null and makes n detached clones of it
// (none when the kernel lacks open_tree(2) or legacy is set).
func newNullSource(n int, legacy bool) (*nullSource, error) {
	host, err := OpenHostNull()
	if err != nil {
		return nil, err
	}
	s := &nullSource{host: host}
	if legacy {
		return s, nil
	}
	for range n {
		fd, err := unix.OpenTree(int(host.Fd()), "", unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_EMPTY_PATH)
		if errors.Is(err, unix.ENOSYS) {
			break
		}
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("clone host /dev/null mount: %w", err)
		}
		s.clones = append(s.clones, fd)
	}
	return s, nil
}

// maskFile mounts the null device over target (an O_PATH handle).
func (s *nullSource) maskFile(target *os.File) error {
	if len(s.clones) > 0 {
		fd := s.clones[0]
		s.clones = s.clones[1:]
		defer unix.Close(fd)
		return unix.MoveMount(fd, "", int(target.Fd()), "", unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_EMPTY_PATH)
	}
	err := unix.Mount(fdPath(s.host), fdPath(target), "", unix.MS_BIND, "")
	if !errors.Is(err, unix.EINVAL) {
		return err
	}
	// The host mount is detached (pivot_root) and no clone is left: use
	// the container's /dev/null, but only if it is the real device.
	null, err := os.OpenFile("/dev/null", unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open container /dev/null: %w", err)
	}
	defer null.Close()
	if err := verifyNull(null); err != nil {
		return fmt.Errorf("container /dev/null: %w", err)
	}
	return unix.Mount(fdPath(null), fdPath(target), "", unix.MS_BIND, "")
}

// Close releases the host handle and unused clones.
func (s *nullSource) Close() error {
	if s == nil {
		return nil
	}
	for _, fd := range s.clones {
		unix.Close(fd)
	}
	s.clones = nil
	if s.host == nil {
		return nil
	}
	err := s.host.Close()
	s.host = nil
	return err
}
