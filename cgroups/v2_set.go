package cgroups

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/cgroups/devicefilter"
)

// Set implements Manager.
func (m *v2Manager) Set(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	if m.unavailable {
		if requestsResources(r) {
			return fmt.Errorf("linux.resources: the cgroup %s could not be created (rootless, permission denied)", m.dir)
		}
		return nil
	}
	for _, set := range []func(*specs.LinuxResources) error{
		m.setCPU, m.setCpuset, m.setMemory, m.setPids, m.setIO,
		m.setHugetlb, m.setRdma, m.setDevices, m.setUnified,
	} {
		if err := set(r); err != nil {
			return err
		}
	}
	return nil
}

// requestsResources reports whether r asks for any limit.
func requestsResources(r *specs.LinuxResources) bool {
	return r.Memory != nil || r.CPU != nil || r.Pids != nil || r.BlockIO != nil ||
		len(r.HugepageLimits) > 0 || len(r.Rdma) > 0 || len(r.Unified) > 0 || len(r.Devices) > 0
}

// file checks that the interface file of a controller exists, so that a
// controller that is not enabled gets a clear error.
func (m *v2Manager) file(field, name string) error {
	if exists(m.dir, name) {
		return nil
	}
	ctrl, _, _ := strings.Cut(name, ".")
	return fmt.Errorf("%s: %s does not exist: the %s controller is not enabled for this cgroup (see %s)",
		field, filepath.Join(m.dir, name), ctrl, filepath.Join(filepath.Dir(m.dir), "cgroup.subtree_control"))
}

// hasController reports whether controller c is enabled for the cgroup.
func (m *v2Manager) hasController(c string) bool {
	s, err := readFile(m.dir, "cgroup.controllers")
	return err == nil && slices.Contains(strings.Fields(s), c)
}

func (m *v2Manager) write(field, name, value string) error {
	if err := m.file(field, name); err != nil {
		return err
	}
	return writeFile(field, m.dir, name, value)
}

// CPUSharesToWeight converts cgroup v1 cpu.shares [2, 262144] to cgroup v2
// cpu.weight [1, 10000] like runc does; 0 stays 0 (unset).
func CPUSharesToWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	if shares < 2 {
		shares = 2
	}
	return 1 + ((shares-2)*9999)/262142
}

// BlkioWeightToIOWeight converts a blkio weight [10, 1000] to io.weight
// [1, 10000]; 0 stays 0 (unset).
func BlkioWeightToIOWeight(w uint64) uint64 {
	if w == 0 {
		return 0
	}
	if w < 10 {
		w = 10
	}
	return 1 + (w-10)*9999/990
}

func (m *v2Manager) setCPU(r *specs.LinuxResources) error {
	c := r.CPU
	if c == nil {
		return nil
	}
	if c.RealtimePeriod != nil && *c.RealtimePeriod != 0 {
		return errors.New("linux.resources.cpu.realtimePeriod: realtime scheduling limits are not supported on cgroup v2")
	}
	if c.RealtimeRuntime != nil && *c.RealtimeRuntime != 0 {
		return errors.New("linux.resources.cpu.realtimeRuntime: realtime scheduling limits are not supported on cgroup v2")
	}
	if c.Shares != nil && *c.Shares != 0 {
		if *c.Shares > 262144 {
			return fmt.Errorf("linux.resources.cpu.shares: %d is out of the range 2-262144", *c.Shares)
		}
		if err := m.write("linux.resources.cpu.shares", "cpu.weight", u64(CPUSharesToWeight(*c.Shares))); err != nil {
			return err
		}
	}
	var quota int64
	var period uint64
	if c.Quota != nil {
		quota = *c.Quota
	}
	if c.Period != nil {
		period = *c.Period
	}
	if quota != 0 || period != 0 {
		if period == 0 {
			period = 100000
		}
		v := fmt.Sprintf("%d %d", quota, period)
		if quota <= 0 {
			v = fmt.Sprintf("max %d", period)
		}
		if err := m.write("linux.resources.cpu.quota", "cpu.max", v); err != nil {
			return err
		}
	}
	if c.Burst != nil {
		if err := m.write("linux.resources.cpu.burst", "cpu.max.burst", u64(*c.Burst)); err != nil {
			return err
		}
	}
	if c.Idle != nil {
		if err := m.write("linux.resources.cpu.idle", "cpu.idle", i64(*c.Idle)); err != nil {
			return err
		}
	}
	return nil
}

func (m *v2Manager) setCpuset(r *specs.LinuxResources) error {
	c := r.CPU
	if c == nil {
		return nil
	}
	if c.Cpus != "" {
		if err := m.write("linux.resources.cpu.cpus", "cpuset.cpus", c.Cpus); err != nil {
			return err
		}
	}
	if c.Mems != "" {
		if err := m.write("linux.resources.cpu.mems", "cpuset.mems", c.Mems); err != nil {
			return err
		}
	}
	return nil
}

// memoryValue formats a v2 memory limit: -1 means "max".
func memoryValue(v int64) string {
	if v == -1 {
		return "max"
	}
	return i64(v)
}

// swapMax converts the OCI memory+swap limit to memory.swap.max, which
// only counts swap.
func swapMax(swap int64, limit *int64) (string, error) {
	switch {
	case swap == -1:
		return "max", nil
	case limit == nil || *limit == 0:
		return "", errors.New("linux.resources.memory.swap: a swap limit needs linux.resources.memory.limit on cgroup v2")
	case *limit == -1:
		return "", errors.New("linux.resources.memory.swap: a finite swap limit cannot go with an unlimited memory limit on cgroup v2")
	case swap < *limit:
		return "", fmt.Errorf("linux.resources.memory.swap: %d (memory+swap) is below linux.resources.memory.limit %d", swap, *limit)
	}
	return i64(swap - *limit), nil
}

func (m *v2Manager) setMemory(r *specs.LinuxResources) error {
	mem := r.Memory
	if mem == nil {
		return nil
	}
	// kernel, kernelTCP, disableOOMKiller and useHierarchy have no cgroup
	// v2 equivalent and are ignored like runc does.
	if mem.Swappiness != nil && *mem.Swappiness > 100 {
		return fmt.Errorf("linux.resources.memory.swappiness: %d is out of the range 0-100", *mem.Swappiness)
	}
	if mem.Swap != nil {
		v, err := swapMax(*mem.Swap, mem.Limit)
		if err != nil {
			return err
		}
		// Without swap accounting memory.swap.max is absent; only an
		// explicit swap limit is an error then.
		if exists(m.dir, "memory.swap.max") || v != "0" && v != "max" {
			if err := m.write("linux.resources.memory.swap", "memory.swap.max", v); err != nil {
				return err
			}
		}
	}
	if mem.Limit != nil {
		if mem.CheckBeforeUpdate != nil && *mem.CheckBeforeUpdate && *mem.Limit > 0 {
			usage, err := readUint(m.dir, "memory.current")
			if err != nil {
				return fmt.Errorf("linux.resources.memory.checkBeforeUpdate: %w", err)
			}
			if uint64(*mem.Limit) < usage {
				return fmt.Errorf("linux.resources.memory.limit: %d is below the current memory usage %d of %s", *mem.Limit, usage, m.dir)
			}
		}
		if err := m.write("linux.resources.memory.limit", "memory.max", memoryValue(*mem.Limit)); err != nil {
			return err
		}
	}
	if mem.Reservation != nil {
		if err := m.write("linux.resources.memory.reservation", "memory.low", memoryValue(*mem.Reservation)); err != nil {
			return err
		}
	}
	return nil
}

func (m *v2Manager) setPids(r *specs.LinuxResources) error {
	if r.Pids == nil || r.Pids.Limit == nil {
		return nil
	}
	v, ok := pidsMax(*r.Pids.Limit)
	if !ok {
		return nil
	}
	return m.write("linux.resources.pids.limit", "pids.max", v)
}

func (m *v2Manager) setIO(r *specs.LinuxResources) error {
	b := r.BlockIO
	if b == nil {
		return nil
	}
	// io.bfq.weight takes blkio weights as they are; io.weight needs the
	// conversion to [1, 10000].
	bfq := exists(m.dir, "io.bfq.weight")
	weight := func(w uint16) (string, string) {
		if bfq {
			return "io.bfq.weight", u64(uint64(w))
		}
		return "io.weight", u64(BlkioWeightToIOWeight(uint64(w)))
	}
	if b.Weight != nil && *b.Weight != 0 {
		file, v := weight(*b.Weight)
		if err := m.write("linux.resources.blockIO.weight", file, v); err != nil {
			return err
		}
	}
	for i, wd := range b.WeightDevice {
		if wd.Weight == nil {
			continue
		}
		file, v := weight(*wd.Weight)
		field := fmt.Sprintf("linux.resources.blockIO.weightDevice[%d].weight", i)
		if err := m.write(field, file, devNum(wd.LinuxBlockIODevice)+" "+v); err != nil {
			return err
		}
	}
	for _, t := range []struct {
		name string
		devs []specs.LinuxThrottleDevice
		key  string
	}{
		{"throttleReadBpsDevice", b.ThrottleReadBpsDevice, "rbps"},
		{"throttleWriteBpsDevice", b.ThrottleWriteBpsDevice, "wbps"},
		{"throttleReadIOPSDevice", b.ThrottleReadIOPSDevice, "riops"},
		{"throttleWriteIOPSDevice", b.ThrottleWriteIOPSDevice, "wiops"},
	} {
		for i, d := range t.devs {
			field := fmt.Sprintf("linux.resources.blockIO.%s[%d]", t.name, i)
			rate := u64(d.Rate)
			if d.Rate == 0 {
				rate = "max"
			}
			if err := m.write(field, "io.max", fmt.Sprintf("%s %s=%s", devNum(d.LinuxBlockIODevice), t.key, rate)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *v2Manager) setHugetlb(r *specs.LinuxResources) error {
	for i, h := range r.HugepageLimits {
		field := fmt.Sprintf("linux.resources.hugepageLimits[%d]", i)
		file := "hugetlb." + h.Pagesize + ".max"
		if !exists(m.dir, file) {
			if m.hasController("hugetlb") {
				return fmt.Errorf("%s: huge page size %q is not supported (%s does not exist)", field, h.Pagesize, filepath.Join(m.dir, file))
			}
			return m.file(field, file)
		}
		if err := writeFile(field, m.dir, file, u64(h.Limit)); err != nil {
			return err
		}
		if rsvd := "hugetlb." + h.Pagesize + ".rsvd.max"; exists(m.dir, rsvd) {
			if err := writeFile(field, m.dir, rsvd, u64(h.Limit)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *v2Manager) setRdma(r *specs.LinuxResources) error {
	if len(r.Rdma) == 0 {
		return nil
	}
	if err := m.file("linux.resources.rdma", "rdma.max"); err != nil {
		return err
	}
	return writeRdma(m.dir, r.Rdma)
}

func (m *v2Manager) setDevices(r *specs.LinuxResources) error {
	if len(r.Devices) == 0 {
		return nil
	}
	err := devicefilter.Apply(m.dir, r.Devices)
	if err != nil && m.rootless && isPermission(err) {
		return nil
	}
	return err
}

// setUnified writes linux.resources.unified: each key is a file of the
// cgroup directory. It runs last so that it overrides the other fields.
func (m *v2Manager) setUnified(r *specs.LinuxResources) error {
	for _, k := range slices.Sorted(maps.Keys(r.Unified)) {
		field := fmt.Sprintf("linux.resources.unified[%q]", k)
		if k == "" || strings.ContainsAny(k, "/\x00") || k == "." || k == ".." {
			return fmt.Errorf("%s: invalid cgroup file name", field)
		}
		if k == "cgroup.procs" || k == "cgroup.threads" || k == "cgroup.subtree_control" {
			return fmt.Errorf("%s: %s cannot be set as a resource", field, k)
		}
		if err := m.write(field, k, r.Unified[k]); err != nil {
			return err
		}
	}
	return nil
}
