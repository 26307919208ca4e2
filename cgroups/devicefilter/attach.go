package devicefilter

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
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
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "berth_devices",
		Type:         ebpf.CGroupDevice,
		License:      "Apache",
		Instructions: insns,
	})
	if err != nil {
		return fmt.Errorf("linux.resources.devices: load device filter program: %w", err)
	}
	defer prog.Close()

	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("linux.resources.devices: open cgroup %s: %w", dir, err)
	}
	defer unix.Close(fd)

	old, err := Attached(dir)
	if err != nil {
		return fmt.Errorf("linux.resources.devices: %w", err)
	}
	if len(old) == 1 {
		// Atomically replace the single program attached before.
		oldProg, err := ebpf.NewProgramFromID(old[0])
		if err == nil {
			err = link.RawAttachProgram(link.RawAttachProgramOptions{
				Target:  fd,
				Program: prog,
				Attach:  ebpf.AttachCGroupDevice,
				Flags:   unix.BPF_F_ALLOW_MULTI,
				Anchor:  link.ReplaceProgram(oldProg),
			})
			oldProg.Close()
			if err == nil {
				return nil
			}
		}
	}
	if err := link.RawAttachProgram(link.RawAttachProgramOptions{
		Target:  fd,
		Program: prog,
		Attach:  ebpf.AttachCGroupDevice,
		Flags:   unix.BPF_F_ALLOW_MULTI,
	}); err != nil {
		return fmt.Errorf("linux.resources.devices: attach device filter to %s: %w", dir, err)
	}
	var errs []error
	for _, id := range old {
		p, err := ebpf.NewProgramFromID(id)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err == nil {
			err = link.RawDetachProgram(link.RawDetachProgramOptions{
				Target:  fd,
				Program: p,
				Attach:  ebpf.AttachCGroupDevice,
			})
			p.Close()
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

// Attached lists the device programs attached directly to the cgroup v2
// directory dir.
func Attached(dir string) ([]ebpf.ProgramID, error) {
	fd, err := unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open cgroup %s: %w", dir, err)
	}
	defer unix.Close(fd)
	res, err := link.QueryPrograms(link.QueryOptions{Target: fd, Attach: ebpf.AttachCGroupDevice})
	if err != nil {
		return nil, fmt.Errorf("query device filters of %s: %w", dir, err)
	}
	ids := make([]ebpf.ProgramID, 0, len(res.Programs))
	for _, p := range res.Programs {
		ids = append(ids, p.ID)
	}
	return ids, nil
}
