package engine

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// topRows splits berth top's output into its header and rows.
func topRows(t *testing.T, out string) (header string, rows []string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || !strings.Contains(lines[0], "PID") {
		t.Fatalf("top output has no PID header:\n%s", out)
	}
	return lines[0], lines[1:]
}

func TestTopShowsOnlyTheContainersProcesses(t *testing.T) {
	a, b := "obs-top-a", "obs-top-b"
	cleanupContainer(t, a)
	cleanupContainer(t, b)
	ok(t, "run", "-d", "--name", a, "busybox", "sh", "-c", "sleep 1001 & exec sleep 1002")
	ok(t, "run", "-d", "--name", b, "busybox", "sleep", "1003")
	var rows []string
	eventually(t, 10*time.Second, "both of a's processes in top", func() bool {
		_, rows = topRows(t, ok(t, "top", a))
		return len(rows) == 2
	})
	header, _ := topRows(t, ok(t, "top", a))
	for _, col := range []string{"UID", "PID", "PPID", "CMD"} {
		if !strings.Contains(header, col) {
			t.Errorf("top header %q lacks %s", header, col)
		}
	}
	all := strings.Join(rows, "\n")
	if !strings.Contains(all, "sleep 1001") || !strings.Contains(all, "sleep 1002") {
		t.Errorf("top %s does not show its sleeps:\n%s", a, all)
	}
	if strings.Contains(all, "sleep 1003") {
		t.Errorf("top %s shows b's process:\n%s", a, all)
	}
	// ps options after the container, as docker passes them to ps.
	out := ok(t, "container", "top", b, "-o", "pid,args")
	header, rows = topRows(t, out)
	if strings.Fields(header)[0] != "PID" || len(rows) != 1 || !strings.HasSuffix(rows[0], "sleep 1003") {
		t.Errorf("top %s -o pid,args:\n%s", b, out)
	}
	pid := fmt.Sprint(field(inspect(t, b), "State", "Pid"))
	if got := strings.Fields(rows[0])[0]; got != pid {
		t.Errorf("top's pid %s, inspect's %s", got, pid)
	}
}

func TestTopOfStoppedContainer(t *testing.T) {
	name := "obs-top-stopped"
	cleanupContainer(t, name)
	ok(t, "create", "--name", name, "busybox", "sleep", "10")
	r := berth(t, "top", name)
	if r.code != 1 || r.stderr != "Error response from daemon: container "+name+" is not running\n" {
		t.Fatalf("top of a created container: %v", r)
	}
	r = berth(t, "top", "obs-no-such")
	if r.code != 1 || !strings.Contains(r.stderr, "No such container: obs-no-such") {
		t.Fatalf("top of a missing container: %v", r)
	}
}

func TestStatsNoStreamShowsLimitAndPids(t *testing.T) {
	name := "obs-stats"
	cleanupContainer(t, name)
	ok(t, "run", "-d", "--name", name, "--memory", "64m", "busybox", "sh", "-c", "sleep 1001 & sleep 1002 & wait")
	eventually(t, 10*time.Second, "three processes", func() bool {
		_, rows := topRows(t, ok(t, "top", name))
		return len(rows) == 3
	})
	out := ok(t, "stats", "--no-stream", name)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("stats --no-stream: want a header and one row:\n%s", out)
	}
	for _, h := range []string{"CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "BLOCK I/O", "PIDS"} {
		if !strings.Contains(lines[0], h) {
			t.Errorf("stats header lacks %q: %s", h, lines[0])
		}
	}
	row := lines[1]
	id := strings.TrimSpace(ok(t, "inspect", "--format", "{{.Id}}", name))
	f := strings.Fields(row)
	if f[0] != id[:12] || f[1] != name {
		t.Errorf("stats row does not start with the short ID and name: %s", row)
	}
	if !strings.Contains(row, " / 64MiB") {
		t.Errorf("stats row lacks the 64MiB limit: %s", row)
	}
	if f[len(f)-1] != "3" {
		t.Errorf("stats PIDS = %s, want 3: %s", f[len(f)-1], row)
	}
	// Without arguments: running containers; the stopped one only with -a.
	stopped := "obs-stats-stopped"
	cleanupContainer(t, stopped)
	ok(t, "create", "--name", stopped, "busybox", "true")
	if out := ok(t, "stats", "--no-stream"); !strings.Contains(out, name) || strings.Contains(out, stopped) {
		t.Errorf("stats --no-stream without arguments:\n%s", out)
	}
	if out := ok(t, "stats", "--no-stream", "-a", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}"); !strings.Contains(out, stopped+" 0B / 0B 0\n") {
		t.Errorf("stats -a does not show the stopped container with zeros:\n%s", out)
	}
}

func TestStatsFormatJSON(t *testing.T) {
	name := "obs-stats-json"
	cleanupContainer(t, name)
	ok(t, "run", "-d", "--name", name, "--memory", "32m", "busybox", "sleep", "1000")
	out := ok(t, "container", "stats", "--no-stream", "--no-trunc", "--format", "json", name)
	var row map[string]string
	if err := json.Unmarshal([]byte(out), &row); err != nil {
		t.Fatalf("stats --format json: %v\n%s", err, out)
	}
	id := strings.TrimSpace(ok(t, "inspect", "--format", "{{.Id}}", name))
	if row["ID"] != id || row["Name"] != name || row["Container"] != name || row["PIDs"] != "1" ||
		!strings.HasSuffix(row["MemUsage"], " / 32MiB") || !strings.HasSuffix(row["CPUPerc"], "%") ||
		!strings.HasSuffix(row["MemPerc"], "%") || !strings.Contains(row["NetIO"], " / ") || !strings.Contains(row["BlockIO"], " / ") {
		t.Errorf("stats json row: %v", row)
	}
}

func TestStatsOfMissingContainer(t *testing.T) {
	r := berth(t, "stats", "--no-stream", "obs-no-such")
	if r.code != 1 || r.stderr != "Error response from daemon: No such container: obs-no-such\n" {
		t.Fatalf("stats of a missing container: %v", r)
	}
}

func TestEventsSinceLifecycle(t *testing.T) {
	name := "obs-events"
	cleanupContainer(t, name)
	since := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	id := strings.TrimSpace(ok(t, "run", "-d", "--name", name, "busybox", "sleep", "1000"))
	ok(t, "stop", "-t", "1", name)
	ok(t, "rm", name)
	until := time.Now().Add(time.Second).UTC().Format(time.RFC3339Nano)
	// until in the past: print and exit.
	time.Sleep(1100 * time.Millisecond)
	out := ok(t, "events", "--since", since, "--until", until, "--filter", "container="+name)
	var actions []string
	for _, l := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		f := strings.Fields(l)
		if len(f) < 4 || f[1] != "container" || f[3] != id || !strings.Contains(l, "name="+name) || !strings.Contains(l, "image=busybox") {
			t.Fatalf("unexpected event line %q in\n%s", l, out)
		}
		if _, err := time.Parse(time.RFC3339Nano, f[0]); err != nil {
			t.Errorf("event time %q: %v", f[0], err)
		}
		actions = append(actions, f[2])
	}
	// stop sends SIGTERM first (kill), as docker's does.
	want := []string{"create", "start", "kill", "die", "stop", "destroy"}
	if strings.Join(actions, " ") != strings.Join(want, " ") {
		t.Fatalf("events: got %v, want %v\n%s", actions, want, out)
	}
	// The same as JSON, docker's events.Message.
	out = ok(t, "system", "events", "--since", since, "--until", until, "--filter", "container="+id, "--filter", "event=die", "--format", "json")
	var m struct {
		Type, Action, Scope string
		Actor               struct {
			ID         string
			Attributes map[string]string
		}
		Time     int64 `json:"time"`
		TimeNano int64 `json:"timeNano"`
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("events json: %v\n%s", err, out)
	}
	if m.Type != "container" || m.Action != "die" || m.Scope != "local" || m.Actor.ID != id ||
		m.Actor.Attributes["exitCode"] != "143" && m.Actor.Attributes["exitCode"] != "137" || m.Time != m.TimeNano/1e9 {
		t.Errorf("die event: %+v", m)
	}
	if r := berth(t, "events", "--filter", "bogus=1", "--until", "0s"); r.code == 0 {
		t.Errorf("events with an unknown filter succeeded: %v", r)
	}
}

func TestEventsFollow(t *testing.T) {
	name := "obs-events-follow"
	cleanupContainer(t, name)
	cmd := berthCmd("events", "--format", "{{.Type}} {{.Action}} {{.Actor.ID}} {{index .Actor.Attributes \"name\"}}")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// Synchronize: make volumes until the follower reports one, so the
	// follower is known to be reading before the container runs.
	synced := false
	for i := 0; i < 50 && !synced; i++ {
		vol := fmt.Sprintf("obs-sync-%d", i)
		ok(t, "volume", "create", vol)
		t.Cleanup(func() { berthCmd("volume", "rm", vol).Run() })
		deadline := time.After(300 * time.Millisecond)
	wait:
		for {
			select {
			case l := <-lines:
				if strings.HasPrefix(l, "volume create ") {
					synced = true
					break wait
				}
			case <-deadline:
				break wait
			}
		}
	}
	if !synced {
		t.Fatal("the follower never reported a volume create")
	}
	id := strings.TrimSpace(ok(t, "run", "-d", "--name", name, "busybox", "sleep", "1000"))
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, open := <-lines:
			if !open {
				t.Fatal("berth events exited")
			}
			if l == "container start "+id+" "+name {
				// Interrupting ends the follower with 0.
				cmd.Process.Signal(os.Interrupt)
				if err := cmd.Wait(); err != nil {
					t.Errorf("berth events after an interrupt: %v", err)
				}
				return
			}
		case <-timeout:
			t.Fatal("no start event from the follower")
		}
	}
}
