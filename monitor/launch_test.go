package monitor_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-project/berth/monitor"
)

// launch starts a monitor with Launch and has it start /bin/sh as stage 0
// with files as fds 3...; the shell reads its commands from the
// container's stdin, which the returned attach connection feeds.
func launch(t *testing.T, files []*os.File) (*monitor.Launcher, *monitor.Conn, int, string) {
	t.Helper()
	runDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := monitor.Launch(ctx, monitor.Options{Exe: berthExe, RunDir: runDir, Stdin: true, Attach: true,
		LogPath: filepath.Join(runDir, "json.log")})
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	t.Cleanup(func() {
		l.Abort()
		syscall.Kill(l.MonitorPID(), syscall.SIGKILL)
	})
	if l.Conn() == nil {
		t.Fatal("Launch with Attach returned no connection")
	}
	sh, err := os.Open("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	defer sh.Close()
	pid, err := l.StartStage0(sh, []string{"PATH=/usr/bin:/bin", "GREETING=hello"}, files)
	if err != nil {
		t.Fatalf("StartStage0: %v", err)
	}
	if ppidOf(t, pid) != l.MonitorPID() {
		t.Fatalf("stage 0 (pid %d) is not the monitor's (%d) child", pid, l.MonitorPID())
	}
	return l, l.Conn(), pid, runDir
}

// TestLaunch: the caller creates the container; the monitor runs its stage
// 0 with the environment, stdio and files asked for, takes it over as the
// container's init once told, and records its exit as for Start.
func TestLaunch(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	l, conn, pid, runDir := launch(t, []*os.File{w})
	w.Close()
	started, err := l.Running(pid)
	if err != nil {
		t.Fatalf("Running: %v", err)
	}
	if started.Pid != pid || started.MonitorPID != l.MonitorPID() {
		t.Fatalf("Running: %+v, want pid %d monitor %d", started, pid, l.MonitorPID())
	}
	if _, err := conn.Write([]byte("echo $GREETING; echo to-fd-3 >&3; echo oops >&2; exit 7\n")); err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	code, err := conn.Stream(&out, &errOut)
	if err != nil || code != 7 {
		t.Fatalf("Stream: code %d, %v", code, err)
	}
	if out.String() != "hello\n" || errOut.String() != "oops\n" {
		t.Fatalf("stdout %q stderr %q", out.String(), errOut.String())
	}
	if got, _ := io.ReadAll(r); string(got) != "to-fd-3\n" {
		t.Fatalf("fd 3 carried %q", got)
	}
	if code, _, ok, _ := monitor.ReadExit(runDir); !ok || code != 7 {
		t.Fatalf("exit file: %d %v", code, ok)
	}
	if logs := readLog(t, filepath.Join(runDir, "json.log")); len(logs) != 2 {
		t.Fatalf("log: %+v", logs)
	}
}

// TestLaunchNotAChild: a pid Running names that is not the monitor's
// unreaped child (here stage 0 itself, which the monitor reaps) gets the
// unknown status 255, not a monitor waiting forever.
func TestLaunchNotAChild(t *testing.T) {
	l, conn, pid, runDir := launch(t, nil)
	conn.Write([]byte("exit 4\n"))
	waitGone(t, pid)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
			break // reaped
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := l.Running(pid); err != nil {
		t.Fatalf("Running: %v", err)
	}
	if code, err := conn.Stream(io.Discard, io.Discard); err != nil || code != 255 {
		t.Fatalf("Stream: %d %v, want 255", code, err)
	}
	if code, _, ok, _ := monitor.ReadExit(runDir); !ok || code != 255 {
		t.Fatalf("exit file: %d %v", code, ok)
	}
}

// TestLaunchAbort: a caller that gives up (or dies) before the container
// runs leaves nothing: the monitor kills stage 0 and exits, with no exit
// file and no sockets left.
func TestLaunchAbort(t *testing.T) {
	l, _, pid, runDir := launch(t, nil)
	mon := l.MonitorPID()
	l.Abort()
	waitGone(t, pid)
	waitGone(t, mon)
	if _, _, ok, _ := monitor.ReadExit(runDir); ok {
		t.Fatal("an aborted start recorded an exit")
	}
	if _, err := os.Stat(filepath.Join(runDir, monitor.AttachSocket)); err == nil {
		t.Fatal("the attach socket is left")
	}
}

// TestLaunchOptions: Launch refuses a Runtime (the caller is the runtime).
func TestLaunchOptions(t *testing.T) {
	_, err := monitor.Launch(context.Background(), monitor.Options{Exe: berthExe, RunDir: t.TempDir(), Runtime: []string{"/bin/true"}})
	if err == nil {
		t.Fatal("Launch with a Runtime succeeded")
	}
}
