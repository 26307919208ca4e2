package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunKilledMidStart: the berth process that starts a container runs
// the runtime's code itself (the monitor forks only stage 0). Killed in
// the middle of that, it leaves no half-created container: nothing of the
// container keeps running, the record says what it said before, and the
// container can be started and removed again without traces.
func TestRunKilledMidStart(t *testing.T) {
	cleanupContainer(t, "midstart")
	id := strings.TrimSpace(ok(t, "create", "--name", "midstart", "--network", "none", "busybox", "sleep", "1000"))
	rtDir := filepath.Join(runDir, "runtime", id)
	monDir := filepath.Join(runDir, "containers", id)
	points := []struct {
		name string
		at   func() bool
	}{
		// The monitor is up, the runtime's work has not begun.
		{"monitor up", func() bool { return exists(filepath.Join(monDir, "attach")) }},
		// The runtime's state directory exists: init is being made.
		{"runtime state", func() bool { return exists(rtDir) }},
	}
	for _, p := range points {
		hit := false
		for attempt := 0; attempt < 20 && !hit; attempt++ {
			was := status(t, "midstart")
			cmd := berthCmd("start", "midstart")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			killed := false
		poll:
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
				select {
				case <-done:
					break poll
				default:
				}
				if p.at() {
					killed = cmd.Process.Signal(syscall.SIGKILL) == nil
					<-done
					break
				}
			}
			<-done
			if st := status(t, "midstart"); !killed || st == "running" {
				// The start finished first: stop it and try again.
				ok(t, "stop", "-t", "0", "midstart")
				continue
			} else if st != was {
				t.Fatalf("%s: after the CLI was killed the container is %q, want %q as before", p.name, st, was)
			}
			hit = true
			eventually(t, 5*time.Second, p.name+": the container's processes and monitor to go", func() bool {
				return len(containerProcs(id, monDir)) == 0
			})
		}
		if !hit {
			t.Fatalf("%s: never killed the CLI in the middle of a start in 20 attempts", p.name)
		}
		// A start after the cut-short one works and runs the container.
		ok(t, "start", "midstart")
		if st := status(t, "midstart"); st != "running" {
			t.Fatalf("%s: start after the killed one: status %q", p.name, st)
		}
		ok(t, "stop", "-t", "0", "midstart")
	}
	// Killed once more, then removed: no runtime state, run directory,
	// mount or process is left.
	cmd := berthCmd("start", "midstart")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !exists(rtDir) && time.Now().Before(deadline); {
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	ok(t, "rm", "-f", "midstart")
	for _, dir := range []string{rtDir, monDir, filepath.Join(storeDir, "containers", id)} {
		if exists(dir) {
			t.Errorf("%s left after rm", dir)
		}
	}
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), id) {
		t.Errorf("a mount of the container is left after rm")
	}
	eventually(t, 5*time.Second, "the container's processes to go", func() bool {
		return len(containerProcs(id, monDir)) == 0
	})
}

// TestRunSignalledMidStart: SIGTERM (or ^C) to a foreground `run --rm`
// while its process is making the container does not cut the start short:
// the container starts, gets the signal, and is removed after its exit;
// nothing is left.
func TestRunSignalledMidStart(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		hit := false
		for attempt := 0; attempt < 20 && !hit; attempt++ {
			name := fmt.Sprintf("signalled-%d-%d", sig, attempt)
			cleanupContainer(t, name)
			before := psNames(t)
			cmd := berthCmd("run", "--rm", "--name", name, "--network", "none", "busybox",
				"sh", "-c", "trap 'exit 3' TERM INT; sleep 2 & wait")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// The runtime's state appears while the CLI makes the
			// container: signal it then.
			rt := filepath.Join(runDir, "runtime")
			old := map[string]bool{}
			if ents, err := os.ReadDir(rt); err == nil {
				for _, e := range ents {
					old[e.Name()] = true
				}
			}
			deadline := time.Now().Add(10 * time.Second)
			for !hit && time.Now().Before(deadline) {
				ents, _ := os.ReadDir(rt)
				for _, e := range ents {
					if !hit && !old[e.Name()] {
						hit = cmd.Process.Signal(sig) == nil
					}
				}
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("signal %v: the CLI did not exit", sig)
			}
			if code := cmd.ProcessState.ExitCode(); code != 0 && code != 3 {
				t.Errorf("signal %v: exit %d, want the container's (0 or 3)", sig, code)
			}
			if after := psNames(t); len(after) != len(before) {
				t.Fatalf("signal %v: containers %v after, %v before: --rm left one", sig, after, before)
			}
		}
		if !hit {
			t.Fatalf("signal %v: never signalled the CLI while it made the container", sig)
		}
	}
}

// TestRunRuntimeRefusesConfig: a config the runtime refuses (here a hard
// rlimit above berth's own, which it may not raise) fails the in-process
// start with the runtime's message and docker's 125, with --rm leaving
// nothing, without it leaving the container created and startable again
// (to the same error).
func TestRunRuntimeRefusesConfig(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max >= 1<<30 {
		t.Fatalf("hard nofile limit %d: no higher limit to ask for", lim.Max)
	}
	ulimit := fmt.Sprintf("nofile=%d:%d", lim.Max+1, lim.Max+1)
	before := psNames(t)
	r := berth(t, "run", "--rm", "--network", "none", "--ulimit", ulimit, "busybox", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "RLIMIT_NOFILE") {
		t.Fatalf("run --rm: want 125 naming RLIMIT_NOFILE, got %v", r)
	}
	if after := psNames(t); len(after) != len(before) {
		t.Fatalf("--rm left a container: %v, before %v", after, before)
	}
	cleanupContainer(t, "refused")
	r = berth(t, "run", "--name", "refused", "--network", "none", "--ulimit", ulimit, "busybox", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "RLIMIT_NOFILE") {
		t.Fatalf("run: want 125 naming RLIMIT_NOFILE, got %v", r)
	}
	id := createdAfterFailedStart(t, "refused")
	if r := berth(t, "start", "refused"); r.code == 0 || !strings.Contains(r.stderr, "RLIMIT_NOFILE") {
		t.Fatalf("start again: %v", r)
	}
	noContainerProcs(t, id)
}

// createdAfterFailedStart checks that the container name, whose start
// failed, is left created without runtime state, and returns its ID.
func createdAfterFailedStart(t *testing.T, name string) string {
	t.Helper()
	id := strings.TrimSpace(ok(t, "inspect", "--format", "{{.Id}}", name))
	if st := status(t, name); st != "created" {
		t.Fatalf("%s: status %q after a failed start, want created", name, st)
	}
	if exists(filepath.Join(runDir, "runtime", id)) {
		t.Fatalf("%s: the failed start left runtime state", name)
	}
	return id
}

// noContainerProcs checks that nothing of container id runs (see
// containerProcs), naming what does.
func noContainerProcs(t *testing.T, id string) {
	t.Helper()
	if ps := containerProcs(id, filepath.Join(runDir, "containers", id)); len(ps) != 0 {
		for _, p := range ps {
			b, _ := os.ReadFile("/proc/" + p + "/status")
			c, _ := os.ReadFile("/proc/" + p + "/cgroup")
			t.Logf("%s\n%s", b, c)
		}
		t.Fatalf("%d processes of container %s run", len(ps), id)
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// containerProcs lists the processes of container id: those in its
// cgroup, and its monitor (whose working directory is monDir).
func containerProcs(id, monDir string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		cg, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if strings.Contains(string(cg), "/berth/"+id) || cwd == monDir {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestRunBundleFails: the runtime spawns init while the CLI writes the
// bundle; a bundle that cannot be written (here a working directory under
// a file) fails the start with that error and leaves no init, monitor,
// cgroup or runtime state, the container created as docker leaves it.
func TestRunBundleFails(t *testing.T) {
	cleanupContainer(t, "nobundle")
	r := berth(t, "run", "--name", "nobundle", "--network", "none", "-w", "/etc/passwd/sub", "busybox", "true")
	if r.code == 0 || !strings.Contains(r.stderr, "working directory /etc/passwd/sub") {
		t.Fatalf("run: want the working directory's error, got %v", r)
	}
	id := createdAfterFailedStart(t, "nobundle")
	noContainerProcs(t, id)
	for _, cg := range []string{"/sys/fs/cgroup/pids/berth/" + id, "/sys/fs/cgroup/berth/" + id} {
		if exists(cg) {
			t.Fatalf("the failed start left cgroup %s", cg)
		}
	}
}

// TestRunCgroupNamespace: init is started before its cgroup exists and
// moved into it, so a private cgroup namespace must be made after the
// move: rooted in the container's cgroup, every line of /proc/self/cgroup
// reads "/", where the host's namespace shows the container's path.
func TestRunCgroupNamespace(t *testing.T) {
	out := ok(t, "run", "--rm", "--network", "none", "--cgroupns", "private", "busybox", "cat", "/proc/self/cgroup")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines {
		if !strings.HasSuffix(l, ":/") {
			t.Fatalf("private cgroup namespace: %q is not rooted in the container's cgroup:\n%s", l, out)
		}
	}
	out = ok(t, "run", "--rm", "--network", "none", "--cgroupns", "host", "busybox", "cat", "/proc/self/cgroup")
	if !strings.Contains(out, "/berth/") {
		t.Fatalf("host cgroup namespace: no /berth/ path in\n%s", out)
	}
}
