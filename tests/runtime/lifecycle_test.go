package runtime_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestLifecycle walks one container through create, start, kill and
// delete, checking state, list and the refusals on the way.
func TestLifecycle(t *testing.T) {
	r := newRT(t)
	s := newSpec(t)
	// A pid namespace's init ignores signals it has no handler for: trap
	// TERM so `kill` stops it.
	s.Process.Args = []string{"sh", "-c", "trap 'exit 7' TERM; while :; do sleep 0.05; done"}
	id, bundle, _ := r.create(s)

	st := r.state(id)
	if st.Status != "created" || st.Pid <= 0 || st.ID != id || st.Bundle != bundle || st.OCIVersion != specs.Version {
		t.Fatalf("state after create = %+v; want status created, a pid, id %s, bundle %s, ociVersion %s", st, id, bundle, specs.Version)
	}
	if !alive(st.Pid) {
		t.Fatalf("created container's init %d is not alive", st.Pid)
	}
	// The raw document has the OCI field names.
	raw := r.ok("state", id).stdout
	var fields map[string]any
	if err := json.Unmarshal([]byte(raw), &fields); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"ociVersion", "id", "status", "pid", "bundle"} {
		if _, ok := fields[f]; !ok {
			t.Errorf("state JSON has no %q field: %s", f, raw)
		}
	}

	// list, as a table and as JSON.
	table := r.ok("list").stdout
	if !strings.HasPrefix(table, "ID") || !hasRow(table, id, "created") {
		t.Errorf("list table has no row for %s created:\n%s", id, table)
	}
	var listed []ociState
	if err := json.Unmarshal([]byte(r.ok("list", "-f", "json").stdout), &listed); err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0].ID != id || listed[0].Status != "created" || listed[0].Pid != st.Pid {
		t.Errorf("list -f json = %+v, want only %s created pid %d", listed, id, st.Pid)
	}

	r.ok("start", id)
	if got := r.state(id); got.Status != "running" || got.Pid != st.Pid {
		t.Fatalf("state after start = %+v, want running with pid %d", got, st.Pid)
	}
	res := r.fails("start", id)
	oneLine(t, res, id, "running")

	// A running container is only deleted with -f.
	res = r.fails("delete", id)
	oneLine(t, res, id)
	if got := r.state(id); got.Status != "running" {
		t.Fatalf("after a refused delete: status %q, want running", got.Status)
	}
	if !hasRow(r.ok("list").stdout, id, "running") {
		t.Errorf("list does not show %s running", id)
	}

	r.ok("kill", id, "TERM")
	if got := r.waitStatus(id, "stopped"); got.Pid != 0 {
		t.Errorf("stopped container's state pid = %d, want 0", got.Pid)
	}
	if alive(st.Pid) {
		t.Errorf("init %d still alive after it stopped", st.Pid)
	}
	res = r.fails("kill", id, "KILL")
	oneLine(t, res, id)

	r.ok("delete", id)
	res = r.fails("state", id)
	oneLine(t, res, id)
	if _, err := os.Stat(filepath.Join(r.root, id)); !os.IsNotExist(err) {
		t.Errorf("state dir after delete: %v", err)
	}
	r.nothingLeft(id, bundle)
	if out := r.ok("list", "-f", "json").stdout; strings.TrimSpace(out) != "[]" {
		t.Errorf("list -f json after delete = %q, want []", out)
	}
}

// hasRow reports whether a list table has a row for id with status.
func hasRow(table, id, status string) bool {
	for _, l := range lines(table) {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == id && f[2] == status {
			return true
		}
	}
	return false
}

func TestDeleteForceRunning(t *testing.T) {
	r := newRT(t)
	id, st, _ := r.start(newSpec(t))
	if st.Status != "running" {
		t.Fatalf("status %q, want running", st.Status)
	}
	cg := hostCgroupDir(t, st.Pid, "memory")
	r.ok("delete", "-f", id)
	if alive(st.Pid) {
		t.Errorf("init %d alive after delete -f", st.Pid)
	}
	if _, err := os.Stat(cg); !os.IsNotExist(err) {
		t.Errorf("cgroup %s after delete -f: %v", cg, err)
	}
	r.nothingLeft(id, "")
	oneLine(t, r.fails("delete", id), id)
	// -f on a container that does not exist is not an error (runc).
	r.ok("delete", "-f", id)
}

// TestDuplicateID: a second create with a taken id fails, names the id and
// leaves the first container as it was.
func TestDuplicateID(t *testing.T) {
	r := newRT(t)
	id, first, _ := r.start(newSpec(t))
	bundle2 := writeBundle(t, newSpec(t))
	res := r.fails("create", "--bundle", bundle2, id)
	oneLine(t, res, id)
	res = r.fails("run", "--bundle", bundle2, id)
	oneLine(t, res, id)
	got := r.state(id)
	if got.Status != "running" || got.Pid != first.Pid || got.Bundle != first.Bundle {
		t.Errorf("first container after duplicate creates: %+v, want %+v", got, first)
	}
	if !alive(first.Pid) {
		t.Errorf("first container's init %d died", first.Pid)
	}
	if n := len(procsInCgroup(id)); n != 1 {
		t.Errorf("%d processes in cgroup %s, want 1 (the first container's init): %v", n, id, procsInCgroup(id))
	}
}
