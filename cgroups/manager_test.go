package cgroups

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func ptr[T any](v T) *T { return &v }

// testApplySet places a helper in a new cgroup, sets limits and reads
// them back from the cgroup files.
func testApplySet(t *testing.T) {
	m := newTestManager(t)
	h := startHelper(t, "sleep")
	if err := m.Apply(h.pid()); err != nil {
		t.Fatal(err)
	}
	for ctrl, dir := range m.Paths() {
		pids, err := readPids(dir)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(pids, h.pid()) {
			t.Errorf("pid %d not in %s cgroup %s: %v", h.pid(), ctrl, dir, pids)
		}
	}
	v2 := DetectMode() == Unified
	r := &specs.LinuxResources{
		Memory: &specs.LinuxMemory{
			Limit:       ptr(int64(64 << 20)),
			Swap:        ptr(int64(128 << 20)),
			Reservation: ptr(int64(32 << 20)),
			Swappiness:  ptr(uint64(10)),
		},
		CPU: &specs.LinuxCPU{
			Shares: ptr(uint64(512)),
			Quota:  ptr(int64(50000)),
			Period: ptr(uint64(100000)),
			Cpus:   "0",
			Mems:   "0",
		},
		Pids:    &specs.LinuxPids{Limit: ptr(int64(50))},
		BlockIO: &specs.LinuxBlockIO{Weight: ptr(uint16(200))},
	}
	if !v2 {
		r.Memory.KernelTCP = ptr(int64(16 << 20))
	}
	if err := m.Set(r); err != nil {
		t.Fatal(err)
	}
	expectFile(t, m, "cpuset", "cpuset.cpus", "0")
	expectFile(t, m, "cpuset", "cpuset.mems", "0")
	expectFile(t, m, "pids", "pids.max", "50")
	if v2 {
		expectFile(t, m, "", "memory.max", strconv.Itoa(64<<20))
		expectFile(t, m, "", "memory.swap.max", strconv.Itoa(64<<20))
		expectFile(t, m, "", "memory.low", strconv.Itoa(32<<20))
		expectFile(t, m, "", "cpu.weight", "20")
		expectFile(t, m, "", "cpu.max", "50000 100000")
		if exists(dirOf(t, m, ""), "io.bfq.weight") {
			expectFile(t, m, "", "io.bfq.weight", "default 200")
		} else {
			expectFile(t, m, "", "io.weight", "default 1920")
		}
	} else {
		expectFile(t, m, "memory", "memory.limit_in_bytes", strconv.Itoa(64<<20))
		expectFile(t, m, "memory", "memory.memsw.limit_in_bytes", strconv.Itoa(128<<20))
		expectFile(t, m, "memory", "memory.soft_limit_in_bytes", strconv.Itoa(32<<20))
		expectFile(t, m, "memory", "memory.swappiness", "10")
		expectFile(t, m, "memory", "memory.kmem.tcp.limit_in_bytes", strconv.Itoa(16<<20))
		expectFile(t, m, "cpu", "cpu.shares", "512")
		expectFile(t, m, "cpu", "cpu.cfs_quota_us", "50000")
		expectFile(t, m, "cpu", "cpu.cfs_period_us", "100000")
		dir := dirOf(t, m, "blkio")
		if exists(dir, "blkio.weight") {
			expectFile(t, m, "blkio", "blkio.weight", "200")
		} else {
			expectFile(t, m, "blkio", "blkio.bfq.weight", "200")
		}
	}

	// Lower both memory limits (the other write order), then make them
	// unlimited.
	if err := m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(48 << 20)), Swap: ptr(int64(96 << 20))}}); err != nil {
		t.Fatal(err)
	}
	if v2 {
		expectFile(t, m, "", "memory.max", strconv.Itoa(48<<20))
		expectFile(t, m, "", "memory.swap.max", strconv.Itoa(48<<20))
	} else {
		expectFile(t, m, "memory", "memory.limit_in_bytes", strconv.Itoa(48<<20))
		expectFile(t, m, "memory", "memory.memsw.limit_in_bytes", strconv.Itoa(96<<20))
	}
	if err := m.Set(&specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: ptr(int64(-1)), Swap: ptr(int64(-1))},
		CPU:    &specs.LinuxCPU{Quota: ptr(int64(-1)), Period: ptr(uint64(100000))},
		Pids:   &specs.LinuxPids{Limit: ptr(int64(-1))},
	}); err != nil {
		t.Fatal(err)
	}
	expectFile(t, m, "pids", "pids.max", "max")
	if v2 {
		expectFile(t, m, "", "memory.max", "max")
		expectFile(t, m, "", "cpu.max", "max 100000")
	} else {
		expectFile(t, m, "cpu", "cpu.cfs_quota_us", "-1")
	}
	if v2 {
		if err := m.Set(&specs.LinuxResources{Unified: map[string]string{"pids.max": "7", "memory.high": "50000000"}}); err != nil {
			t.Fatal(err)
		}
		expectFile(t, m, "", "pids.max", "7")
		expectFile(t, m, "", "memory.high", "49999872") // rounded down to pages
		if err := m.Set(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(-1))}}); err != nil {
			t.Fatal(err)
		}
	}
	// A zero pids limit leaves the limit alone.
	if err := m.Set(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(0))}}); err != nil {
		t.Fatal(err)
	}
	expectFile(t, m, "pids", "pids.max", "max")
}

// testSetErrors checks that invalid values fail with errors naming the
// field and carrying the kernel's errno.
func testSetErrors(t *testing.T) {
	m := newTestManager(t)
	if err := m.Apply(0); err != nil {
		t.Fatal(err)
	}
	v2 := DetectMode() == Unified
	cases := []struct {
		name  string
		r     specs.LinuxResources
		field string
		errno error
	}{
		{"cpus", specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "4096"}}, "linux.resources.cpu.cpus: write 4096 to ", nil},
		{"quota", specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: ptr(int64(10)), Period: ptr(uint64(100000))}}, "linux.resources.cpu.quota", unix.EINVAL},
		{"swappiness", specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: ptr(uint64(200))}}, "linux.resources.memory.swappiness", nil},
		{"swap below limit", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(64 << 20)), Swap: ptr(int64(32 << 20))}}, "linux.resources.memory", nil},
		{"device type", specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "x"}}}, "linux.resources.devices[0]", nil},
		{"device access", specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "c", Access: "rwx"}}}, "linux.resources.devices[0]", nil},
		{"hugetlb size", specs.LinuxResources{HugepageLimits: []specs.LinuxHugepageLimit{{Pagesize: "3MB", Limit: 1}}}, "linux.resources.hugepageLimits", nil},
	}
	if v2 {
		cases = append(cases,
			struct {
				name  string
				r     specs.LinuxResources
				field string
				errno error
			}{"unified key", specs.LinuxResources{Unified: map[string]string{"../x": "1"}}, "linux.resources.unified", nil},
			struct {
				name  string
				r     specs.LinuxResources
				field string
				errno error
			}{"unified value", specs.LinuxResources{Unified: map[string]string{"pids.max": "lots"}}, `linux.resources.unified["pids.max"]`, unix.EINVAL},
		)
	} else {
		cases = append(cases,
			struct {
				name  string
				r     specs.LinuxResources
				field string
				errno error
			}{"unified", specs.LinuxResources{Unified: map[string]string{"pids.max": "1"}}, "linux.resources.unified requires cgroup v2", nil},
			struct {
				name  string
				r     specs.LinuxResources
				field string
				errno error
			}{"shares", specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: ptr(uint64(1))}}, "linux.resources.cpu.shares", nil},
			struct {
				name  string
				r     specs.LinuxResources
				field string
				errno error
			}{"memory limit", specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(-5))}}, "linux.resources.memory.limit: write -5 to ", unix.EINVAL},
		)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := m.Set(&c.r)
			if err == nil {
				t.Fatal("Set succeeded")
			}
			t.Log(err)
			if !strings.Contains(err.Error(), c.field) {
				t.Errorf("error %q does not name %q", err, c.field)
			}
			if c.errno != nil && !errors.Is(err, c.errno) {
				t.Errorf("error %q is not %v", err, c.errno)
			}
		})
	}
}

// testDevices denies every device but /dev/null and checks from a process
// in the cgroup that /dev/zero cannot be opened.
func testDevices(t *testing.T) {
	m := newTestManager(t)
	h := startHelper(t, "devices")
	if err := m.Apply(h.pid()); err != nil {
		t.Fatal(err)
	}
	rules := []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(5)), Access: "rwm"}, // /dev/zero ...
		{Allow: false, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(5)), Access: "r"},  // ... but not for reading
		{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rw"},  // /dev/null
	}
	// Set twice: on v2 the second program must replace the first.
	for range 2 {
		if err := m.Set(&specs.LinuxResources{Devices: rules}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.stdin.WriteString("go\n"); err != nil {
		t.Fatal(err)
	}
	switch code := h.wait(t); code {
	case exitDevicesOK:
	case exitNullFailed:
		t.Error("opening /dev/null failed in the cgroup")
	case exitZeroOpened:
		t.Error("opening /dev/zero for reading succeeded in the cgroup")
	default:
		t.Errorf("helper exited with %d", code)
	}
}

// testFreezeThaw freezes a spinning process and checks that it does not
// run while frozen.
func testFreezeThaw(t *testing.T) {
	m := newTestManager(t)
	h := startHelper(t, "spin")
	if err := m.Apply(h.pid()); err != nil {
		t.Fatal(err)
	}
	if err := m.Freeze(); err != nil {
		t.Fatal(err)
	}
	if frozen, err := m.Frozen(); err != nil || !frozen {
		t.Fatalf("Frozen() = %v, %v after Freeze", frozen, err)
	}
	if DetectMode() == Unified {
		expectFile(t, m, "", "cgroup.freeze", "1")
	} else {
		expectFile(t, m, "freezer", "freezer.state", "FROZEN")
	}
	before := cpuTicks(t, h.pid())
	time.Sleep(300 * time.Millisecond)
	if after := cpuTicks(t, h.pid()); after != before {
		t.Errorf("frozen process ran: cpu ticks %d -> %d", before, after)
	}
	if err := m.Thaw(); err != nil {
		t.Fatal(err)
	}
	if frozen, err := m.Frozen(); err != nil || frozen {
		t.Fatalf("Frozen() = %v, %v after Thaw", frozen, err)
	}
	before = cpuTicks(t, h.pid())
	time.Sleep(300 * time.Millisecond)
	if after := cpuTicks(t, h.pid()); after == before {
		t.Errorf("thawed process did not run: cpu ticks stay %d", before)
	}
}

// testPidsStatsDestroy checks Pids (also in a child cgroup), Stats and
// Destroy, through a manager re-opened with Load.
func testPidsStatsDestroy(t *testing.T) {
	m := newTestManager(t)
	h1 := startHelper(t, "sleep")
	h2 := startHelper(t, "sleep")
	if err := m.Apply(h1.pid()); err != nil {
		t.Fatal(err)
	}
	// Put the second helper in a child cgroup of the pids hierarchy.
	child := filepath.Join(dirOf(t, m, "pids"), "child")
	if err := os.Mkdir(child, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := writeFile("", child, "cgroup.procs", strconv.Itoa(h2.pid())); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(100))}}); err != nil {
		t.Fatal(err)
	}

	lm, err := Load(m.Paths())
	if err != nil {
		t.Fatal(err)
	}
	pids, err := lm.Pids()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(pids)
	want := []int{h1.pid(), h2.pid()}
	slices.Sort(want)
	if !slices.Equal(pids, want) {
		t.Errorf("Pids() = %v, want %v", pids, want)
	}

	time.Sleep(100 * time.Millisecond) // let the helper touch memory
	st, err := lm.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Memory.Usage.Usage == 0 {
		t.Error("memory usage is 0")
	}
	if st.Pids.Current < 2 || st.Pids.Limit != 100 {
		t.Errorf("pids stats = %+v, want current >= 2 and limit 100", st.Pids)
	}
	if st.CPU.Usage.Total == 0 {
		t.Error("cpu usage is 0")
	}
	if len(st.CPUSet.CPUs) == 0 {
		t.Error("no cpus in cpuset stats")
	}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"cpu":{"usage":{"total":`, `"memory":{`, `"pids":{"current":`, `"hugetlb":{`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("stats JSON lacks %s: %s", key, b)
		}
	}

	// Destroy refuses nothing but busy cgroups: kill the processes first,
	// like the runtime does.
	for _, h := range []*helper{h1, h2} {
		_ = h.cmd.Process.Kill()
		h.wait(t)
	}
	if err := lm.Destroy(); err != nil {
		t.Fatal(err)
	}
	for k, p := range m.Paths() {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s cgroup %s still exists after Destroy (%v)", k, p, err)
		}
	}
	if err := lm.Destroy(); err != nil {
		t.Errorf("second Destroy: %v", err)
	}
}
