// Package exeseal gives the runtime a copy of its own binary that a
// container cannot overwrite (CVE-2019-5736).
//
// A container init or exec starts as a re-execution of berth. If that
// execution used berth's on-disk file, a process in the container could
// reach it through /proc/PID/exe (for instance by making the program it
// asks berth to run a "#!/proc/self/exe" script) and, once berth exits,
// rewrite the host's berth binary. berth instead executes a file that
// cannot be written: the binary seen through a private, read-only,
// detached overlayfs mount (a few syscalls, no copy), or, where overlayfs
// cannot be mounted (unprivileged, or a binary already on an overlay
// that will not stack), a sealed memfd copy.
package exeseal

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Open returns an O_PATH (or memfd) handle of the binary at exe (the
// running binary when exe is "") that can be executed through
// /proc/self/fd/N and never written. emptyDir must be an empty directory
// berth owns (overlayfs needs two lower layers).
func Open(exe, emptyDir string) (*os.File, error) {
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return openMemfd("/proc/self/exe")
		}
	}
	if f, err := openOverlay(exe, emptyDir); err == nil {
		return f, nil
	}
	return openMemfd(exe)
}

func openOverlay(exe, emptyDir string) (*os.File, error) {
	dir, base := filepath.Split(exe)
	dir = filepath.Clean(dir)
	// ':' ',' and '\' are separators or escapes in overlay options.
	if strings.ContainsAny(dir+emptyDir, ":,\\") {
		return nil, fmt.Errorf("path %s needs escaping for overlayfs", dir)
	}
	if err := os.MkdirAll(emptyDir, 0o700); err != nil {
		return nil, err
	}
	fsfd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigSetString(fsfd, "lowerdir", dir+":"+emptyDir); err != nil {
		return nil, err
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return nil, err
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_RDONLY)
	if err != nil {
		return nil, err
	}
	defer unix.Close(mfd)
	fd, err := unix.Openat(mfd, base, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), "berth (sealed overlay)"), nil
}

func openMemfd(exe string) (*os.File, error) {
	src, err := os.Open(exe)
	if err != nil {
		return nil, fmt.Errorf("seal runtime binary: %w", err)
	}
	defer src.Close()
	fd, err := unix.MemfdCreate("berth", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("seal runtime binary: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "berth (sealed memfd)")
	if _, err := io.Copy(f, src); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal runtime binary: copy: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal runtime binary: %w", err)
	}
	return f, nil
}
