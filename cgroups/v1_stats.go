package cgroups

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// userHz is the unit of cpuacct.stat (USER_HZ is 100 on every Linux ABI).
const userHz = 100

// Stats implements Manager.
func (m *v1Manager) Stats() (*Stats, error) {
	s := &Stats{Hugetlb: make(map[string]Hugetlb)}
	for _, f := range []func(*Stats) error{
		m.cpuStats, m.cpusetStats, m.memoryStats, m.pidsStats, m.blkioStats, m.hugetlbStats,
	} {
		if err := f(s); err != nil {
			return nil, fmt.Errorf("cgroup stats: %w", err)
		}
	}
	return s, nil
}

// notExist reports errors of files the kernel does not provide.
func notExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

func (m *v1Manager) cpuStats(s *Stats) error {
	if dir, ok := m.paths["cpuacct"]; ok {
		u := &s.CPU.Usage
		var err error
		if u.Total, err = readUint(dir, "cpuacct.usage"); err != nil {
			return err
		}
		for _, f := range []struct {
			name string
			dst  *[]uint64
		}{
			{"cpuacct.usage_percpu", &u.Percpu},
			{"cpuacct.usage_percpu_sys", &u.PercpuKernel},
			{"cpuacct.usage_percpu_user", &u.PercpuUser},
		} {
			v, err := readUintList(dir, f.name)
			if err != nil && !notExist(err) {
				return err
			}
			*f.dst = v
		}
		kv, err := readKeyValues(dir, "cpuacct.stat")
		if err != nil {
			return err
		}
		u.User = kv["user"] * (1e9 / userHz)
		u.Kernel = kv["system"] * (1e9 / userHz)
	}
	if dir, ok := m.paths["cpu"]; ok {
		kv, err := readKeyValues(dir, "cpu.stat")
		if err != nil {
			return err
		}
		s.CPU.Throttling = Throttling{
			Periods:          kv["nr_periods"],
			ThrottledPeriods: kv["nr_throttled"],
			ThrottledTime:    kv["throttled_time"],
		}
	}
	return nil
}

func readUintList(dir, name string) ([]uint64, error) {
	str, err := readFile(dir, name)
	if err != nil {
		return nil, err
	}
	var out []uint64
	for _, f := range strings.Fields(str) {
		v, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", filepath.Join(dir, name), err)
		}
		out = append(out, v)
	}
	return out, nil
}

func (m *v1Manager) cpusetStats(s *Stats) error {
	dir, ok := m.paths["cpuset"]
	if !ok {
		return nil
	}
	c := &s.CPUSet
	var err error
	for _, l := range []struct {
		name string
		dst  *[]uint16
	}{{"cpuset.cpus", &c.CPUs}, {"cpuset.mems", &c.Mems}} {
		str, err := readFile(dir, l.name)
		if err != nil {
			return err
		}
		if *l.dst, err = parseList(str); err != nil {
			return err
		}
	}
	for _, f := range []struct {
		name string
		dst  *uint64
	}{
		{"cpuset.cpu_exclusive", &c.CPUExclusive},
		{"cpuset.mem_hardwall", &c.MemHardwall},
		{"cpuset.mem_exclusive", &c.MemExclusive},
		{"cpuset.memory_migrate", &c.MemoryMigrate},
		{"cpuset.memory_spread_page", &c.MemorySpreadPage},
		{"cpuset.memory_spread_slab", &c.MemorySpreadSlab},
		{"cpuset.memory_pressure", &c.MemoryPressure},
		{"cpuset.sched_load_balance", &c.SchedLoadBalance},
	} {
		if *f.dst, err = readUint(dir, f.name); err != nil && !notExist(err) {
			return err
		}
	}
	if v, err := readFile(dir, "cpuset.sched_relax_domain_level"); err == nil {
		c.SchedRelaxDomainLevel, _ = strconv.ParseInt(v, 10, 64)
	}
	return nil
}

// memoryEntry reads the usage, max usage, failcnt and limit files of one
// v1 memory counter (prefix "memory", "memory.memsw", "memory.kmem",
// "memory.kmem.tcp").
func memoryEntry(dir, prefix string) (MemoryEntry, error) {
	var e MemoryEntry
	for _, f := range []struct {
		name string
		dst  *uint64
	}{
		{prefix + ".usage_in_bytes", &e.Usage},
		{prefix + ".max_usage_in_bytes", &e.Max},
		{prefix + ".failcnt", &e.Failcnt},
		{prefix + ".limit_in_bytes", &e.Limit},
	} {
		v, err := readUint(dir, f.name)
		if err != nil {
			if notExist(err) {
				return MemoryEntry{}, nil
			}
			return MemoryEntry{}, err
		}
		*f.dst = v
	}
	return e, nil
}

func (m *v1Manager) memoryStats(s *Stats) error {
	dir, ok := m.paths["memory"]
	if !ok {
		return nil
	}
	raw, err := readKeyValues(dir, "memory.stat")
	if err != nil {
		return err
	}
	s.Memory.Raw = raw
	s.Memory.Cache = raw["cache"]
	for _, e := range []struct {
		prefix string
		dst    *MemoryEntry
	}{
		{"memory", &s.Memory.Usage},
		{"memory.memsw", &s.Memory.Swap},
		{"memory.kmem", &s.Memory.Kernel},
		{"memory.kmem.tcp", &s.Memory.KernelTCP},
	} {
		if *e.dst, err = memoryEntry(dir, e.prefix); err != nil {
			return err
		}
	}
	return nil
}

func (m *v1Manager) pidsStats(s *Stats) error {
	dir, ok := m.paths["pids"]
	if !ok {
		return nil
	}
	return readPidsStats(dir, s)
}

func readPidsStats(dir string, s *Stats) error {
	var err error
	if s.Pids.Current, err = readUint(dir, "pids.current"); err != nil {
		return err
	}
	if s.Pids.Limit, err = readUint(dir, "pids.max"); err != nil {
		return err
	}
	return nil
}

func (m *v1Manager) blkioStats(s *Stats) error {
	dir, ok := m.paths["blkio"]
	if !ok {
		return nil
	}
	// Prefer the CFQ, then the BFQ, then the throttling counters, whichever
	// the kernel has.
	for _, prefix := range []string{"blkio.", "blkio.bfq.", "blkio.throttle."} {
		if !exists(dir, prefix+"io_service_bytes_recursive") {
			continue
		}
		var err error
		if s.Blkio.IoServiceBytesRecursive, err = readBlkio(dir, prefix+"io_service_bytes_recursive"); err != nil {
			return err
		}
		if s.Blkio.IoServicedRecursive, err = readBlkio(dir, prefix+"io_serviced_recursive"); err != nil {
			return err
		}
		if prefix == "blkio." {
			for _, f := range []struct {
				name string
				dst  *[]BlkioEntry
			}{
				{"blkio.io_queued_recursive", &s.Blkio.IoQueuedRecursive},
				{"blkio.io_service_time_recursive", &s.Blkio.IoServiceTimeRecursive},
				{"blkio.io_wait_time_recursive", &s.Blkio.IoWaitTimeRecursive},
				{"blkio.io_merged_recursive", &s.Blkio.IoMergedRecursive},
				{"blkio.time_recursive", &s.Blkio.IoTimeRecursive},
				{"blkio.sectors_recursive", &s.Blkio.SectorsRecursive},
			} {
				if *f.dst, err = readBlkio(dir, f.name); err != nil && !notExist(err) {
					return err
				}
			}
		}
		return nil
	}
	return nil
}

// readBlkio parses "major:minor [op] value" lines, skipping the "Total"
// line.
func readBlkio(dir, name string) ([]BlkioEntry, error) {
	path := filepath.Join(dir, name)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []BlkioEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		maj, min, ok := parseDevNum(fields[0])
		if !ok {
			continue // "Total N"
		}
		e := BlkioEntry{Major: maj, Minor: min}
		valStr := fields[1]
		if len(fields) == 3 {
			e.Op = fields[1]
			valStr = fields[2]
		}
		if e.Value, err = strconv.ParseUint(valStr, 10, 64); err != nil {
			return nil, fmt.Errorf("parse %s: %w", path, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}

func parseDevNum(s string) (uint64, uint64, bool) {
	a, b, ok := strings.Cut(s, ":")
	if !ok {
		return 0, 0, false
	}
	maj, err1 := strconv.ParseUint(a, 10, 64)
	min, err2 := strconv.ParseUint(b, 10, 64)
	return maj, min, err1 == nil && err2 == nil
}

// hugePageSizes lists the huge page sizes of the host in cgroup notation
// ("2MB", "1GB").
func hugePageSizes() []string {
	entries, err := os.ReadDir("/sys/kernel/mm/hugepages")
	if err != nil {
		return nil
	}
	var sizes []string
	for _, e := range entries {
		kb, ok := strings.CutPrefix(e.Name(), "hugepages-")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(strings.TrimSuffix(kb, "kB"), 10, 64)
		if err != nil {
			continue
		}
		sizes = append(sizes, pageSizeString(n*1024))
	}
	return sizes
}

func pageSizeString(bytes uint64) string {
	units := []string{"B", "KB", "MB", "GB", "TB", "PB"}
	i := 0
	for bytes >= 1024 && bytes%1024 == 0 && i < len(units)-1 {
		bytes /= 1024
		i++
	}
	return strconv.FormatUint(bytes, 10) + units[i]
}

func (m *v1Manager) hugetlbStats(s *Stats) error {
	dir, ok := m.paths["hugetlb"]
	if !ok {
		return nil
	}
	for _, size := range hugePageSizes() {
		var h Hugetlb
		var err error
		prefix := "hugetlb." + size + "."
		if h.Usage, err = readUint(dir, prefix+"usage_in_bytes"); err != nil {
			if notExist(err) {
				continue
			}
			return err
		}
		if h.Max, err = readUint(dir, prefix+"max_usage_in_bytes"); err != nil {
			return err
		}
		if h.Failcnt, err = readUint(dir, prefix+"failcnt"); err != nil {
			return err
		}
		s.Hugetlb[size] = h
	}
	return nil
}
