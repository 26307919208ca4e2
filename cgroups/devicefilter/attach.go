package devicefilter

import (
	"errors"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Apply builds the program for devices and attaches it to the cgroup v2
// directory dir, replacing the device programs attached to dir before
// (there is no moment without a filter).
func Apply(dir string, devices []specs.LinuxDeviceCgroup) error {
	rules, err := ParseRules(devices)
	if err != nil {
		return err
	}
	insns, err := Generate(rules)
	if err != nil {
		return fmt.Errorf("linux.resources.devices: %w", err)
	}
	prog, err := loadProgram("berth_devices", insns)
	if err != nil {
		return fmt.Errorf("linux.resources.devices: load device filter program: %w", err)
	}
	defer unix.Close(prog)

	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("linux.resources.devices: open cgroup %s: %w", dir, err)
	}
	defer unix.Close(fd)

	old, err := queryPrograms(fd)
	if err != nil {
		return fmt.Errorf("linux.resources.devices: query device filters of %s: %w", dir, err)
	}
	if len(old) == 1 {
		// Atomically replace the single program attached before.
		oldProg, err := programFD(old[0])
		if err == nil {
			err = attachProgram(fd, prog, unix.BPF_F_ALLOW_MULTI|unix.BPF_F_REPLACE, oldProg)
			unix.Close(oldProg)
			if err == nil {
				return nil
			}
		}
	}
	if err := attachProgram(fd, prog, unix.BPF_F_ALLOW_MULTI, -1); err != nil {
		return fmt.Errorf("linux.resources.devices: attach device filter to %s: %w", dir, err)
	}
	var errs []error
	for _, id := range old {
		p, err := programFD(id)
		if errors.Is(err, unix.ENOENT) {
			continue // detached and freed meanwhile
		}
		if err == nil {
			err = detachProgram(fd, p)
			unix.Close(p)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("detach old device filter %d from %s: %w", id, dir, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("linux.resources.devices: %w", errors.Join(errs...))
	}
	return nil
}

// Attached lists the ids of the device programs attached directly to the
// cgroup v2 directory dir.
func Attached(dir string) ([]uint32, error) {
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open cgroup %s: %w", dir, err)
	}
	defer unix.Close(fd)
	ids, err := queryPrograms(fd)
	if err != nil {
		return nil, fmt.Errorf("query device filters of %s: %w", dir, err)
	}
	return ids, nil
}
