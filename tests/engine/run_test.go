package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestRunForeground(t *testing.T) {
	r := berth(t, "run", "--rm", "--name", "fg", "busybox", "sh", "-c", "echo out; echo err >&2")
	if r.code != 0 || r.stdout != "out\n" || r.stderr != "err\n" {
		t.Fatalf("run: %v", r)
	}
	if slices.Contains(psNames(t), "fg") {
		t.Fatalf("--rm left the container: %v", psNames(t))
	}
	// Without --rm the container stays, exited, and its log has both
	// streams.
	cleanupContainer(t, "kept")
	ok(t, "run", "--name", "kept", "busybox", "sh", "-c", "echo one; echo two >&2")
	doc := inspect(t, "kept")
	if field(doc, "State", "Status") != "exited" || field(doc, "State", "ExitCode") != 0.0 {
		t.Fatalf("state: %v", field(doc, "State"))
	}
	r = berth(t, "logs", "kept")
	if r.stdout != "one\n" || r.stderr != "two\n" {
		t.Fatalf("logs: %v", r)
	}
	if got := ok(t, "logs", "--tail", "1", "kept"); got != "" {
		// the last line is on stderr
		t.Fatalf("logs --tail 1 stdout: %q", got)
	}
}

// TestRunRmVolatile: a --rm container's writable layer is a volatile
// overlay ("fsync=volatile" in the mount table of Linux 6.x; the layer is
// thrown away at the exit, so unmounting it must not sync
// berth's whole file system); a kept container's is not.
func TestRunRmVolatile(t *testing.T) {
	script := `awk '$2 == "/" && $3 == "overlay" { print ($4 ~ /(^|,)(fsync=)?volatile(,|$)/) ? "volatile" : "durable" }' /proc/mounts`
	if got := ok(t, "run", "--rm", "busybox", "sh", "-c", script); got != "volatile\n" {
		t.Errorf("run --rm: root mount is %q, want volatile", got)
	}
	cleanupContainer(t, "durable")
	if got := ok(t, "run", "--name", "durable", "busybox", "sh", "-c", script); got != "durable\n" {
		t.Errorf("run: root mount is %q, want durable", got)
	}
	// The kept container's layer mounts again (start, then diff after it).
	if got := ok(t, "start", "-a", "durable"); got != "durable\n" {
		t.Errorf("start -a: root mount is %q, want durable", got)
	}
}

func TestRunStdin(t *testing.T) {
	r := berthIn(t, "piped input\n", "run", "--rm", "-i", "busybox", "sh", "-c", "read x; echo got $x")
	if r.code != 0 || r.stdout != "got piped input\n" {
		t.Fatalf("run -i: %v", r)
	}
}

// TestExitCodes: the container's own code, 125 when berth fails, 126 when
// the command cannot be invoked, 127 when it is not found — with --rm too,
// and no container left behind by a failure.
func TestExitCodes(t *testing.T) {
	// An executable file that is no program: the exec itself fails.
	garbage := filepath.Join(t.TempDir(), "garbage")
	if err := os.WriteFile(garbage, []byte("\x00\x01\x02 not a program"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"own code", []string{"busybox", "sh", "-c", "exit 3"}, 3, ""},
		// Under --init the shell is not the namespace's init, which
		// SIGKILL from inside cannot kill.
		{"killed", []string{"--init", "busybox", "sh", "-c", "kill -9 $$"}, 137, ""},
		{"not found", []string{"busybox", "no-such-command"}, 127, "no-such-command"},
		{"not executable", []string{"busybox", "/etc/passwd"}, 126, "permission denied"},
		{"a directory", []string{"busybox", "/etc"}, 126, ""},
		{"exec format error", []string{"-v", garbage + ":/garbage:ro", "busybox", "/garbage"}, 126, "exec format error"},
		{"missing image", []string{"--pull", "never", "no-such-image"}, 125, "no-such-image"},
		{"bad memory", []string{"--memory", "12q", "busybox", "true"}, 125, "12q"},
		{"bad flag", []string{"--no-such-flag", "busybox"}, 125, "no-such-flag"},
		{"bad restart", []string{"--restart", "sometimes", "busybox", "true"}, 125, "sometimes"},
	} {
		for _, rm := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/rm=%v", tc.name, rm), func(t *testing.T) {
				before := psNames(t)
				args := []string{"run"}
				if rm {
					args = append(args, "--rm")
				}
				r := berth(t, append(args, tc.args...)...)
				if r.code != tc.code || !strings.Contains(strings.ToLower(r.stderr), tc.msg) {
					t.Fatalf("want exit %d mentioning %q, got %v", tc.code, tc.msg, r)
				}
				if tc.code == 125 && strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
					t.Errorf("a bad input gets one line: %q", r.stderr)
				}
				after := psNames(t)
				for _, n := range after {
					if !slices.Contains(before, n) {
						if rm || tc.code == 125 {
							t.Errorf("container %s left behind", n)
						} else if st := status(t, n); (tc.code == 126 || tc.code == 127) && st != "created" {
							// docker's: a start that failed leaves it created.
							t.Errorf("container %s that could not start is %q, want created", n, st)
						}
						berth(t, "rm", "-f", n)
					}
				}
			})
		}
	}
}

// TestDetachedLifecycle: run -d, ps, logs, exec, stop, start, restart,
// rm, with docker's refusals on the way.
func TestDetachedLifecycle(t *testing.T) {
	cleanupContainer(t, "life")
	id := strings.TrimSpace(ok(t, "run", "-d", "--name", "life", "busybox", "sh", "-c",
		"trap 'echo bye; exit 7' TERM; i=0; while true; do echo line $i; i=$((i+1)); sleep 0.1; done"))
	if len(id) != 64 {
		t.Fatalf("run -d printed %q, want a 64-hex id", id)
	}
	if got := ok(t, "ps", "--format", "{{.Names}} {{.State}}", "--filter", "name=life"); got != "life running\n" {
		t.Fatalf("ps: %q", got)
	}
	if got := ok(t, "ps", "-q"); !strings.Contains(got, id[:12]) {
		t.Fatalf("ps -q %q lacks %s", got, id[:12])
	}
	eventually(t, 10*time.Second, "log lines", func() bool {
		return strings.Contains(ok(t, "logs", "life"), "line 3\n")
	})
	if got := ok(t, "exec", "life", "sh", "-c", "echo $((6*7)); hostname"); got != "42\n"+id[:12]+"\n" {
		t.Fatalf("exec: %q", got)
	}
	if r := berth(t, "exec", "life", "no-such-cmd"); r.code != 127 {
		t.Fatalf("exec of a missing command: %v", r)
	}
	if r := berth(t, "exec", "life", "sh", "-c", "exit 4"); r.code != 4 {
		t.Fatalf("exec exit code: %v", r)
	}
	r := berth(t, "rm", "life")
	if r.code == 0 || !strings.Contains(r.stderr, "running") {
		t.Fatalf("rm of a running container: %v", r)
	}
	if r := berth(t, "run", "-d", "--name", "life", "busybox", "true"); r.code != 125 || !strings.Contains(r.stderr, "already in use") {
		t.Fatalf("a taken name: %v", r)
	}
	ok(t, "stop", "life")
	doc := inspect(t, "life")
	if field(doc, "State", "Status") != "exited" || field(doc, "State", "ExitCode") != 7.0 {
		t.Fatalf("after stop: %v", field(doc, "State"))
	}
	if !strings.Contains(ok(t, "logs", "--tail", "1", "life"), "bye") {
		t.Fatalf("the trap's output is not the last log line")
	}
	if r := berth(t, "exec", "life", "true"); r.code == 0 || !strings.Contains(r.stderr, "not running") {
		t.Fatalf("exec into a stopped container: %v", r)
	}
	ok(t, "start", "life")
	if field(inspect(t, "life"), "State", "Status") != "running" {
		t.Fatal("start did not start it")
	}
	ok(t, "restart", "-t", "5", "life")
	if field(inspect(t, "life"), "State", "Running") != true {
		t.Fatal("not running after restart")
	}
	ok(t, "kill", "life")
	eventually(t, 10*time.Second, "exit after kill", func() bool {
		return field(inspect(t, "life"), "State", "ExitCode") == 137.0
	})
	ok(t, "rm", "life")
	if r := berth(t, "inspect", "life"); r.code == 0 {
		t.Fatalf("inspect after rm: %v", r)
	}
}

// TestCLIKilled: the CLI of a foreground run is killed; the container
// keeps running and logging, and new berth processes manage it.
func TestCLIKilled(t *testing.T) {
	cleanupContainer(t, "orphan")
	cmd := berthCmd("run", "--name", "orphan", "busybox", "sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the container to run", func() bool {
		return status(t, "orphan") == "running"
	})
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	n1 := strings.Count(ok(t, "logs", "orphan"), "tick")
	eventually(t, 10*time.Second, "the log to grow", func() bool {
		return strings.Count(ok(t, "logs", "orphan"), "tick") > n1+3
	})
	if got := ok(t, "ps", "--filter", "name=orphan", "--format", "{{.State}}"); got != "running\n" {
		t.Fatalf("ps after the CLI died: %q", got)
	}
	ok(t, "stop", "-t", "1", "orphan")
	if st := field(inspect(t, "orphan"), "State", "Status"); st != "exited" {
		t.Fatalf("after stop: %v", st)
	}
}

// TestMonitorKilled: the monitor dies; the next berth command reports the
// container exited, with the reason, and nothing of it keeps running.
func TestMonitorKilled(t *testing.T) {
	cleanupContainer(t, "unwatched")
	id := strings.TrimSpace(ok(t, "run", "-d", "--name", "unwatched", "busybox", "sleep", "1000"))
	pid := int(field(inspect(t, "unwatched"), "State", "Pid").(float64))
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var ppid int
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "PPid:"); ok {
			ppid, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	if ppid <= 1 {
		t.Fatalf("the container's parent is %d, want its monitor", ppid)
	}
	if err := syscall.Kill(ppid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the monitor to go", func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", ppid))
		return err != nil
	})
	doc := inspect(t, "unwatched")
	if field(doc, "State", "Status") != "exited" || !strings.Contains(field(doc, "State", "Error").(string), "monitor") {
		t.Fatalf("after the monitor died: %v", field(doc, "State"))
	}
	eventually(t, 5*time.Second, "the container's process to be gone", func() bool {
		_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
		return err != nil
	})
	if mi, _ := os.ReadFile("/proc/self/mountinfo"); strings.Contains(string(mi), filepath.Join(storeDir, "containers", id)) {
		t.Fatalf("rootfs still mounted")
	}
}

// TestConcurrentRuns: 20 run -d at once all succeed, with distinct names,
// and the store stays sound.
func TestConcurrentRuns(t *testing.T) {
	const n = 20
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := berth(t, "run", "-d", "--label", "batch=concurrent", "busybox", "sleep", "1000")
			if r.code != 0 {
				errs[i] = fmt.Errorf("run %d: %v", i, r)
			}
			ids[i] = strings.TrimSpace(r.stdout)
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, id := range ids {
			if id != "" {
				berthCmd("rm", "-f", id).Run()
			}
		}
	})
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	names := strings.Fields(ok(t, "ps", "--filter", "label=batch=concurrent", "--format", "{{.Names}}"))
	slices.Sort(names)
	if len(slices.Compact(names)) != n {
		t.Fatalf("%d distinct running names, want %d: %v", len(names), n, names)
	}
	if r := berth(t, "system", "check"); r.code != 0 {
		t.Fatalf("system check: %v", r)
	}
	args := append([]string{"rm", "-f"}, ids...)
	ok(t, args...)
	if got := ok(t, "ps", "-a", "--filter", "label=batch=concurrent", "-q"); got != "" {
		t.Fatalf("left after rm -f: %q", got)
	}
}
