package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-project/berth/internal/hostnetlock"
	"github.com/berth-project/berth/internal/testbuild"
	"github.com/berth-project/berth/internal/testimage"
)

var (
	baseDir  string // everything of this test run
	berthExe string
	storeDir string // --root
	runDir   string // --runroot
)

func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "tests/engine: needs root (real containers)")
		os.Exit(1)
	}
	var err error
	if baseDir, err = os.MkdirTemp("", "berth-engine-"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if err := setup(); err != nil {
		fmt.Fprintln(os.Stderr, "tests/engine: setup:", err)
		teardown()
		return 1
	}
	// The suite removes the links and rules that appeared while it ran:
	// other tests that change the host network wait.
	unlock, err := hostnetlock.Lock()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests/engine:", err)
		teardown()
		return 1
	}
	defer unlock()
	// bridge is the default network: the tests' containers make the
	// berth0 bridge and CNI's iptables chains, which are removed after.
	net, err := snapshotHostNet()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests/engine:", err)
		teardown()
		return 1
	}
	code := m.Run()
	if err := teardown(); err != nil {
		fmt.Fprintln(os.Stderr, "tests/engine: teardown:", err)
		code = 1
	}
	if err := net.restore(); err != nil {
		fmt.Fprintln(os.Stderr, "tests/engine: teardown:", err)
		code = 1
	}
	return code
}

func setup() error {
	exe, err := testbuild.Berth(filepath.Join(baseDir, "bin"))
	if err != nil {
		return err
	}
	berthExe = exe
	storeDir = filepath.Join(baseDir, "root")
	runDir = filepath.Join(baseDir, "run")
	img := filepath.Join(baseDir, "images")
	if err := testimage.Make(img, "busybox"); err != nil {
		return fmt.Errorf("busybox test image (needs Debian's busybox-static): %w", err)
	}
	if out, err := berthCmd("load", "-q", "-i", filepath.Join(img, "busybox"), "busybox").CombinedOutput(); err != nil {
		return fmt.Errorf("berth load: %v\n%s", err, out)
	}
	return nil
}

// teardown removes every container the tests left (a failed test may
// leave some), then the directories, refusing to remove through a mount.
func teardown() error {
	out, _ := berthCmd("ps", "-aq", "--no-trunc").Output()
	for _, id := range strings.Fields(string(out)) {
		berthCmd("rm", "-f", "-v", id).Run()
	}
	// What runs on after the CLI returned (the network teardown worker
	// a --rm run hands its netns to, a monitor's cleanup) may hold a
	// mount a little longer: a leak is a mount still there after that.
	var left []string
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		left = mountsUnder(baseDir)
		if len(left) == 0 || time.Now().After(end) {
			break
		}
	}
	if len(left) > 0 {
		return fmt.Errorf("mounts left under %s, not removing it: %s", baseDir, strings.Join(left, ", "))
	}
	return os.RemoveAll(baseDir)
}

// mountsUnder lists the mount points at or below dir.
func mountsUnder(dir string) []string {
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	var ms []string
	for _, l := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(l); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			ms = append(ms, f[4])
		}
	}
	return ms
}

// berthCmd is the berth CLI on the test store.
func berthCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(berthExe, append([]string{"--root", storeDir, "--runroot", runDir}, args...)...)
	cmd.Env = append(os.Environ(), "BERTH_REGISTRIES_CONF=/nonexistent")
	return cmd
}

// result is one berth command's outcome.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout: %q\nstderr: %q", r.code, r.stdout, r.stderr)
}

// berth runs the berth CLI and returns what it printed and its exit code.
func berth(t testing.TB, args ...string) result {
	t.Helper()
	return berthIn(t, "", args...)
}

// berthIn runs berth with stdin.
func berthIn(t testing.TB, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := berthCmd(args...)
	cmd = exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	cmd.Env = append(os.Environ(), "BERTH_REGISTRIES_CONF=/nonexistent")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		t.Fatalf("berth %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// ok runs berth and fails the test unless it exits 0; it returns stdout.
func ok(t testing.TB, args ...string) string {
	t.Helper()
	r := berth(t, args...)
	if r.code != 0 {
		t.Fatalf("berth %s: %v", strings.Join(args, " "), r)
	}
	return r.stdout
}

// cleanupContainer removes the container when the test ends.
func cleanupContainer(t testing.TB, ref string) {
	t.Cleanup(func() { berthCmd("rm", "-f", "-v", ref).Run() })
}

// inspect returns the container's docker-shaped inspect document.
func inspect(t testing.TB, ref string) map[string]any {
	t.Helper()
	var v []map[string]any
	if err := json.Unmarshal([]byte(ok(t, "inspect", ref)), &v); err != nil || len(v) != 1 {
		t.Fatalf("inspect %s: %v %v", ref, v, err)
	}
	return v[0]
}

// field walks a decoded JSON document: field(doc, "State", "Status").
func field(doc map[string]any, path ...string) any {
	var v any = doc
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// psNames returns the names ps -a lists.
func psNames(t testing.TB) []string {
	t.Helper()
	return strings.Fields(ok(t, "ps", "-a", "--format", "{{.Names}}"))
}

// status is the container's State.Status, "" when there is none.
func status(t testing.TB, ref string) string {
	t.Helper()
	r := berth(t, "inspect", "--format", "{{.State.Status}}", ref)
	return strings.TrimSpace(r.stdout)
}
