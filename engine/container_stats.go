package engine

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/cgroups"
	"github.com/berth-project/berth/containers"
)

// runningCgroup returns the cgroup of the running container c and the
// pid of its init, from the runtime's state (the directories the runtime
// saved when it made the cgroup, v1 or v2).
func (s *Store) runningCgroup(c *containers.Container) (cgroups.Manager, int, error) {
	if c.State.Status != containers.Running && c.State.Status != containers.Paused {
		return nil, 0, fmt.Errorf("container %s is not running: %w", c.Name, ErrConflict)
	}
	rc := s.runtime().load(c.ID)
	if rc == nil {
		return nil, 0, fmt.Errorf("container %s is not running: %w", c.Name, ErrConflict)
	}
	cg, err := cgroups.Load(rc.State.CgroupPaths)
	if err != nil {
		return nil, 0, fmt.Errorf("container %s: %w", c.Name, err)
	}
	return cg, rc.State.Pid, nil
}

// ContainerPids returns the pids of every process of the running
// container ref (those in its cgroup), for top.
func (s *Store) ContainerPids(ctx context.Context, ref string) (*containers.Container, []int, error) {
	c, err := s.Container(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	cg, _, err := s.runningCgroup(c)
	if err != nil {
		return c, nil, err
	}
	pids, err := cg.Pids()
	if err != nil {
		return c, nil, fmt.Errorf("container %s: list processes: %w", c.Name, err)
	}
	return c, pids, nil
}

// StatsSample is one reading of a container's usage, docker's stats
// columns before they are formatted. A container that is not running
// reads as zeros.
type StatsSample struct {
	ID, Name string
	Running  bool
	Read     time.Time
	// CPUTotal is the CPU time of the container's cgroup, and SystemCPU
	// the host's (all CPUs, from /proc/stat), in nanoseconds.
	CPUTotal, SystemCPU uint64
	OnlineCPUs          int
	// MemUsage is the cgroup's memory less its inactive file cache, as
	// docker reports it; MemLimit the cgroup's limit, or the host's
	// memory when unlimited.
	MemUsage, MemLimit    uint64
	NetRx, NetTx          uint64
	BlockRead, BlockWrite uint64
	Pids                  uint64
}

// CPUPercent is docker's CPU %: the container's share of the host's CPU
// time between prev and cur, times the online CPUs (so 200% is two CPUs
// busy).
func CPUPercent(prev, cur StatsSample) float64 {
	if cur.CPUTotal < prev.CPUTotal || cur.SystemCPU <= prev.SystemCPU {
		return 0
	}
	cpu := float64(cur.CPUTotal - prev.CPUTotal)
	sys := float64(cur.SystemCPU - prev.SystemCPU)
	return cpu / sys * float64(cur.OnlineCPUs) * 100
}

// MemPercent is docker's MEM %.
func (x StatsSample) MemPercent() float64 {
	if x.MemLimit == 0 {
		return 0
	}
	return float64(x.MemUsage) / float64(x.MemLimit) * 100
}

// ContainerStats reads the usage of the container c from its cgroup and,
// for NET I/O, the network namespace of its init.
func (s *Store) ContainerStats(ctx context.Context, c *containers.Container) (StatsSample, error) {
	x := StatsSample{ID: c.ID, Name: c.Name, Read: time.Now()}
	if c.State.Status != containers.Running && c.State.Status != containers.Paused {
		return x, nil
	}
	cg, pid, err := s.runningCgroup(c)
	if err != nil {
		return x, err
	}
	st, err := cg.Stats()
	if err != nil {
		return x, fmt.Errorf("container %s: stats: %w", c.Name, err)
	}
	x.Running = true
	x.Read = time.Now()
	x.CPUTotal = st.CPU.Usage.Total
	if x.SystemCPU, err = systemCPU(); err != nil {
		return x, err
	}
	x.OnlineCPUs = onlineCPUs()
	x.MemUsage, x.MemLimit = memUsage(st), st.Memory.Usage.Limit
	if host := hostMemory(); x.MemLimit == 0 || (host > 0 && x.MemLimit > host) {
		x.MemLimit = host
	}
	for _, e := range st.Blkio.IoServiceBytesRecursive {
		switch strings.ToLower(e.Op) {
		case "read":
			x.BlockRead += e.Value
		case "write":
			x.BlockWrite += e.Value
		}
	}
	x.Pids = st.Pids.Current
	x.NetRx, x.NetTx = netIO(pid)
	return x, nil
}

// memUsage is docker's memory usage: usage less the inactive file cache
// (total_inactive_file on cgroup v1, inactive_file on v2), which the
// kernel reclaims first.
func memUsage(st *cgroups.Stats) uint64 {
	u := st.Memory.Usage.Usage
	inactive, ok := st.Memory.Raw["total_inactive_file"]
	if !ok {
		inactive = st.Memory.Raw["inactive_file"]
	}
	if inactive < u {
		return u - inactive
	}
	return u
}

// clockTicks is USER_HZ, the unit of /proc/stat: 100 on every Linux
// architecture berth runs on.
const clockTicks = 100

// systemCPU is the host's CPU time from the first line of /proc/stat, in
// nanoseconds, as docker computes it.
func systemCPU() (uint64, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(data, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 8 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	var ticks uint64
	for _, v := range f[1:8] { // user nice system idle iowait irq softirq
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		ticks += n
	}
	return ticks * uint64(time.Second) / clockTicks, nil
}

// onlineCPUs counts the CPUs this process may run on.
func onlineCPUs() int {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err == nil && set.Count() > 0 {
		return set.Count()
	}
	return 1
}

// hostMemory is MemTotal of /proc/meminfo in bytes (0 if unknown).
func hostMemory() uint64 {
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil {
		return 0
	}
	return uint64(si.Totalram) * uint64(si.Unit)
}

// netIO sums the bytes received and sent on the interfaces (not lo) of
// pid's network namespace, when it is not the host's: 0, 0 otherwise.
func netIO(pid int) (rx, tx uint64) {
	if pid <= 0 {
		return 0, 0
	}
	own, err1 := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	host, err2 := os.Readlink("/proc/self/ns/net")
	if err1 != nil || err2 != nil || own == host {
		return 0, 0
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/dev", pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || strings.TrimSpace(name) == "lo" {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) < 9 {
			continue
		}
		r, _ := strconv.ParseUint(fields[0], 10, 64)
		t, _ := strconv.ParseUint(fields[8], 10, 64)
		rx += r
		tx += t
	}
	return rx, tx
}
