package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// defaultDevices are created in every container that gets its own /dev.
var defaultDevices = []specs.LinuxDevice{
	{Path: "/dev/null", Type: "c", Major: 1, Minor: 3},
	{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5},
	{Path: "/dev/full", Type: "c", Major: 1, Minor: 7},
	{Path: "/dev/random", Type: "c", Major: 1, Minor: 8},
	{Path: "/dev/urandom", Type: "c", Major: 1, Minor: 9},
	{Path: "/dev/tty", Type: "c", Major: 5, Minor: 0},
}

// needsDevSetup reports whether berth populates /dev: not when the spec
// bind-mounts a whole /dev from somewhere.
func needsDevSetup(spec *specs.Spec) bool {
	for _, m := range spec.Mounts {
		if filepath.Clean(m.Destination) != "/dev" {
			continue
		}
		if m.Type == "bind" {
			return false
		}
		for _, o := range m.Options {
			if o == "bind" || o == "rbind" {
				return false
			}
		}
	}
	return true
}

// hasProcMount reports whether the spec mounts procfs on /proc.
func hasProcMount(spec *specs.Spec) bool {
	for _, m := range spec.Mounts {
		if m.Type == "proc" && filepath.Clean(m.Destination) == "/proc" {
			return true
		}
	}
	return false
}

// deviceMode returns the S_IF* type bits for an OCI device type.
func deviceMode(typ string) (uint32, error) {
	switch typ {
	case "c", "u":
		return unix.S_IFCHR, nil
	case "b":
		return unix.S_IFBLK, nil
	case "p":
		return unix.S_IFIFO, nil
	}
	return 0, fmt.Errorf("type %q is not one of c, u, b, p", typ)
}

// setupDev creates the default devices, the spec's linux.devices, the
// standard /dev symlinks and /dev/ptmx.
func (m *mounter) setupDev() error {
	var specDevs []specs.LinuxDevice
	if m.c.Spec.Linux != nil {
		specDevs = m.c.Spec.Linux.Devices
	}
	inSpec := map[string]bool{}
	for i, d := range specDevs {
		field := fmt.Sprintf("linux.devices[%d]", i)
		clean := filepath.Clean(d.Path)
		if !strings.HasPrefix(clean, "/dev/") {
			return fmt.Errorf("%s: path %q is outside /dev", field, d.Path)
		}
		inSpec[clean] = true
	}
	for _, d := range defaultDevices {
		if inSpec[d.Path] {
			continue
		}
		mode := os.FileMode(0o666)
		d.FileMode = &mode
		if err := m.createDevice(d); err != nil {
			return fmt.Errorf("default device %s: %w", d.Path, err)
		}
	}
	for i, d := range specDevs {
		if err := m.createDevice(d); err != nil {
			return fmt.Errorf("linux.devices[%d]: %w", i, err)
		}
	}
	return m.devSymlinks()
}

// createDevice creates one device node inside the rootfs: mknod, or a bind
// mount of the host's node in a user namespace (where mknod is refused).
func (m *mounter) createDevice(d specs.LinuxDevice) error {
	typ, err := deviceMode(d.Type)
	if err != nil {
		return err
	}
	path := filepath.Clean(d.Path)
	parent, base, err := openParentInRoot(m.root, path)
	if err != nil {
		return err
	}
	defer parent.Close()
	pfd := int(parent.Fd())

	if err := unix.Unlinkat(pfd, base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove existing %s: %w", m.hostPath(path), err)
	}
	if m.c.UserNS && typ != unix.S_IFIFO {
		return m.bindDevice(parent, base, path)
	}
	perm := uint32(0o666)
	if d.FileMode != nil {
		perm = uint32(d.FileMode.Perm())
	}
	dev := int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))
	if typ == unix.S_IFIFO {
		dev = 0
	}
	if err := unix.Mknodat(pfd, base, typ|perm, dev); err != nil {
		return fmt.Errorf("mknod %s: %w", m.hostPath(path), err)
	}
	node, err := openNoFollow(parent, base)
	if err != nil {
		return err
	}
	defer node.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(node.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != typ || (typ != unix.S_IFIFO && st.Rdev != uint64(dev)) {
		return fmt.Errorf("%s changed while being created", m.hostPath(path))
	}
	// mknod honours the umask: set the exact mode through the handle.
	if err := unix.Chmod(fdPath(node), perm); err != nil {
		return fmt.Errorf("chmod %s: %w", m.hostPath(path), err)
	}
	uid, gid := 0, 0
	if d.UID != nil {
		uid = int(*d.UID)
	}
	if d.GID != nil {
		gid = int(*d.GID)
	}
	if err := unix.Fchownat(int(node.Fd()), "", uid, gid, unix.AT_EMPTY_PATH); err != nil {
		return fmt.Errorf("chown %s: %w", m.hostPath(path), err)
	}
	return nil
}

// bindDevice bind-mounts the host's node at path over an empty file.
func (m *mounter) bindDevice(parent *os.File, base, path string) error {
	src, err := os.OpenFile(path, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open host device: %w", err)
	}
	defer src.Close()
	fd, err := unix.Openat(int(parent.Fd()), base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create %s: %w", m.hostPath(path), err)
	}
	unix.Close(fd)
	dst, err := openNoFollow(parent, base)
	if err != nil {
		return err
	}
	defer dst.Close()
	if err := unix.Mount(fdPath(src), fdPath(dst), "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind mount %s on %s: %w", path, m.hostPath(path), err)
	}
	return nil
}

// devSymlinks creates /dev/fd, /dev/std{in,out,err}, /dev/core (with a proc
// mount) and /dev/ptmx -> pts/ptmx.
func (m *mounter) devSymlinks() error {
	links := [][2]string{
		{"/proc/self/fd", "fd"},
		{"/proc/self/fd/0", "stdin"},
		{"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"},
	}
	if _, err := os.Stat("/proc/kcore"); err == nil && hasProcMount(m.c.Spec) {
		// Only where the kernel has one, as runc does.
		links = append(links, [2]string{"/proc/kcore", "core"})
	}
	dev, err := ensureDest(m.root, "/dev", true)
	if err != nil {
		return err
	}
	defer dev.Close()
	dfd := int(dev.Fd())
	for _, l := range links {
		if err := unix.Symlinkat(l[0], dfd, l[1]); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("symlink %s -> %s: %w", m.hostPath("/dev/"+l[1]), l[0], err)
		}
	}
	if err := unix.Unlinkat(dfd, "ptmx", 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove %s: %w", m.hostPath("/dev/ptmx"), err)
	}
	if err := unix.Symlinkat("pts/ptmx", dfd, "ptmx"); err != nil {
		return fmt.Errorf("symlink %s -> pts/ptmx: %w", m.hostPath("/dev/ptmx"), err)
	}
	return nil
}
