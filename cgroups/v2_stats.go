package cgroups

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Stats implements Manager.
func (m *v2Manager) Stats() (*Stats, error) {
	s := &Stats{Hugetlb: make(map[string]Hugetlb)}
	for _, f := range []func(*Stats) error{
		m.cpuStats, m.cpusetStats, m.memoryStats, m.pidsStats, m.ioStats, m.hugetlbStats,
	} {
		if err := f(s); err != nil {
			return nil, fmt.Errorf("cgroup stats: %w", err)
		}
	}
	return s, nil
}

func (m *v2Manager) cpuStats(s *Stats) error {
	kv, err := readKeyValues(m.dir, "cpu.stat")
	if err != nil {
		return err
	}
	s.CPU.Usage.Total = kv["usage_usec"] * 1000
	s.CPU.Usage.User = kv["user_usec"] * 1000
	s.CPU.Usage.Kernel = kv["system_usec"] * 1000
	s.CPU.Throttling = Throttling{
		Periods:          kv["nr_periods"],
		ThrottledPeriods: kv["nr_throttled"],
		ThrottledTime:    kv["throttled_usec"] * 1000,
	}
	return nil
}

func (m *v2Manager) cpusetStats(s *Stats) error {
	for _, l := range []struct {
		name string
		dst  *[]uint16
	}{{"cpuset.cpus.effective", &s.CPUSet.CPUs}, {"cpuset.mems.effective", &s.CPUSet.Mems}} {
		str, err := readFile(m.dir, l.name)
		if err != nil {
			if notExist(err) {
				continue
			}
			return err
		}
		if *l.dst, err = parseList(str); err != nil {
			return err
		}
	}
	return nil
}

// readOptionalUint reads a number from a file that may be absent.
func readOptionalUint(dir, name string) (uint64, error) {
	v, err := readUint(dir, name)
	if notExist(err) {
		return 0, nil
	}
	return v, err
}

func (m *v2Manager) memoryStats(s *Stats) error {
	if !exists(m.dir, "memory.stat") {
		return nil
	}
	raw, err := readKeyValues(m.dir, "memory.stat")
	if err != nil {
		return err
	}
	s.Memory.Raw = raw
	s.Memory.Cache = raw["file"]
	u := &s.Memory.Usage
	if u.Usage, err = readUint(m.dir, "memory.current"); err != nil {
		return err
	}
	if u.Limit, err = readUint(m.dir, "memory.max"); err != nil {
		return err
	}
	if u.Max, err = readOptionalUint(m.dir, "memory.peak"); err != nil {
		return err
	}
	if ev, err := readKeyValues(m.dir, "memory.events"); err == nil {
		u.Failcnt = ev["max"]
	}
	// Like cgroup v1's memsw counters, swap reports memory+swap.
	if exists(m.dir, "memory.swap.current") {
		sw := &s.Memory.Swap
		cur, err := readUint(m.dir, "memory.swap.current")
		if err != nil {
			return err
		}
		max, err := readUint(m.dir, "memory.swap.max")
		if err != nil {
			return err
		}
		sw.Usage = cur + u.Usage
		if max != 0 && u.Limit != 0 {
			sw.Limit = max + u.Limit
		}
		if peak, err := readOptionalUint(m.dir, "memory.swap.peak"); err == nil && peak != 0 {
			sw.Max = peak + u.Max
		}
		if ev, err := readKeyValues(m.dir, "memory.swap.events"); err == nil {
			sw.Failcnt = ev["max"]
		}
	}
	s.Memory.Kernel.Usage = raw["kernel"]
	s.Memory.KernelTCP.Usage = raw["sock"]
	return nil
}

func (m *v2Manager) pidsStats(s *Stats) error {
	if !exists(m.dir, "pids.current") {
		return nil
	}
	return readPidsStats(m.dir, s)
}

// ioStats turns io.stat lines ("8:0 rbytes=1 wbytes=2 rios=3 wios=4
// dbytes=0 dios=0") into blkio entries.
func (m *v2Manager) ioStats(s *Stats) error {
	path := filepath.Join(m.dir, "io.stat")
	f, err := os.Open(path)
	if err != nil {
		if notExist(err) {
			return nil
		}
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		maj, min, ok := parseDevNum(fields[0])
		if !ok {
			continue
		}
		for _, kv := range fields[1:] {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				continue
			}
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return fmt.Errorf("parse %s: %w", path, err)
			}
			e := BlkioEntry{Major: maj, Minor: min, Value: n}
			switch k {
			case "rbytes":
				e.Op = "Read"
				s.Blkio.IoServiceBytesRecursive = append(s.Blkio.IoServiceBytesRecursive, e)
			case "wbytes":
				e.Op = "Write"
				s.Blkio.IoServiceBytesRecursive = append(s.Blkio.IoServiceBytesRecursive, e)
			case "rios":
				e.Op = "Read"
				s.Blkio.IoServicedRecursive = append(s.Blkio.IoServicedRecursive, e)
			case "wios":
				e.Op = "Write"
				s.Blkio.IoServicedRecursive = append(s.Blkio.IoServicedRecursive, e)
			}
		}
	}
	return sc.Err()
}

func (m *v2Manager) hugetlbStats(s *Stats) error {
	for _, size := range hugePageSizes() {
		prefix := "hugetlb." + size + "."
		if !exists(m.dir, prefix+"current") {
			continue
		}
		var h Hugetlb
		var err error
		if h.Usage, err = readUint(m.dir, prefix+"current"); err != nil {
			return err
		}
		if ev, err := readKeyValues(m.dir, prefix+"events"); err == nil {
			h.Failcnt = ev["max"]
		}
		s.Hugetlb[size] = h
	}
	return nil
}
