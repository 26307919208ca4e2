package cgroups

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/cgroups/devicefilter"
)

// Set implements Manager.
func (m *v1Manager) Set(r *specs.LinuxResources) error {
	if r == nil {
		return nil
	}
	if len(r.Unified) > 0 {
		return errors.New("linux.resources.unified requires cgroup v2")
	}
	for _, set := range []func(*specs.LinuxResources) error{
		m.setCpuset, m.setCPU, m.setMemory, m.setPids, m.setDevices,
		m.setBlkio, m.setHugetlb, m.setNetwork, m.setRdma,
	} {
		if err := set(r); err != nil {
			return err
		}
	}
	return nil
}

// ctrlDir returns the directory of controller ctrl, or an error naming the
// resource field that needs it.
func (m *v1Manager) ctrlDir(ctrl, field string) (string, error) {
	if dir, ok := m.paths[ctrl]; ok {
		return dir, nil
	}
	if m.rootless {
		return "", fmt.Errorf("%s: the %s cgroup could not be created (rootless) or is not mounted", field, ctrl)
	}
	return "", fmt.Errorf("%s: the %s cgroup controller is not mounted", field, ctrl)
}

// writeSupported writes like writeFile but first checks that the file
// exists, so that missing kernel features get a clear error.
func writeSupported(field, dir, name, value string) error {
	if !exists(dir, name) {
		return fmt.Errorf("%s: not supported by this kernel (%s does not exist)", field, filepath.Join(dir, name))
	}
	return writeFile(field, dir, name, value)
}

func i64(v int64) string  { return strconv.FormatInt(v, 10) }
func u64(v uint64) string { return strconv.FormatUint(v, 10) }

func boolStr(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func (m *v1Manager) setCpuset(r *specs.LinuxResources) error {
	c := r.CPU
	if c == nil || c.Cpus == "" && c.Mems == "" {
		return nil
	}
	dir, err := m.ctrlDir("cpuset", "linux.resources.cpu.cpus")
	if err != nil {
		return err
	}
	if c.Cpus != "" {
		if err := writeFile("linux.resources.cpu.cpus", dir, "cpuset.cpus", c.Cpus); err != nil {
			return err
		}
	}
	if c.Mems != "" {
		if err := writeFile("linux.resources.cpu.mems", dir, "cpuset.mems", c.Mems); err != nil {
			return err
		}
	}
	return nil
}

func (m *v1Manager) setCPU(r *specs.LinuxResources) error {
	c := r.CPU
	if c == nil {
		return nil
	}
	nz := func(p *uint64) bool { return p != nil && *p != 0 }
	nzi := func(p *int64) bool { return p != nil && *p != 0 }
	if !nz(c.Shares) && !nz(c.Period) && !nzi(c.Quota) && c.Burst == nil &&
		!nz(c.RealtimePeriod) && !nzi(c.RealtimeRuntime) && c.Idle == nil {
		return nil
	}
	dir, err := m.ctrlDir("cpu", "linux.resources.cpu")
	if err != nil {
		return err
	}
	if nz(c.Shares) {
		if err := writeFile("linux.resources.cpu.shares", dir, "cpu.shares", u64(*c.Shares)); err != nil {
			return err
		}
		got, err := readUint(dir, "cpu.shares")
		if err != nil {
			return fmt.Errorf("linux.resources.cpu.shares: read back: %w", err)
		}
		if got != *c.Shares {
			return fmt.Errorf("linux.resources.cpu.shares: the kernel set %d instead of %d (valid range is 2-262144)", got, *c.Shares)
		}
	}
	if nz(c.Period) {
		err := writeFile("linux.resources.cpu.period", dir, "cpu.cfs_period_us", u64(*c.Period))
		if err != nil && nzi(c.Quota) {
			// The new period may be invalid with the old quota: write
			// the quota first and retry.
			if qerr := writeFile("linux.resources.cpu.quota", dir, "cpu.cfs_quota_us", i64(*c.Quota)); qerr == nil {
				err = writeFile("linux.resources.cpu.period", dir, "cpu.cfs_period_us", u64(*c.Period))
			}
		}
		if err != nil {
			return err
		}
	}
	if nzi(c.Quota) {
		if err := writeFile("linux.resources.cpu.quota", dir, "cpu.cfs_quota_us", i64(*c.Quota)); err != nil {
			return err
		}
	}
	if c.Burst != nil {
		if err := writeSupported("linux.resources.cpu.burst", dir, "cpu.cfs_burst_us", u64(*c.Burst)); err != nil {
			return err
		}
	}
	if nz(c.RealtimePeriod) {
		if err := writeSupported("linux.resources.cpu.realtimePeriod", dir, "cpu.rt_period_us", u64(*c.RealtimePeriod)); err != nil {
			return err
		}
	}
	if nzi(c.RealtimeRuntime) {
		if err := writeSupported("linux.resources.cpu.realtimeRuntime", dir, "cpu.rt_runtime_us", i64(*c.RealtimeRuntime)); err != nil {
			return err
		}
	}
	if c.Idle != nil {
		if err := writeSupported("linux.resources.cpu.idle", dir, "cpu.idle", i64(*c.Idle)); err != nil {
			return err
		}
	}
	return nil
}

func (m *v1Manager) setMemory(r *specs.LinuxResources) error {
	mem := r.Memory
	if mem == nil {
		return nil
	}
	// Kernel memory limits are obsolete (kernel 5.4) and ignored.
	if mem.Limit == nil && mem.Swap == nil && mem.Reservation == nil && mem.KernelTCP == nil &&
		mem.Swappiness == nil && mem.DisableOOMKiller == nil && mem.UseHierarchy == nil {
		return nil
	}
	dir, err := m.ctrlDir("memory", "linux.resources.memory")
	if err != nil {
		return err
	}
	if mem.Limit != nil && mem.CheckBeforeUpdate != nil && *mem.CheckBeforeUpdate && *mem.Limit > 0 {
		usage, err := readUint(dir, "memory.usage_in_bytes")
		if err != nil {
			return fmt.Errorf("linux.resources.memory.checkBeforeUpdate: %w", err)
		}
		if uint64(*mem.Limit) < usage {
			return fmt.Errorf("linux.resources.memory.limit: %d is below the current memory usage %d of %s", *mem.Limit, usage, dir)
		}
	}
	writeLimit := func() error {
		if mem.Limit == nil {
			return nil
		}
		return writeFile("linux.resources.memory.limit", dir, "memory.limit_in_bytes", i64(*mem.Limit))
	}
	writeSwap := func() error {
		if mem.Swap == nil {
			return nil
		}
		return writeSupported("linux.resources.memory.swap", dir, "memory.memsw.limit_in_bytes", i64(*mem.Swap))
	}
	// memory.limit_in_bytes must stay <= memory.memsw.limit_in_bytes at
	// every step: raise memsw first, lower it last.
	first, second := writeLimit, writeSwap
	if mem.Swap != nil {
		cur, err := readFile(dir, "memory.memsw.limit_in_bytes")
		if err == nil {
			if c, perr := strconv.ParseInt(cur, 10, 64); perr == nil && (*mem.Swap == -1 || *mem.Swap > c) {
				first, second = writeSwap, writeLimit
			}
		}
	}
	if err := first(); err != nil {
		return err
	}
	if err := second(); err != nil {
		return err
	}
	if mem.Reservation != nil {
		if err := writeFile("linux.resources.memory.reservation", dir, "memory.soft_limit_in_bytes", i64(*mem.Reservation)); err != nil {
			return err
		}
	}
	if mem.KernelTCP != nil {
		if err := writeSupported("linux.resources.memory.kernelTCP", dir, "memory.kmem.tcp.limit_in_bytes", i64(*mem.KernelTCP)); err != nil {
			return err
		}
	}
	if mem.Swappiness != nil {
		if *mem.Swappiness > 100 {
			return fmt.Errorf("linux.resources.memory.swappiness: %d is out of the range 0-100", *mem.Swappiness)
		}
		if err := writeFile("linux.resources.memory.swappiness", dir, "memory.swappiness", u64(*mem.Swappiness)); err != nil {
			return err
		}
	}
	if mem.DisableOOMKiller != nil {
		if err := writeFile("linux.resources.memory.disableOOMKiller", dir, "memory.oom_control", boolStr(*mem.DisableOOMKiller)); err != nil {
			return err
		}
	}
	if mem.UseHierarchy != nil {
		if err := writeFile("linux.resources.memory.useHierarchy", dir, "memory.use_hierarchy", boolStr(*mem.UseHierarchy)); err != nil {
			return err
		}
	}
	return nil
}

// pidsMax converts linux.resources.pids.limit: 0 leaves the limit alone,
// a negative value means unlimited.
func pidsMax(limit int64) (string, bool) {
	switch {
	case limit > 0:
		return i64(limit), true
	case limit < 0:
		return "max", true
	}
	return "", false
}

func (m *v1Manager) setPids(r *specs.LinuxResources) error {
	if r.Pids == nil || r.Pids.Limit == nil {
		return nil
	}
	v, ok := pidsMax(*r.Pids.Limit)
	if !ok {
		return nil
	}
	dir, err := m.ctrlDir("pids", "linux.resources.pids.limit")
	if err != nil {
		return err
	}
	return writeFile("linux.resources.pids.limit", dir, "pids.max", v)
}

func (m *v1Manager) setDevices(r *specs.LinuxResources) error {
	if len(r.Devices) == 0 {
		return nil
	}
	dir, err := m.ctrlDir("devices", "linux.resources.devices")
	if err != nil {
		return err
	}
	for i, d := range r.Devices {
		field := fmt.Sprintf("linux.resources.devices[%d]", i)
		rule, err := devicefilter.ParseRule(d)
		if err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		file := "devices.deny"
		if rule.Allow {
			file = "devices.allow"
		}
		if err := writeFile(field, dir, file, rule.V1String()); err != nil {
			return err
		}
	}
	return nil
}

func devNum(d specs.LinuxBlockIODevice) string {
	return fmt.Sprintf("%d:%d", d.Major, d.Minor)
}

func (m *v1Manager) setBlkio(r *specs.LinuxResources) error {
	b := r.BlockIO
	if b == nil {
		return nil
	}
	if (b.Weight == nil || *b.Weight == 0) && (b.LeafWeight == nil || *b.LeafWeight == 0) &&
		len(b.WeightDevice) == 0 && len(b.ThrottleReadBpsDevice) == 0 && len(b.ThrottleWriteBpsDevice) == 0 &&
		len(b.ThrottleReadIOPSDevice) == 0 && len(b.ThrottleWriteIOPSDevice) == 0 {
		return nil
	}
	dir, err := m.ctrlDir("blkio", "linux.resources.blockIO")
	if err != nil {
		return err
	}
	// CFQ (gone since kernel 5.0) has blkio.weight, BFQ blkio.bfq.weight.
	weightFile, weightDevFile := "blkio.weight", "blkio.weight_device"
	if !exists(dir, weightFile) && exists(dir, "blkio.bfq.weight") {
		weightFile, weightDevFile = "blkio.bfq.weight", "blkio.bfq.weight_device"
	}
	if b.Weight != nil && *b.Weight != 0 {
		if err := writeSupported("linux.resources.blockIO.weight", dir, weightFile, u64(uint64(*b.Weight))); err != nil {
			return err
		}
	}
	if b.LeafWeight != nil && *b.LeafWeight != 0 {
		if err := writeSupported("linux.resources.blockIO.leafWeight", dir, "blkio.leaf_weight", u64(uint64(*b.LeafWeight))); err != nil {
			return err
		}
	}
	for i, wd := range b.WeightDevice {
		if wd.Weight != nil {
			field := fmt.Sprintf("linux.resources.blockIO.weightDevice[%d].weight", i)
			if err := writeSupported(field, dir, weightDevFile, fmt.Sprintf("%s %d", devNum(wd.LinuxBlockIODevice), *wd.Weight)); err != nil {
				return err
			}
		}
		if wd.LeafWeight != nil {
			field := fmt.Sprintf("linux.resources.blockIO.weightDevice[%d].leafWeight", i)
			if err := writeSupported(field, dir, "blkio.leaf_weight_device", fmt.Sprintf("%s %d", devNum(wd.LinuxBlockIODevice), *wd.LeafWeight)); err != nil {
				return err
			}
		}
	}
	for _, t := range []struct {
		name string
		devs []specs.LinuxThrottleDevice
		file string
	}{
		{"throttleReadBpsDevice", b.ThrottleReadBpsDevice, "blkio.throttle.read_bps_device"},
		{"throttleWriteBpsDevice", b.ThrottleWriteBpsDevice, "blkio.throttle.write_bps_device"},
		{"throttleReadIOPSDevice", b.ThrottleReadIOPSDevice, "blkio.throttle.read_iops_device"},
		{"throttleWriteIOPSDevice", b.ThrottleWriteIOPSDevice, "blkio.throttle.write_iops_device"},
	} {
		for i, d := range t.devs {
			field := fmt.Sprintf("linux.resources.blockIO.%s[%d]", t.name, i)
			if err := writeSupported(field, dir, t.file, fmt.Sprintf("%s %d", devNum(d.LinuxBlockIODevice), d.Rate)); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *v1Manager) setHugetlb(r *specs.LinuxResources) error {
	if len(r.HugepageLimits) == 0 {
		return nil
	}
	dir, err := m.ctrlDir("hugetlb", "linux.resources.hugepageLimits")
	if err != nil {
		return err
	}
	for i, h := range r.HugepageLimits {
		field := fmt.Sprintf("linux.resources.hugepageLimits[%d]", i)
		file := "hugetlb." + h.Pagesize + ".limit_in_bytes"
		if !exists(dir, file) {
			return fmt.Errorf("%s: huge page size %q is not supported (%s does not exist)", field, h.Pagesize, filepath.Join(dir, file))
		}
		if err := writeFile(field, dir, file, u64(h.Limit)); err != nil {
			return err
		}
		if rsvd := "hugetlb." + h.Pagesize + ".rsvd.limit_in_bytes"; exists(dir, rsvd) {
			if err := writeFile(field, dir, rsvd, u64(h.Limit)); err != nil {
				return err
			}
		}
	}
	return nil
}

// setNetwork applies net_cls and net_prio settings when those controllers
// are mounted; they are silently ignored otherwise.
func (m *v1Manager) setNetwork(r *specs.LinuxResources) error {
	n := r.Network
	if n == nil {
		return nil
	}
	if dir, ok := m.paths["net_cls"]; ok && n.ClassID != nil {
		if err := writeFile("linux.resources.network.classID", dir, "net_cls.classid", u64(uint64(*n.ClassID))); err != nil {
			return err
		}
	}
	if dir, ok := m.paths["net_prio"]; ok {
		for i, p := range n.Priorities {
			field := fmt.Sprintf("linux.resources.network.priorities[%d]", i)
			if err := writeFile(field, dir, "net_prio.ifpriomap", fmt.Sprintf("%s %d", p.Name, p.Priority)); err != nil {
				return err
			}
		}
	}
	return nil
}

// rdmaValue formats one rdma.max line.
func rdmaValue(dev string, l specs.LinuxRdma) string {
	v := dev
	if l.HcaHandles != nil {
		v += " hca_handle=" + u64(uint64(*l.HcaHandles))
	}
	if l.HcaObjects != nil {
		v += " hca_object=" + u64(uint64(*l.HcaObjects))
	}
	return v
}

func (m *v1Manager) setRdma(r *specs.LinuxResources) error {
	if len(r.Rdma) == 0 {
		return nil
	}
	dir, err := m.ctrlDir("rdma", "linux.resources.rdma")
	if err != nil {
		return err
	}
	return writeRdma(dir, r.Rdma)
}

func writeRdma(dir string, rdma map[string]specs.LinuxRdma) error {
	for _, dev := range slices.Sorted(maps.Keys(rdma)) {
		field := fmt.Sprintf("linux.resources.rdma[%q]", dev)
		if err := writeFile(field, dir, "rdma.max", rdmaValue(dev, rdma[dev])); err != nil {
			return err
		}
	}
	return nil
}
