package engine

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// restartCount is the container's RestartCount from inspect.
func restartCount(t *testing.T, ref string) int {
	t.Helper()
	n, ok := field(inspect(t, ref), "RestartCount").(float64)
	if !ok {
		t.Fatalf("inspect %s: no RestartCount", ref)
	}
	return int(n)
}

// staysExited checks for d that the container stays exited and is not
// restarted.
func staysExited(t *testing.T, ref string, d time.Duration) {
	t.Helper()
	want := restartCount(t, ref)
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if st := status(t, ref); st != "exited" {
			t.Fatalf("%s: status %q, want it to stay exited", ref, st)
		}
	}
	if n := restartCount(t, ref); n != want {
		t.Fatalf("%s: RestartCount went from %d to %d while exited", ref, want, n)
	}
}

func TestRestartOnFailure(t *testing.T) {
	name := "restart-onfailure"
	cleanupContainer(t, name)
	ok(t, "run", "-d", "--name", name, "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 3")
	eventually(t, 20*time.Second, "exited after 2 restarts", func() bool {
		return status(t, name) == "exited" && restartCount(t, name) == 2
	})
	staysExited(t, name, 1500*time.Millisecond)
	doc := inspect(t, name)
	if code := field(doc, "State", "ExitCode"); code != float64(3) {
		t.Errorf("ExitCode = %v, want 3", code)
	}
	if r := field(doc, "State", "Restarting"); r != false {
		t.Errorf("State.Restarting = %v, want false", r)
	}
}

func TestRestartOnFailureSuccessNotRestarted(t *testing.T) {
	name := "restart-onfailure-ok"
	cleanupContainer(t, name)
	ok(t, "run", "-d", "--name", name, "--restart", "on-failure", "busybox", "true")
	eventually(t, 10*time.Second, "exited", func() bool { return status(t, name) == "exited" })
	staysExited(t, name, time.Second)
	if n := restartCount(t, name); n != 0 {
		t.Errorf("RestartCount = %d after exit 0 with on-failure, want 0", n)
	}
}

func TestRestartAlwaysUntilStopped(t *testing.T) {
	for _, policy := range []string{"always", "unless-stopped"} {
		t.Run(policy, func(t *testing.T) {
			name := "restart-" + policy
			cleanupContainer(t, name)
			ok(t, "run", "-d", "--name", name, "--restart", policy, "busybox", "true")
			eventually(t, 20*time.Second, "2 restarts", func() bool { return restartCount(t, name) >= 2 })
			ok(t, "stop", name)
			if st := status(t, name); st != "exited" {
				t.Fatalf("status after stop = %q, want exited", st)
			}
			staysExited(t, name, 1500*time.Millisecond)
			// A start by the user clears the stop: the policy applies again,
			// and the count starts over as docker's does.
			ok(t, "start", name)
			eventually(t, 20*time.Second, "restarts after start", func() bool { return restartCount(t, name) >= 1 })
			ok(t, "stop", name)
			staysExited(t, name, time.Second)
		})
	}
}

func TestRestartKillStops(t *testing.T) {
	name := "restart-kill"
	cleanupContainer(t, name)
	ok(t, "run", "-d", "--name", name, "--restart", "always", "busybox", "sleep", "1000")
	ok(t, "kill", name)
	eventually(t, 10*time.Second, "exited", func() bool { return status(t, name) == "exited" })
	staysExited(t, name, 1500*time.Millisecond)
	if n := restartCount(t, name); n != 0 {
		t.Errorf("RestartCount = %d after kill, want 0", n)
	}
}

func TestRestartShowsRestarting(t *testing.T) {
	// The backoff doubles: after a few quick exits the container waits
	// long enough to be seen restarting, in ps without -a too.
	name := "restart-ps"
	cleanupContainer(t, name)
	ok(t, "run", "-d", "--name", name, "--restart", "always", "busybox", "sh", "-c", "exit 4")
	var doc map[string]any
	eventually(t, 20*time.Second, "restarting", func() bool {
		doc = inspect(t, name)
		return field(doc, "State", "Status") == "restarting"
	})
	// Docker's inspect of a restarting container: Running and Restarting.
	if field(doc, "State", "Restarting") != true || field(doc, "State", "Running") != true || field(doc, "State", "ExitCode") != float64(4) {
		t.Errorf("restarting container's state: %v", field(doc, "State"))
	}
	eventually(t, 20*time.Second, "ps listing it as restarting", func() bool {
		out := ok(t, "ps", "--filter", "name="+name, "--format", "{{.Status}}")
		return strings.HasPrefix(strings.TrimSpace(out), "Restarting (4) ")
	})
	ok(t, "rm", "-f", name)
	time.Sleep(time.Second)
	if slices.Contains(psNames(t), name) {
		t.Fatalf("%s is back after rm -f during its backoff", name)
	}
}

func TestRestartNoPolicy(t *testing.T) {
	name := "restart-none"
	cleanupContainer(t, name)
	ok(t, "run", "-d", "--name", name, "busybox", "sh", "-c", "exit 1")
	eventually(t, 10*time.Second, "exited", func() bool { return status(t, name) == "exited" })
	staysExited(t, name, time.Second)
	if n := restartCount(t, name); n != 0 {
		t.Errorf("RestartCount = %d without a policy, want 0", n)
	}
}

func TestRestartRmConflict(t *testing.T) {
	r := berth(t, "run", "--rm", "--restart", "always", "busybox", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "Conflicting options: --restart and --rm") {
		t.Fatalf("run --rm --restart always: %v; want exit 125 and docker's conflict message", r)
	}
}

func TestRestartRestore(t *testing.T) {
	names := map[string]string{"always": "restore-always", "unless-stopped": "restore-unless", "no": "restore-no"}
	for policy, name := range names {
		cleanupContainer(t, name)
		ok(t, "run", "-d", "--name", name, "--restart", policy, "busybox", "sleep", "1000")
		ok(t, "stop", "-t", "0", name)
	}
	out := ok(t, "container", "restore")
	started := strings.Fields(out)
	// As docker's daemon does when it starts: always even after a stop
	// by the user, unless-stopped not after one.
	if !slices.Contains(started, names["always"]) || slices.Contains(started, names["unless-stopped"]) || slices.Contains(started, names["no"]) {
		t.Fatalf("restore started %q; want %s and not the others", started, names["always"])
	}
	for policy, name := range names {
		want := "exited"
		if policy == "always" {
			want = "running"
		}
		if st := status(t, name); st != want {
			t.Errorf("%s (%s) after restore: %q, want %q", name, policy, st, want)
		}
	}
}

// health is the container's State.Health from inspect.
func health(t *testing.T, ref string) map[string]any {
	t.Helper()
	h, _ := field(inspect(t, ref), "State", "Health").(map[string]any)
	return h
}

func healthStatus(t *testing.T, ref string) string {
	t.Helper()
	s, _ := health(t, ref)["Status"].(string)
	return s
}

func TestHealthStartingUnhealthyHealthy(t *testing.T) {
	name := "health-basic"
	cleanupContainer(t, name)
	ok(t, "run", "-d", "--name", name, "--health-cmd", "test -f /ok", "--health-interval", "1s", "--health-retries", "2",
		"busybox", "sleep", "1000")
	if h := health(t, name); h == nil {
		t.Fatal("no State.Health for a container with a health check")
	} else if log, _ := h["Log"].([]any); len(log) == 0 && h["Status"] != "starting" {
		t.Errorf("health before any check = %v, want starting", h["Status"])
	}
	eventually(t, 15*time.Second, "unhealthy", func() bool { return healthStatus(t, name) == "unhealthy" })
	h := health(t, name)
	if fs, _ := h["FailingStreak"].(float64); fs < 2 {
		t.Errorf("FailingStreak = %v when unhealthy with retries 2", h["FailingStreak"])
	}
	log, _ := h["Log"].([]any)
	if len(log) < 2 || len(log) > 5 {
		t.Fatalf("health log has %d results, want 2 to 5: %v", len(log), log)
	}
	if last, _ := log[len(log)-1].(map[string]any); last["ExitCode"] != float64(1) {
		t.Errorf("last result %v, want exit code 1", last)
	}
	psStatus := func() string {
		return strings.TrimSpace(ok(t, "ps", "--filter", "name="+name, "--format", "{{.Status}}"))
	}
	if s := psStatus(); !strings.HasSuffix(s, "(unhealthy)") {
		t.Errorf("ps status %q, want (unhealthy)", s)
	}

	ok(t, "exec", name, "touch", "/ok")
	eventually(t, 15*time.Second, "healthy", func() bool { return healthStatus(t, name) == "healthy" })
	if fs := health(t, name)["FailingStreak"]; fs != float64(0) {
		t.Errorf("FailingStreak = %v when healthy", fs)
	}
	if s := psStatus(); !strings.HasPrefix(s, "Up ") || !strings.HasSuffix(s, "(healthy)") {
		t.Errorf("ps status %q, want Up ... (healthy)", s)
	}
	if out := ok(t, "ps", "--filter", "health=healthy", "--format", "{{.Names}}"); !slices.Contains(strings.Fields(out), name) {
		t.Errorf("ps --filter health=healthy: %q lacks %s", out, name)
	}
	if out := ok(t, "ps", "--filter", "health=unhealthy", "--format", "{{.Names}}"); slices.Contains(strings.Fields(out), name) {
		t.Errorf("ps --filter health=unhealthy: %q lists healthy %s", out, name)
	}
	// The log keeps the last 5 results.
	eventually(t, 15*time.Second, "a full log", func() bool {
		log, _ := health(t, name)["Log"].([]any)
		return len(log) == 5
	})
	time.Sleep(1500 * time.Millisecond)
	if log, _ := health(t, name)["Log"].([]any); len(log) != 5 {
		t.Errorf("health log has %d results, want at most 5", len(log))
	}
}

func TestHealthTimeout(t *testing.T) {
	name := "health-timeout"
	cleanupContainer(t, name)
	ok(t, "run", "-d", "--name", name, "--health-cmd", "sleep 30", "--health-timeout", "1s", "--health-interval", "1s",
		"--health-retries", "1", "busybox", "sleep", "1000")
	eventually(t, 15*time.Second, "unhealthy", func() bool { return healthStatus(t, name) == "unhealthy" })
	log, _ := health(t, name)["Log"].([]any)
	if len(log) == 0 {
		t.Fatal("no health log")
	}
	r, _ := log[0].(map[string]any)
	if out, _ := r["Output"].(string); !strings.Contains(out, "Health check exceeded timeout") {
		t.Errorf("result output %q, want the timeout message", out)
	}
	if r["ExitCode"] != float64(-1) {
		t.Errorf("timed out result exit code %v, want -1", r["ExitCode"])
	}
	start, err1 := time.Parse(time.RFC3339Nano, fmt.Sprint(r["Start"]))
	end, err2 := time.Parse(time.RFC3339Nano, fmt.Sprint(r["End"]))
	if err1 != nil || err2 != nil || end.Sub(start) > 5*time.Second {
		t.Errorf("timed out check ran from %v to %v (%v %v): it was not killed", r["Start"], r["End"], err1, err2)
	}
	// The killed check leaves no sleep behind in the container.
	eventually(t, 5*time.Second, "the check's process gone", func() bool {
		out := ok(t, "exec", name, "ps")
		return !strings.Contains(out, "sleep 30")
	})
}

func TestHealthNone(t *testing.T) {
	name := "health-none"
	cleanupContainer(t, name)
	ok(t, "run", "-d", "--name", name, "--no-healthcheck", "busybox", "sleep", "1000")
	if h := health(t, name); h != nil {
		t.Errorf("State.Health = %v with --no-healthcheck", h)
	}
	if s := strings.TrimSpace(ok(t, "ps", "--filter", "name="+name, "--format", "{{.Status}}")); strings.Contains(s, "(") {
		t.Errorf("ps status %q for a container without health check", s)
	}
}

func TestRestartAfterMonitorDied(t *testing.T) {
	// A monitor that dies runs no cleanup: the berth command that
	// notices records the exit and starts the restart in its place.
	name := "restart-monitor"
	cleanupContainer(t, name)
	ok(t, "run", "-d", "--name", name, "--restart", "always", "busybox", "sleep", "1000")
	pid := int(field(inspect(t, name), "State", "Pid").(float64))
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var ppid int
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			ppid, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if ppid <= 1 {
		t.Fatalf("container init %d has parent %d, not its monitor", pid, ppid)
	}
	if err := syscall.Kill(ppid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "running again", func() bool {
		doc := inspect(t, name)
		newPid, _ := field(doc, "State", "Pid").(float64)
		return field(doc, "State", "Status") == "running" && int(newPid) != pid && int(newPid) != 0
	})
	if n := restartCount(t, name); n != 1 {
		t.Errorf("RestartCount = %d, want 1", n)
	}
}

func TestRestartStopDuringBackoff(t *testing.T) {
	// Stopped while it waits to be restarted, the container stays
	// stopped: the waiting cleanup gives up.
	name := "restart-stop-backoff"
	cleanupContainer(t, name)
	ok(t, "run", "-d", "--name", name, "--restart", "always", "busybox", "sh", "-c", "exit 5")
	var count int
	eventually(t, 20*time.Second, "restarting after 3 restarts", func() bool {
		doc := inspect(t, name)
		n, _ := field(doc, "RestartCount").(float64)
		count = int(n)
		return field(doc, "State", "Status") == "restarting" && count >= 3
	})
	ok(t, "stop", name)
	if st := status(t, name); st != "exited" {
		t.Fatalf("status after stop during backoff = %q, want exited", st)
	}
	// The pending backoff was 100 ms doubled count-1 times: wait past it.
	staysExited(t, name, time.Duration(100<<(count-1))*time.Millisecond+time.Second)
}
