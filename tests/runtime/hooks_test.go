package runtime_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var hookKinds = []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"}

// TestHooks: every kind of hook runs once, in the lifecycle's order, with
// the container's state on stdin.
func TestHooks(t *testing.T) {
	r := newRT(t)
	dir := t.TempDir()
	// startContainer runs in the container after pivot_root: it sees dir
	// through a bind mount at /home.
	s := newSpec(t)
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/home", Type: "bind", Source: dir, Options: []string{"rbind", "rw"}})
	env := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	hook := func(kind, d string) specs.Hook {
		return specs.Hook{Path: "/bin/sh", Env: env,
			Args: []string{"sh", "-c", fmt.Sprintf("cat > %s/%s.json; echo %s >> %s/order", d, kind, kind, d)}}
	}
	s.Hooks = &specs.Hooks{
		Prestart:        []specs.Hook{hook("prestart", dir)},
		CreateRuntime:   []specs.Hook{hook("createRuntime", dir)},
		CreateContainer: []specs.Hook{hook("createContainer", dir)},
		StartContainer:  []specs.Hook{hook("startContainer", "/home")},
		Poststart:       []specs.Hook{hook("poststart", dir)},
		Poststop:        []specs.Hook{hook("poststop", dir)},
	}
	id, bundle, _ := r.create(s)
	pid := r.state(id).Pid
	order := func() string { b, _ := os.ReadFile(filepath.Join(dir, "order")); return string(b) }
	if got := order(); got != "prestart\ncreateRuntime\ncreateContainer\n" {
		t.Errorf("hooks run by create: %q", got)
	}
	r.ok("start", id)
	if got := order(); got != "prestart\ncreateRuntime\ncreateContainer\nstartContainer\npoststart\n" {
		t.Errorf("hooks run by create and start: %q", got)
	}
	r.ok("kill", id, "KILL")
	r.waitStatus(id, "stopped")
	r.ok("delete", id)
	if got := order(); got != strings.Join(hookKinds, "\n")+"\n" {
		t.Errorf("hooks ran in the order %q, want %v", got, hookKinds)
	}
	for _, kind := range hookKinds {
		var st specs.State
		data, err := os.ReadFile(filepath.Join(dir, kind+".json"))
		if err != nil {
			t.Errorf("%s hook: %v", kind, err)
			continue
		}
		if err := json.Unmarshal(data, &st); err != nil {
			t.Errorf("%s hook's stdin is not a state: %v: %q", kind, err, data)
			continue
		}
		if st.ID != id || st.Bundle != bundle || st.Version != specs.Version {
			t.Errorf("%s hook got state %+v, want id %s bundle %s", kind, st, id, bundle)
		}
		if kind != "poststop" && st.Pid != pid {
			t.Errorf("%s hook got pid %d, want init's %d", kind, st.Pid, pid)
		}
		want := map[string]specs.ContainerState{"poststart": "running", "poststop": "stopped", "startContainer": "running"}[kind]
		if want != "" && st.Status != want {
			t.Errorf("%s hook got status %q, want %q", kind, st.Status, want)
		}
	}
}

// TestPrestartHookFails: a failing prestart hook fails create and leaves
// nothing behind; its output is in the error.
func TestPrestartHookFails(t *testing.T) {
	r := newRT(t)
	s := newSpec(t)
	s.Hooks = &specs.Hooks{Prestart: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "echo hook-said-no >&2; exit 4"}}}}
	bundle := writeBundle(t, s)
	id := r.newID()
	oneLine(t, r.fails("create", "--bundle", bundle, id), "hooks.prestart[0]", "hook-said-no")
	r.nothingLeft(id, bundle)
}

// TestHookTimeout: a hook that outlives its timeout is killed and create
// fails in about that time.
func TestHookTimeout(t *testing.T) {
	r := newRT(t)
	s := newSpec(t)
	// A unique sleep duration finds the hook's process afterwards.
	token := fmt.Sprintf("37.%d", time.Now().UnixNano()%1000000)
	timeout := 1
	s.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{{Path: "/bin/sh", Args: []string{"sh", "-c", "exec sleep " + token}, Timeout: &timeout}}}
	bundle := writeBundle(t, s)
	id := r.newID()
	res := r.fails("create", "--bundle", bundle, id)
	oneLine(t, res, "hooks.createRuntime[0]", "timed out")
	if res.dur > 10*time.Second {
		t.Errorf("create took %v with a 1s hook timeout", res.dur)
	}
	r.nothingLeft(id, bundle)
	if p := procsWithArg(token); len(p) > 0 {
		t.Errorf("the timed-out hook is still running: %v", p)
	}
}

// procsWithArg lists live processes with arg in their command line.
func procsWithArg(arg string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		for _, a := range strings.Split(string(cmd), "\x00") {
			if a == arg {
				out = append(out, e.Name()+": "+strings.ReplaceAll(string(cmd), "\x00", " "))
			}
		}
	}
	return out
}
