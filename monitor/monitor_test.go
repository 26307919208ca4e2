package monitor_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berth-project/berth/internal/testbuild"
	"github.com/berth-project/berth/internal/testimage"
	"github.com/berth-project/berth/monitor"
)

// Set once by TestMain.
var (
	baseDir  string
	berthExe string // the static berth binary from scripts/build.sh
	rootfs   string // busybox, shared read-only by every container
	template []byte // config.json from `berth runtime spec`
	idPrefix string
	idSeq    atomic.Int64
)

const helperEnv = "BERTH_MONITOR_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		startHelper()
		return
	}
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "monitor: tests must run as root: they run real containers")
		return 1
	}
	var err error
	if baseDir, err = os.MkdirTemp("", "berth-monitor-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(baseDir)
	idPrefix = fmt.Sprintf("mon%d-", os.Getpid())
	if err := setup(); err != nil {
		fmt.Fprintf(os.Stderr, "monitor: setup: %v\n", err)
		return 1
	}
	return m.Run()
}

func setup() error {
	exe, err := testbuild.Berth(filepath.Join(baseDir, "bin"))
	if err != nil {
		return err
	}
	berthExe = exe

	img := filepath.Join(baseDir, "images")
	if err := testimage.Make(img, "busybox"); err != nil {
		return err
	}
	layer, _, err := testimage.LayerPath(filepath.Join(img, "busybox"), 0)
	if err != nil {
		return err
	}
	rootfs = filepath.Join(baseDir, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("tar", "-xzf", layer, "-C", rootfs).CombinedOutput(); err != nil {
		return fmt.Errorf("unpack %s: %v\n%s", layer, err, out)
	}
	spec := filepath.Join(baseDir, "spec")
	if err := os.Mkdir(spec, 0o755); err != nil {
		return err
	}
	if out, err := exec.Command(berthExe, "runtime", "spec", "--bundle", spec).CombinedOutput(); err != nil {
		return fmt.Errorf("berth runtime spec: %v\n%s", err, out)
	}
	template, err = os.ReadFile(filepath.Join(spec, "config.json"))
	return err
}

// ctr is one test container: its runtime root, bundle and run dir.
type ctr struct {
	t                   *testing.T
	id, root, runDir    string
	bundle, pidFile     string
	started             monitor.Started
	terminal, keepState bool
}

// newCtr writes a bundle running args (spec adjusted by mod) and
// registers the cleanup of whatever gets started from it.
func newCtr(t *testing.T, args []string, mod func(*specs.Spec)) *ctr {
	t.Helper()
	var s specs.Spec
	if err := json.Unmarshal(template, &s); err != nil {
		t.Fatal(err)
	}
	s.Root = &specs.Root{Path: rootfs, Readonly: true}
	s.Process.Terminal = false
	s.Process.Args = args
	if mod != nil {
		mod(&s)
	}
	c := &ctr{t: t, id: idPrefix + strconv.FormatInt(idSeq.Add(1), 10), root: t.TempDir(),
		runDir: t.TempDir(), bundle: t.TempDir(), terminal: s.Process.Terminal}
	c.pidFile = filepath.Join(c.runDir, "pid")
	data, err := json.Marshal(&s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.bundle, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c.started.MonitorPID > 0 {
			syscall.Kill(c.started.MonitorPID, syscall.SIGKILL)
		}
		if out, err := exec.Command(berthExe, "runtime", "--root", c.root, "delete", "-f", c.id).CombinedOutput(); err != nil &&
			!strings.Contains(string(out), "not exist") {
			t.Logf("delete -f %s: %v: %s", c.id, err, out)
		}
	})
	return c
}

func (c *ctr) opts() monitor.Options {
	rt := []string{berthExe, "runtime", "--root", c.root, "--log", filepath.Join(c.runDir, monitor.RuntimeLog),
		"--log-format", "json", "run", "--detach", "--bundle", c.bundle, "--pid-file", c.pidFile}
	if c.terminal {
		rt = append(rt, "--console-socket", monitor.ConsoleSocket)
	}
	return monitor.Options{
		Exe:     berthExe,
		RunDir:  c.runDir,
		Runtime: append(rt, c.id),
		PidFile: c.pidFile,
		LogPath: filepath.Join(c.runDir, "json.log"),
	}
}

func (c *ctr) start(o monitor.Options) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := monitor.Start(ctx, o)
	if err != nil {
		c.t.Fatalf("Start: %v", err)
	}
	c.started = s
}

func (c *ctr) startAttached(o monitor.Options) *monitor.Conn {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, conn, err := monitor.StartAttached(ctx, o)
	if err != nil {
		c.t.Fatalf("StartAttached: %v", err)
	}
	c.started = s
	c.t.Cleanup(func() { conn.Close() })
	return conn
}

// waitExit waits for the exit file.
func (c *ctr) waitExit() (int, time.Time) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, fin, ok, err := monitor.ReadExit(c.runDir)
		if err != nil {
			c.t.Fatal(err)
		}
		if ok {
			return code, fin
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("container %s: no exit file after 20s", c.id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitGone waits until pid no longer exists (or is a zombie).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still alive after 10s", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

type entry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

func readLog(t *testing.T, path string) []entry {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []entry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("%s: line %q: %v", path, sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

func TestLogStreamsAndEscaping(t *testing.T) {
	script := `echo out1; echo err1 >&2; printf 'q"b\\t\tx\001\377\n'; ` +
		`head -c 20480 /dev/zero | tr '\0' a; echo; printf partial; exit 3`
	c := newCtr(t, []string{"sh", "-c", script}, nil)
	before := time.Now()
	c.start(c.opts())
	if c.started.Pid <= 0 || c.started.MonitorPID <= 0 {
		t.Fatalf("Started = %+v", c.started)
	}
	code, fin := c.waitExit()
	if code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	if fin.Before(before) || fin.After(time.Now()) {
		t.Errorf("finished %v, not between %v and now", fin, before)
	}
	waitGone(t, c.started.MonitorPID)
	got := readLog(t, filepath.Join(c.runDir, "json.log"))
	a16 := strings.Repeat("a", 16384)
	want := []entry{
		{Log: "out1\n", Stream: "stdout"},
		{Log: "err1\n", Stream: "stderr"},
		{Log: "q\"b\\t\tx\x01\ufffd\n", Stream: "stdout"},
		{Log: a16, Stream: "stdout"},
		{Log: strings.Repeat("a", 20480-16384) + "\n", Stream: "stdout"},
		{Log: "partial", Stream: "stdout"},
	}
	if len(got) != len(want) {
		t.Fatalf("log has %d entries, want %d: %+v", len(got), len(want), got)
	}
	// Two pipes: order is kept within a stream, not across them.
	byStream := func(es []entry) (out []entry) {
		for _, s := range []string{"stdout", "stderr"} {
			for _, e := range es {
				if e.Stream == s {
					out = append(out, e)
				}
			}
		}
		return out
	}
	got, want = byStream(got), byStream(want)
	for i := range want {
		if got[i].Log != want[i].Log || got[i].Stream != want[i].Stream {
			t.Errorf("entry %d = %q on %s, want %q on %s", i, trunc(got[i].Log), got[i].Stream, trunc(want[i].Log), want[i].Stream)
		}
		if got[i].Time.Before(before) || got[i].Time.After(fin) {
			t.Errorf("entry %d time %v not between %v and %v", i, got[i].Time, before, fin)
		}
	}
	raw, _ := os.ReadFile(filepath.Join(c.runDir, "json.log"))
	if !bytes.Contains(raw, []byte(`"log":"q\"b\\t\tx\u0001\ufffd\n"`)) {
		t.Errorf("escaping differs from encoding/json's: %s", raw[:min(len(raw), 200)])
	}
	if _, err := os.Stat(filepath.Join(c.runDir, monitor.AttachSocket)); err == nil {
		t.Errorf("attach socket left after the monitor exited")
	}
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}

func TestAttachStdinAndExitFrame(t *testing.T) {
	c := newCtr(t, []string{"sh", "-c", "cat; echo done >&2; exit 7"}, nil)
	o := c.opts()
	o.Stdin, o.StdinOnce = true, true
	conn := c.startAttached(o)
	if _, err := conn.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	if err := conn.CloseStdin(); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code, err := conn.Stream(&out, &errb)
	if err != nil {
		t.Fatal(err)
	}
	if code != 7 || out.String() != "hello\n" || errb.String() != "done\n" {
		t.Errorf("Stream: code %d stdout %q stderr %q, want 7 %q %q", code, out.String(), errb.String(), "hello\n", "done\n")
	}
	if code, _ := c.waitExit(); code != 7 {
		t.Errorf("exit file: %d, want 7", code)
	}
}

func TestSigkill(t *testing.T) {
	c := newCtr(t, []string{"sleep", "3600"}, nil)
	c.start(c.opts())
	if err := syscall.Kill(c.started.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code, _ := c.waitExit(); code != 137 {
		t.Errorf("exit code %d, want 137", code)
	}
}

func TestRuntimeError(t *testing.T) {
	c := newCtr(t, []string{"/no/such/command"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := monitor.Start(ctx, c.opts())
	if err == nil {
		t.Fatal("Start of a missing command succeeded")
	}
	if !strings.Contains(err.Error(), "/no/such/command") {
		t.Errorf("error does not name the command: %v", err)
	}
	t.Logf("error: %v", err)
	if _, _, ok, _ := monitor.ReadExit(c.runDir); ok {
		t.Errorf("exit file written for a container that never ran")
	}
}

func TestTerminalResize(t *testing.T) {
	c := newCtr(t, []string{"sh", "-c", "read x; stty size; exit 0"}, func(s *specs.Spec) { s.Process.Terminal = true })
	o := c.opts()
	o.Terminal, o.Stdin = true, true
	conn := c.startAttached(o)
	if err := conn.Resize(41, 101); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("go\n")); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	code, err := conn.Stream(&out, &out)
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || !strings.Contains(out.String(), "41 101") {
		t.Errorf("code %d, output %q: want 0 and \"41 101\"", code, out.String())
	}
	for _, e := range readLog(t, o.LogPath) {
		if e.Stream != "stdout" {
			t.Errorf("terminal output logged on %s", e.Stream)
		}
	}
}

func TestLogRotation(t *testing.T) {
	c := newCtr(t, []string{"sh", "-c", `i=0; while [ $i -lt 200 ]; do echo "line $i of the rotation test"; i=$((i+1)); done`}, nil)
	o := c.opts()
	o.LogMaxSize, o.LogMaxFiles = 2000, 3
	c.start(o)
	c.waitExit()
	waitGone(t, c.started.MonitorPID)
	var all []entry
	for _, name := range []string{"json.log.2", "json.log.1", "json.log"} {
		p := filepath.Join(c.runDir, name)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > o.LogMaxSize {
			t.Errorf("%s has %d bytes, max %d", name, fi.Size(), o.LogMaxSize)
		}
		all = append(all, readLog(t, p)...)
	}
	if _, err := os.Stat(filepath.Join(c.runDir, "json.log.3")); err == nil {
		t.Errorf("json.log.3 exists: max-file 3 keeps 3 files")
	}
	if len(all) < 20 || len(all) >= 200 {
		t.Fatalf("%d entries in the rotated files", len(all))
	}
	first := 200 - len(all)
	for i, e := range all {
		if want := fmt.Sprintf("line %d of the rotation test\n", first+i); e.Log != want {
			t.Fatalf("entry %d = %q, want %q", i, e.Log, want)
		}
	}
}

// startHelper runs in a child test process: it starts a monitor, prints
// its pid and the container's, and sleeps until killed.
func startHelper() {
	var o monitor.Options
	if err := json.Unmarshal([]byte(os.Getenv(helperEnv)), &o); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	s, err := monitor.Start(context.Background(), o)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(s.MonitorPID, s.Pid)
	time.Sleep(time.Hour)
}

func TestSurvivesCaller(t *testing.T) {
	c := newCtr(t, []string{"sleep", "3600"}, nil)
	o := c.opts()
	js, _ := json.Marshal(o)
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), helperEnv+"="+string(js))
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { helper.Process.Kill(); helper.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	if _, err := fmt.Sscan(line, &c.started.MonitorPID, &c.started.Pid); err != nil {
		t.Fatalf("helper said %q", line)
	}
	if ppid := ppidOf(t, c.started.MonitorPID); ppid == helper.Process.Pid {
		t.Errorf("the monitor is a child of its caller")
	}
	helper.Process.Kill()
	helper.Wait()
	time.Sleep(100 * time.Millisecond)
	if !alive(c.started.MonitorPID) || !alive(c.started.Pid) {
		t.Fatalf("monitor (%v) or container (%v) died with the caller", alive(c.started.MonitorPID), alive(c.started.Pid))
	}
	// The monitor still works: it records the container's end.
	syscall.Kill(c.started.Pid, syscall.SIGKILL)
	if code, _ := c.waitExit(); code != 137 {
		t.Errorf("exit code %d, want 137", code)
	}
}

func ppidOf(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}

func TestExitCommandAndHealth(t *testing.T) {
	c := newCtr(t, []string{"sleep", "1.5"}, nil)
	o := c.opts()
	marker := filepath.Join(t.TempDir(), "exited")
	health := filepath.Join(t.TempDir(), "health")
	o.ExitCommand = []string{"/bin/sh", "-c", "cat \"$0\"/exit > \"$1\"", c.runDir, marker}
	o.HealthCmd = []string{"/bin/sh", "-c", "echo x >> \"$0\"", health}
	o.HealthInterval = 200 * time.Millisecond
	c.start(o)
	code, _ := c.waitExit()
	deadline := time.Now().Add(10 * time.Second)
	var data []byte
	for {
		var err error
		if data, err = os.ReadFile(marker); err == nil && len(data) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the exit command did not run: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.HasPrefix(string(data), strconv.Itoa(code)+" ") {
		t.Errorf("exit command saw exit file %q", data)
	}
	h, err := os.ReadFile(health)
	if err != nil {
		t.Fatalf("health command never ran: %v", err)
	}
	if n := strings.Count(string(h), "x"); n < 4 || n > 8 {
		t.Errorf("health command ran %d times in 1.5s at 200ms intervals", n)
	}
}

func withInit(s *specs.Spec) {
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/dev/init", Type: "bind", Source: berthExe,
		Options: []string{"bind", "ro"}})
}

func TestInit(t *testing.T) {
	script := `(sleep 0.2 &); sleep 1; cat /proc/[0-9]*/stat > /dev/stderr; sleep 100 & exit 5`
	c := newCtr(t, []string{"/dev/init", "--", "sh", "-c", script}, withInit)
	c.start(c.opts())
	if code, _ := c.waitExit(); code != 5 {
		t.Errorf("exit code %d, want 5", code)
	}
	waitGone(t, c.started.MonitorPID)
	var stats string
	for _, e := range readLog(t, filepath.Join(c.runDir, "json.log")) {
		stats += e.Log
	}
	if !strings.Contains(stats, "(init)") {
		t.Errorf("no /proc stats of init logged: %q", stats)
	}
	for _, l := range strings.Split(stats, "\n") {
		if strings.Contains(l, ") Z ") {
			t.Errorf("zombie in the container: %s", l)
		}
	}
}

func TestInitExecFailure(t *testing.T) {
	c := newCtr(t, []string{"/dev/init", "--", "no-such-command"}, withInit)
	c.start(c.opts())
	if code, _ := c.waitExit(); code != 127 {
		t.Errorf("exit code %d, want 127", code)
	}
	waitGone(t, c.started.MonitorPID)
	ents := readLog(t, filepath.Join(c.runDir, "json.log"))
	if len(ents) != 1 || ents[0].Stream != "stderr" || !strings.Contains(ents[0].Log, "no-such-command") {
		t.Errorf("log %+v: want one stderr line naming the command", ents)
	}
}

// TestMemory measures the proportional set size of 10 monitors of idle
// containers: the target is well below conmon's 0.36 MiB each.
func TestMemory(t *testing.T) {
	const n = 10
	var pids []int
	for i := 0; i < n; i++ {
		c := newCtr(t, []string{"sleep", "3600"}, nil)
		c.start(c.opts())
		pids = append(pids, c.started.MonitorPID)
	}
	time.Sleep(200 * time.Millisecond)
	var total int
	for _, pid := range pids {
		total += pssKiB(t, pid)
	}
	avg := float64(total) / n
	if roll, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pids[0])); err == nil {
		t.Logf("smaps_rollup of one monitor:\n%s", roll)
	}
	t.Logf("monitor PSS: %.0f KiB average over %d monitors (%.3f MiB)", avg, n, avg/1024)
	if avg > 0.36*1024 {
		t.Errorf("monitor PSS %.0f KiB is above conmon's 0.36 MiB", avg)
	}
}

func pssKiB(t *testing.T, pid int) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "Pss:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return kb
		}
	}
	t.Fatalf("no Pss in smaps_rollup of %d", pid)
	return 0
}

// TestNoFdLeaks checks that the container's process gets only its stdio
// from the monitor, and that the monitor holds only what it needs.
func TestNoFdLeaks(t *testing.T) {
	c := newCtr(t, []string{"sh", "-c", "ls -l /proc/$$/fd; sleep 3600"}, nil)
	o := c.opts()
	o.Stdin = true
	c.start(o)
	deadline := time.Now().Add(10 * time.Second)
	var ents []entry
	for {
		ents = readLog(t, o.LogPath)
		if len(ents) >= 4 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	var fds []string
	for _, e := range ents {
		if f := strings.Fields(e.Log); len(f) > 2 && f[len(f)-2] == "->" {
			fds = append(fds, f[len(f)-3])
		}
	}
	if strings.Join(fds, " ") != "0 1 2" {
		t.Errorf("the container's shell has fds %v, want 0 1 2:\n%+v", fds, ents)
	}
	// stdio, signalfd, attach socket, stdout, stderr, stdin, log. The
	// monitor closes its sync socket just after its report that Start
	// waits for, so give it a moment.
	var mon []os.DirEntry
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var err error
		if mon, err = os.ReadDir(fmt.Sprintf("/proc/%d/fd", c.started.MonitorPID)); err != nil {
			t.Fatal(err)
		}
		if len(mon) <= 9 || time.Now().After(deadline) {
			break
		}
	}
	if len(mon) != 9 {
		var l []string
		for _, e := range mon {
			dst, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", c.started.MonitorPID, e.Name()))
			l = append(l, e.Name()+"->"+dst)
		}
		t.Errorf("monitor holds %d fds, want 9: %v", len(mon), l)
	}
}

func TestBadLogPath(t *testing.T) {
	c := newCtr(t, []string{"true"}, nil)
	o := c.opts()
	o.LogPath = filepath.Join(c.runDir, "missing", "json.log")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := monitor.Start(ctx, o)
	if err == nil || !strings.Contains(err.Error(), o.LogPath) {
		t.Errorf("Start with an unwritable log: %v, want an error naming %s", err, o.LogPath)
	}
}

// TestStuckClient checks that a client that never reads cannot stall the
// container's output: the monitor drops it and goes on logging.
func TestStuckClient(t *testing.T) {
	c := newCtr(t, []string{"sh", "-c", `sleep 0.3; yes $(head -c 999 /dev/zero | tr '\0' a) | head -n 4000`}, nil)
	o := c.opts()
	c.start(o)
	stuck, err := monitor.Attach(c.runDir)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Close()
	c.waitExit()
	if n := len(readLog(t, o.LogPath)); n != 4000 {
		t.Errorf("log has %d entries, want 4000", n)
	}
	// The dropped client sees the end of its stream, not an exit frame.
	code, err := stuck.Stream(io.Discard, io.Discard)
	if err == nil && code != -1 {
		t.Errorf("stuck client got exit code %d, want none", code)
	}
}

// TestClaimCleanup: a client that claimed the cleanup and received the
// exit frame stops the monitor from starting the exit command; a client
// that claimed and went away before the exit does not. Options.ClaimCleanup
// claims before the container starts, so that a container that exits at
// once (`true`) cannot beat the claim.
func TestClaimCleanup(t *testing.T) {
	for _, tc := range []struct {
		name        string
		stay, early bool
	}{{"stay", true, false}, {"leave", false, false}, {"early claim, exits at once", true, true}} {
		stay := tc.stay
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"sleep", "0.5"}
			if tc.early {
				args = []string{"true"}
			}
			c := newCtr(t, args, nil)
			o := c.opts()
			o.Attach = true
			o.ClaimCleanup = tc.early
			marker := filepath.Join(t.TempDir(), "exited")
			o.ExitCommand = []string{"/bin/sh", "-c", "echo ran > \"$0\"", marker}
			conn := c.startAttached(o)
			if !tc.early {
				if err := conn.ClaimCleanup(); err != nil {
					t.Fatal(err)
				}
			}
			if stay {
				code, err := conn.Stream(io.Discard, io.Discard)
				if err != nil || code != 0 {
					t.Fatalf("Stream = %d, %v", code, err)
				}
			} else {
				conn.Close()
			}
			c.waitExit()
			waitGone(t, c.started.MonitorPID)
			// The exit command is started before the monitor exits;
			// give a started shell time to write.
			deadline := time.Now().Add(3 * time.Second)
			for {
				_, err := os.Stat(marker)
				ran := err == nil
				if ran && stay {
					t.Fatal("the exit command ran although the claiming client got the exit frame")
				}
				if ran || time.Now().After(deadline) {
					if !ran && !stay {
						t.Fatal("the exit command did not run after the claiming client left")
					}
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestHealthTiming: checks are timed as docker times them, from the end
// of the last one: the start interval during the start period, then the
// interval; never two at once.
func TestHealthTiming(t *testing.T) {
	c := newCtr(t, []string{"sleep", "2.5"}, nil)
	o := c.opts()
	times := filepath.Join(t.TempDir(), "times")
	o.HealthCmd = []string{"/bin/sh", "-c", `echo "s $(date +%s%N)" >> "$0"; sleep 0.15; echo "e $(date +%s%N)" >> "$0"`, times}
	o.HealthInterval, o.HealthStartInterval, o.HealthStartPeriod = time.Second, 100*time.Millisecond, 700*time.Millisecond
	c.start(o)
	c.waitExit()
	data, err := os.ReadFile(times)
	if err != nil {
		t.Fatalf("health command never ran: %v", err)
	}
	var starts, ends []int64
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("times file line %q", line)
		}
		v, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		if f[0] == "s" {
			if len(starts) != len(ends) {
				t.Fatalf("a check started while another ran:\n%s", data)
			}
			starts = append(starts, v)
		} else {
			ends = append(ends, v)
		}
	}
	if len(starts) < 3 {
		t.Fatalf("%d checks in 2.5 s with a 100 ms start interval for 700 ms:\n%s", len(starts), data)
	}
	long := false
	for i := 1; i < len(starts); i++ {
		gap := time.Duration(starts[i] - ends[i-1])
		if gap < 80*time.Millisecond {
			t.Errorf("check %d started %v after the last one ended, want ≥ the 100 ms start interval", i, gap)
		}
		long = long || gap >= 900*time.Millisecond
	}
	if !long {
		t.Errorf("no check waited the 1 s interval after the start period:\n%s", data)
	}
}
