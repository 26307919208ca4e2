package oci

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultDeviceRules are docker's device cgroup rules: deny everything,
// then allow mknod of any device and the use of the standard devices.
func DefaultDeviceRules() []specs.LinuxDeviceCgroup {
	rule := func(typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
		r := specs.LinuxDeviceCgroup{Allow: true, Type: typ, Access: access}
		if major >= 0 {
			r.Major = ptr(major)
		}
		if minor >= 0 {
			r.Minor = ptr(minor)
		}
		return r
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		rule("c", -1, -1, "m"),    // mknod of any character device
		rule("b", -1, -1, "m"),    // and of any block device
		rule("c", 1, 3, "rwm"),    // /dev/null
		rule("c", 1, 8, "rwm"),    // /dev/random
		rule("c", 1, 7, "rwm"),    // /dev/full
		rule("c", 5, 0, "rwm"),    // /dev/tty
		rule("c", 1, 5, "rwm"),    // /dev/zero
		rule("c", 1, 9, "rwm"),    // /dev/urandom
		rule("c", 5, 1, "rwm"),    // /dev/console
		rule("c", 136, -1, "rwm"), // /dev/pts/*
		rule("c", 5, 2, "rwm"),    // /dev/ptmx
		rule("c", 10, 200, "rwm"), // /dev/net/tun
	}
}

// deviceFromHost makes the linux.devices entry for the host device node
// hostPath, seen at ctrPath in the container.
func deviceFromHost(hostPath, ctrPath string) (specs.LinuxDevice, error) {
	var st unix.Stat_t
	if err := unix.Stat(hostPath, &st); err != nil {
		return specs.LinuxDevice{}, fmt.Errorf("device %s: %w", hostPath, &fs.PathError{Op: "stat", Path: hostPath, Err: err})
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	case unix.S_IFIFO:
		typ = "p"
	default:
		return specs.LinuxDevice{}, fmt.Errorf("device %s: not a device node", hostPath)
	}
	mode := fs.FileMode(st.Mode & 0o777)
	return specs.LinuxDevice{
		Path:     ctrPath,
		Type:     typ,
		Major:    int64(unix.Major(uint64(st.Rdev))),
		Minor:    int64(unix.Minor(uint64(st.Rdev))),
		FileMode: &mode,
		UID:      ptr(st.Uid),
		GID:      ptr(st.Gid),
	}, nil
}

// Devices resolves docker's --device mappings into linux.devices entries
// and device cgroup rules allowing them. A host path that is a directory
// maps every device node under it. Permissions default to "rwm".
func Devices(maps []container.DeviceMapping) ([]specs.LinuxDevice, []specs.LinuxDeviceCgroup, error) {
	var devs []specs.LinuxDevice
	var rules []specs.LinuxDeviceCgroup
	add := func(d specs.LinuxDevice, perms string) {
		devs = append(devs, d)
		if d.Type == "p" {
			return
		}
		rules = append(rules, specs.LinuxDeviceCgroup{Allow: true, Type: d.Type, Major: ptr(d.Major), Minor: ptr(d.Minor), Access: perms})
	}
	for _, m := range maps {
		perms := m.CgroupPermissions
		if perms == "" {
			perms = "rwm"
		}
		if strings.Trim(perms, "rwm") != "" {
			return nil, nil, fmt.Errorf("device %s: invalid permissions %q (want a combination of r, w and m)", m.PathOnHost, perms)
		}
		ctr := m.PathInContainer
		if ctr == "" {
			ctr = m.PathOnHost
		}
		if !filepath.IsAbs(m.PathOnHost) || !filepath.IsAbs(ctr) {
			return nil, nil, fmt.Errorf("device %s:%s: paths must be absolute", m.PathOnHost, ctr)
		}
		st, err := os.Stat(m.PathOnHost)
		if err != nil {
			return nil, nil, fmt.Errorf("device %s: %w", m.PathOnHost, err)
		}
		if !st.IsDir() {
			d, err := deviceFromHost(m.PathOnHost, ctr)
			if err != nil {
				return nil, nil, err
			}
			add(d, perms)
			continue
		}
		err = filepath.WalkDir(m.PathOnHost, func(p string, de fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if de.Type()&(fs.ModeDevice|fs.ModeCharDevice) == 0 {
				return nil
			}
			rel, _ := filepath.Rel(m.PathOnHost, p)
			d, err := deviceFromHost(p, filepath.Join(ctr, rel))
			if err != nil {
				return err
			}
			add(d, perms)
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("device directory %s: %w", m.PathOnHost, err)
		}
	}
	return devs, rules, nil
}

// hostDevices lists every device node of the host's /dev for a privileged
// container, skipping the directories the container gets its own of.
func hostDevices() ([]specs.LinuxDevice, error) {
	var devs []specs.LinuxDevice
	err := filepath.WalkDir("/dev", func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
				return nil
			}
			return err
		}
		if de.IsDir() {
			switch de.Name() {
			case "pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev":
				return fs.SkipDir
			}
			return nil
		}
		if de.Type()&(fs.ModeDevice|fs.ModeCharDevice) == 0 || p == "/dev/console" {
			return nil
		}
		d, err := deviceFromHost(p, p)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // gone meanwhile
			}
			return err
		}
		devs = append(devs, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list host devices: %w", err)
	}
	return devs, nil
}

// parseDeviceCgroupRule reads docker's --device-cgroup-rule form
// "c 1:3 rwm" (type a, b or c; major and minor may be *).
func parseDeviceCgroupRule(s string) (specs.LinuxDeviceCgroup, error) {
	f := strings.Fields(s)
	if len(f) != 3 || (f[0] != "a" && f[0] != "b" && f[0] != "c") || f[2] == "" || strings.Trim(f[2], "rwm") != "" {
		return specs.LinuxDeviceCgroup{}, fmt.Errorf("invalid device cgroup rule %q: want 'type major:minor access', e.g. 'c 1:3 rwm'", s)
	}
	maj, min, ok := strings.Cut(f[1], ":")
	if !ok {
		return specs.LinuxDeviceCgroup{}, fmt.Errorf("invalid device cgroup rule %q: want major:minor", s)
	}
	r := specs.LinuxDeviceCgroup{Allow: true, Type: f[0], Access: f[2]}
	for _, x := range []struct {
		s   string
		dst **int64
	}{{maj, &r.Major}, {min, &r.Minor}} {
		if x.s == "*" {
			continue
		}
		n, err := strconv.ParseInt(x.s, 10, 64)
		if err != nil || n < 0 {
			return specs.LinuxDeviceCgroup{}, fmt.Errorf("invalid device cgroup rule %q: bad number %q", s, x.s)
		}
		*x.dst = ptr(n)
	}
	return r, nil
}
