package runtime_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestRunExitCode(t *testing.T) {
	r := newRT(t)
	s := newSpec(t)
	s.Process.Args = []string{"sh", "-c", "exit 3"}
	if res := r.runSpec(s); res.code != 3 || res.stderr != "" {
		t.Errorf("want exit 3 and nothing on stderr:\n%s", res)
	}
}

// TestRunSignalExitCode: a process killed by signal N gives 128+N. In its
// own pid namespace the shell would be init, which cannot be killed from
// inside, so these containers share the host's pid namespace.
func TestRunSignalExitCode(t *testing.T) {
	r := newRT(t)
	for _, tc := range []struct {
		sig  string
		want int
	}{{"KILL", 137}, {"TERM", 143}, {"USR1", 138}} {
		s := newSpec(t)
		s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool {
			return ns.Type == specs.PIDNamespace
		})
		s.Process.Args = []string{"sh", "-c", "kill -" + tc.sig + " $$; sleep 5"}
		if res := r.runSpec(s); res.code != tc.want {
			t.Errorf("SIG%s: want exit %d:\n%s", tc.sig, tc.want, res)
		}
	}
}

func TestRunStdio(t *testing.T) {
	r := newRT(t)
	s := newSpec(t)
	s.Process.Args = []string{"sh", "-c", "echo out; echo err >&2; cat; echo done"}
	bundle := writeBundle(t, s)
	res := r.runIn("from stdin\n", "run", "--bundle", bundle, r.newID())
	if res.code != 0 || res.stdout != "out\nfrom stdin\ndone\n" || res.stderr != "err\n" {
		t.Errorf("want stdout %q and stderr %q:\n%s", "out\nfrom stdin\ndone\n", "err\n", res)
	}
}

func TestRunDetach(t *testing.T) {
	r := newRT(t)
	bundle := writeBundle(t, newSpec(t))
	id := r.newID()
	pidFile := filepath.Join(t.TempDir(), "pid")
	res := r.ok("run", "-d", "--pid-file", pidFile, "--bundle", bundle, id)
	if res.dur > 10*time.Second {
		t.Errorf("run -d took %v: it waited for the container", res.dur)
	}
	st := r.state(id)
	if st.Status != "running" || !alive(st.Pid) {
		t.Fatalf("after run -d: %+v, want running with a live pid", st)
	}
	if pid := readFile(t, pidFile); pid != itoa(st.Pid) {
		t.Errorf("--pid-file has %q, state pid is %d", pid, st.Pid)
	}
	oneLine(t, r.fails("delete", id), id)
	r.ok("delete", "-f", id)
	if alive(st.Pid) {
		t.Errorf("init %d alive after delete -f", st.Pid)
	}
	if _, err := os.Stat(filepath.Join(r.root, id)); !os.IsNotExist(err) {
		t.Errorf("state dir after delete: %v", err)
	}
	r.nothingLeft(id, bundle)
}
