package runtime_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestExec(t *testing.T) {
	r := newRT(t)
	s := newSpec(t)
	s.Hostname = "exec-host"
	id, st, _ := r.start(s)

	check := func(want string, args ...string) {
		t.Helper()
		res := r.run(append([]string{"exec"}, args...)...)
		if res.code != 0 || res.stdout != want {
			t.Errorf("want exit 0 and stdout %q:\n%s", want, res)
		}
	}
	check("exec-host\n", id, "hostname")
	// The exec'd process is in the container's pid namespace: pid 1 is
	// the container's init.
	check("sleep\x003600\x00", id, "cat", "/proc/1/cmdline")
	check("/tmp\n", "--cwd", "/tmp", id, "pwd")
	check("y z\n", "-e", "X=y z", id, "sh", "-c", `echo "$X"`)
	check("1000\n1000\n", "-u", "1000:1000", id, "sh", "-c", "id -u; id -g")

	p := *s.Process
	p.Args = []string{"sh", "-c", `echo "$A"; pwd; id -u`}
	p.Env = append(p.Env, "A=from-process-json")
	p.Cwd = "/etc"
	p.User = specs.User{UID: 65534, GID: 65534}
	data, _ := json.Marshal(p)
	pf := filepath.Join(t.TempDir(), "process.json")
	if err := os.WriteFile(pf, data, 0o644); err != nil {
		t.Fatal(err)
	}
	check("from-process-json\n/etc\n65534\n", "-p", pf, id)

	if res := r.run("exec", id, "sh", "-c", "exit 5"); res.code != 5 {
		t.Errorf("want exit 5:\n%s", res)
	}
	if res := r.run("exec", id, "no-such-program"); res.code == 0 || !strings.Contains(res.stderr, "no-such-program") {
		t.Errorf("exec of a missing program: want failure naming it:\n%s", res)
	}

	// Detached, with a pid file: the process runs in the container's
	// namespaces and cgroup after exec has returned.
	pidFile := filepath.Join(t.TempDir(), "exec.pid")
	res := r.ok("exec", "-d", "--pid-file", pidFile, id, "sleep", "99")
	if res.dur > 10*time.Second {
		t.Errorf("exec -d took %v", res.dur)
	}
	pid, err := strconv.Atoi(readFile(t, pidFile))
	if err != nil || !alive(pid) {
		t.Fatalf("--pid-file %q: no live process (%v)", readFile(t, pidFile), err)
	}
	for _, ns := range []string{"pid", "mnt", "net", "ipc", "uts", "cgroup"} {
		a, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		b, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", st.Pid, ns))
		if a == "" || a != b {
			t.Errorf("exec'd process's %s namespace %q, init's %q", ns, a, b)
		}
	}
	if a, b := hostCgroupDir(t, pid, "memory"), hostCgroupDir(t, st.Pid, "memory"); a != b {
		t.Errorf("exec'd process in cgroup %s, init in %s", a, b)
	}
}

func TestExecStopped(t *testing.T) {
	r := newRT(t)
	s := newSpec(t)
	s.Process.Args = []string{"true"}
	id, _, _ := r.start(s)
	r.waitStatus(id, "stopped")
	res := r.fails("exec", id, "true")
	oneLine(t, res, id, "stopped")
	res = r.fails("exec", "no-such-container", "true")
	oneLine(t, res, "no-such-container")
}
