package runtime_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func cgroupFile(t *testing.T, pid int, controller, file string) string {
	t.Helper()
	return strings.TrimSpace(readFile(t, filepath.Join(hostCgroupDir(t, pid, controller), file)))
}

// TestCgroupLimits: limits from config.json and from update land in the
// container's cgroup files; pause, resume, ps and events work on it.
func TestCgroupLimits(t *testing.T) {
	r := newRT(t)
	s := newSpec(t)
	mem := int64(100 << 20)
	pids := int64(64)
	s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &mem}
	s.Linux.Resources.Pids = &specs.LinuxPids{Limit: &pids}
	id, st, _ := r.start(s)
	pid := st.Pid
	if !strings.HasSuffix(hostCgroupDir(t, pid, "memory"), "/"+id) {
		t.Errorf("memory cgroup %s is not named after the container", hostCgroupDir(t, pid, "memory"))
	}
	if got := cgroupFile(t, pid, "memory", "memory.limit_in_bytes"); got != "104857600" {
		t.Errorf("memory.limit_in_bytes = %s, want 104857600", got)
	}
	if got := cgroupFile(t, pid, "pids", "pids.max"); got != "64" {
		t.Errorf("pids.max = %s, want 64", got)
	}

	r.ok("update", "--memory", "64m", "--pids-limit", "50", id)
	if got := cgroupFile(t, pid, "memory", "memory.limit_in_bytes"); got != "67108864" {
		t.Errorf("after update: memory.limit_in_bytes = %s, want 67108864", got)
	}
	if got := cgroupFile(t, pid, "pids", "pids.max"); got != "50" {
		t.Errorf("after update: pids.max = %s, want 50", got)
	}

	r.ok("pause", id)
	if got := r.state(id).Status; got != "paused" {
		t.Errorf("status after pause = %q, want paused", got)
	}
	if got := cgroupFile(t, pid, "freezer", "freezer.state"); got != "FROZEN" {
		t.Errorf("freezer.state after pause = %s", got)
	}
	if got := procStatus(t, pid, "State"); !strings.HasPrefix(got, "D") && !strings.HasPrefix(got, "S") {
		t.Logf("frozen init state %q", got)
	}
	oneLine(t, r.fails("pause", id), id)
	r.ok("resume", id)
	if got := r.state(id).Status; got != "running" {
		t.Errorf("status after resume = %q, want running", got)
	}
	if got := cgroupFile(t, pid, "freezer", "freezer.state"); got != "THAWED" {
		t.Errorf("freezer.state after resume = %s", got)
	}
	oneLine(t, r.fails("resume", id), id)

	// ps: the init, and an exec'd process while it runs.
	r.ok("exec", "-d", id, "sleep", "100")
	var listed []int
	if err := json.Unmarshal([]byte(r.ok("ps", "-f", "json", id).stdout), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 2 || !slices.Contains(listed, pid) {
		t.Errorf("ps -f json = %v, want init %d and the exec'd sleep", listed, pid)
	}
	table := r.ok("ps", id).stdout
	if !strings.Contains(table, "PID") || !strings.Contains(table, "sleep 3600") || !strings.Contains(table, "sleep 100") {
		t.Errorf("ps table lacks the container's processes:\n%s", table)
	}

	res := r.ok("events", "--stats", id)
	var ev struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Data struct {
			Memory struct {
				Usage struct {
					Usage uint64 `json:"usage"`
					Limit uint64 `json:"limit"`
				} `json:"usage"`
			} `json:"memory"`
			Pids struct {
				Current uint64 `json:"current"`
				Limit   uint64 `json:"limit"`
			} `json:"pids"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &ev); err != nil {
		t.Fatalf("events --stats: %v\n%s", err, res)
	}
	if ev.Type != "stats" || ev.ID != id || ev.Data.Memory.Usage.Usage == 0 || ev.Data.Pids.Current != 2 || ev.Data.Pids.Limit != 50 {
		t.Errorf("events --stats = %+v, want type stats, id %s, memory usage > 0, 2 pids of 50", ev, id)
	}
	if ev.Data.Memory.Usage.Limit != 64<<20 {
		t.Errorf("events memory limit %d, want %d", ev.Data.Memory.Usage.Limit, 64<<20)
	}

	cg := hostCgroupDir(t, pid, "memory")
	r.ok("delete", "-f", id)
	if _, err := os.Stat(cg); !os.IsNotExist(err) {
		t.Errorf("cgroup %s after delete: %v", cg, err)
	}
	r.nothingLeft(id, "")
}

// TestRlimitAboveHard: a hard limit above the runtime's own cannot be set
// without CAP_SYS_RESOURCE (this machine's bounding set lacks it).
func TestRlimitAboveHard(t *testing.T) {
	if hasCapSysResource(t) {
		t.Skip("CAP_SYS_RESOURCE present: a high hard limit is allowed")
	}
	r := newRT(t)
	s := newSpec(t)
	s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 1024, Hard: 1 << 30}}
	bundle := writeBundle(t, s)
	id := r.newID()
	oneLine(t, r.fails("create", "--bundle", bundle, id), "process.rlimits[0]", "RLIMIT_NOFILE")
	r.nothingLeft(id, bundle)
	oneLine(t, r.fails("run", "--bundle", bundle, id), "process.rlimits[0]")
	r.nothingLeft(id, bundle)
}

// TestNegativeOOMScoreAdj: lowering oom_score_adj needs CAP_SYS_RESOURCE.
func TestNegativeOOMScoreAdj(t *testing.T) {
	if hasCapSysResource(t) {
		t.Skip("CAP_SYS_RESOURCE present: a negative oomScoreAdj is allowed")
	}
	r := newRT(t)
	s := newSpec(t)
	s.Process.OOMScoreAdj = intPtr(-500)
	bundle := writeBundle(t, s)
	id := r.newID()
	oneLine(t, r.fails("create", "--bundle", bundle, id), "process.oomScoreAdj", "CAP_SYS_RESOURCE")
	r.nothingLeft(id, bundle)
}

func hasCapSysResource(t *testing.T) bool {
	const capSysResource = 24
	mask := procStatus(t, os.Getpid(), "CapEff")
	var v uint64
	for _, c := range mask {
		v = v<<4 | uint64(strings.IndexRune("0123456789abcdef", c))
	}
	return v&(1<<capSysResource) != 0
}
