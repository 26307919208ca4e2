package runtime_test

import (
	"context"
	"encoding/json"
	"fmt"
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
)

const cmdTimeout = 30 * time.Second

var idSeq atomic.Int64

// rt is one runtime root (--root) and how berth-runc is invoked on it.
type rt struct {
	t    *testing.T
	root string
	bin  string
	out  string // directory of the captured stdout and stderr files
	cred *syscall.Credential
	env  []string
}

// newRT returns a runtime with its own --root below the test's temp dir.
func newRT(t *testing.T) *rt {
	t.Helper()
	return &rt{t: t, root: t.TempDir(), bin: berthRunc, out: t.TempDir()}
}

// result is one berth-runc invocation.
type result struct {
	args           []string
	stdout, stderr string
	code           int
	outFile        string // the invocation's stdout, which a created container inherits
	errFile        string // and its stderr
	dur            time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("berth-runc %s: exit %d\nstdout: %q\nstderr: %q",
		strings.Join(r.args, " "), r.code, r.stdout, r.stderr)
}

// output re-reads the invocation's stdout file: for create, what the
// container wrote since.
func (r result) output(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(r.outFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// errOutput re-reads the invocation's stderr file.
func (r result) errOutput(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(r.errFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// run invokes berth-runc --root ROOT args. stdout and stderr are files, so
// a container that inherits them cannot make the call wait.
func (r *rt) run(args ...string) result { return r.runIn("", args...) }

func (r *rt) runIn(stdin string, args ...string) result {
	r.t.Helper()
	full := append([]string{"--root", r.root}, args...)
	res := result{args: full}
	outF, err := os.CreateTemp(r.out, "stdout-")
	if err != nil {
		r.t.Fatal(err)
	}
	defer outF.Close()
	errF, err := os.CreateTemp(r.out, "stderr-")
	if err != nil {
		r.t.Fatal(err)
	}
	defer errF.Close()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, r.bin, full...)
	cmd.Stdout, cmd.Stderr = outF, errF
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if r.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: r.cred}
	}
	if r.env != nil {
		cmd.Env = r.env
	}
	start := time.Now()
	err = cmd.Run()
	res.dur = time.Since(start)
	if ctx.Err() != nil {
		r.t.Fatalf("berth-runc %s: timed out after %v", strings.Join(full, " "), cmdTimeout)
	}
	res.code = cmd.ProcessState.ExitCode()
	if err != nil && res.code < 0 {
		r.t.Fatalf("berth-runc %s: %v", strings.Join(full, " "), err)
	}
	res.outFile, res.errFile = outF.Name(), errF.Name()
	o, _ := os.ReadFile(outF.Name())
	e, _ := os.ReadFile(errF.Name())
	res.stdout, res.stderr = string(o), string(e)
	return res
}

// ok runs berth-runc and fails the test unless it exits 0.
func (r *rt) ok(args ...string) result {
	r.t.Helper()
	res := r.run(args...)
	if res.code != 0 {
		r.t.Fatalf("want success:\n%s", res)
	}
	return res
}

// fails runs berth-runc and fails the test unless it exits non-zero.
func (r *rt) fails(args ...string) result {
	r.t.Helper()
	res := r.run(args...)
	if res.code == 0 {
		r.t.Fatalf("want failure:\n%s", res)
	}
	return res
}

// newID returns a container id unique to the package run and removes the
// container (whatever state it is in) when the test ends.
func (r *rt) newID() string {
	id := idPrefix + strconv.FormatInt(idSeq.Add(1), 10)
	r.t.Cleanup(func() {
		r.run("delete", "-f", id)
		if left := removeCgroups(id); len(left) > 0 && !r.t.Failed() {
			r.t.Errorf("cgroups of %s left after delete -f (removed now): %v", id, left)
		}
	})
	return id
}

// newSpec returns the `spec` template made non-interactive, with the
// shared rootfs read-only and `sleep 3600` as the process.
func newSpec(t *testing.T) *specs.Spec {
	t.Helper()
	var s specs.Spec
	if err := json.Unmarshal(templateJS, &s); err != nil {
		t.Fatal(err)
	}
	s.Root = &specs.Root{Path: rootfsDir, Readonly: true}
	s.Process.Terminal = false
	s.Process.Args = []string{"sleep", "3600"}
	return &s
}

// writeBundle writes s as config.json in a new bundle directory.
func writeBundle(t *testing.T, s *specs.Spec) string {
	t.Helper()
	dir := t.TempDir()
	data, err := json.MarshalIndent(s, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// copyRootfs gives a test its own writable copy of the busybox rootfs.
func copyRootfs(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "rootfs")
	if out, err := exec.Command("cp", "-a", rootfsDir, dst).CombinedOutput(); err != nil {
		t.Fatalf("copy rootfs: %v: %s", err, out)
	}
	return dst
}

// create writes s as a bundle and creates a container from it.
func (r *rt) create(s *specs.Spec) (id, bundle string, res result) {
	r.t.Helper()
	bundle = writeBundle(r.t, s)
	id = r.newID()
	res = r.ok("create", "--bundle", bundle, id)
	return id, bundle, res
}

// start creates and starts a container from s.
func (r *rt) start(s *specs.Spec) (id string, st ociState, res result) {
	r.t.Helper()
	id, _, res = r.create(s)
	r.ok("start", id)
	return id, r.state(id), res
}

// runSpec runs a container from s in the foreground (`run`) and returns
// the invocation, whose stdout and stderr are the container's.
func (r *rt) runSpec(s *specs.Spec) result {
	r.t.Helper()
	bundle := writeBundle(r.t, s)
	id := r.newID()
	res := r.run("run", "--bundle", bundle, id)
	if _, err := os.Stat(filepath.Join(r.root, id)); err == nil {
		r.t.Errorf("run %s returned but left its state dir %s", id, filepath.Join(r.root, id))
	}
	return res
}

// sh runs `sh -c script` in a container from s and fails the test unless
// it exits 0. It returns the container's stdout.
func (r *rt) sh(s *specs.Spec, script string) string {
	r.t.Helper()
	s.Process.Args = []string{"sh", "-c", script}
	res := r.runSpec(s)
	if res.code != 0 {
		r.t.Fatalf("container failed:\n%s", res)
	}
	return res.stdout
}

// ociState is what `state` prints.
type ociState struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Pid         int               `json:"pid"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Owner       string            `json:"owner"`
	Annotations map[string]string `json:"annotations"`
}

func (r *rt) state(id string) ociState {
	r.t.Helper()
	res := r.ok("state", id)
	var st ociState
	if err := json.Unmarshal([]byte(res.stdout), &st); err != nil {
		r.t.Fatalf("state %s: %v\n%s", id, err, res)
	}
	return st
}

// waitStatus polls `state` until the container has status want.
func (r *rt) waitStatus(id, want string) ociState {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := r.state(id)
		if st.Status == want {
			return st
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("container %s: status %q, want %q", id, st.Status, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// oneLine checks that a failing command printed exactly one line on
// stderr and that it contains every want.
func oneLine(t *testing.T, res result, want ...string) {
	t.Helper()
	msg := strings.TrimRight(res.stderr, "\n")
	if msg == "" || strings.Contains(msg, "\n") {
		t.Errorf("want one error line on stderr, got %d lines:\n%s", strings.Count(msg, "\n")+1, res)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("stderr does not name %q:\n%s", w, res)
		}
	}
}

// nothingLeft checks that container id left no state directory, cgroup,
// process or mount (below bundle) behind.
func (r *rt) nothingLeft(id, bundle string) {
	r.t.Helper()
	if _, err := os.Lstat(filepath.Join(r.root, id)); err == nil {
		r.t.Errorf("state dir %s left behind", filepath.Join(r.root, id))
	}
	if d := cgroupDirs(id); len(d) > 0 {
		r.t.Errorf("cgroups left behind: %v", d)
	}
	for _, p := range procsInCgroup(id) {
		r.t.Errorf("process left behind: %s", p)
	}
	for _, mp := range mountPoints() {
		if bundle != "" && strings.HasPrefix(mp, bundle) {
			r.t.Errorf("mount %s left behind", mp)
		}
	}
}

// cgroupDirs lists cgroup directories, in every hierarchy mounted below
// /sys/fs/cgroup, whose name is id, or starts with it when id is the
// package prefix.
func cgroupDirs(id string) []string {
	var out []string
	filepath.WalkDir("/sys/fs/cgroup", func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if name := d.Name(); name == id || (id == idPrefix && strings.HasPrefix(name, id)) {
			out = append(out, p)
			return filepath.SkipDir
		}
		return nil
	})
	return out
}

// removeCgroups kills what is left in the cgroups of container id (only
// processes of the tests' containers can be there) and removes them, so
// a runtime bug does not leave them on the machine.
func removeCgroups(id string) []string {
	dirs := cgroupDirs(id)
	for _, d := range dirs {
		for _, l := range strings.Fields(readFileQuiet(filepath.Join(d, "cgroup.procs"))) {
			if pid, err := strconv.Atoi(l); err == nil && pid > 1 {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	for _, d := range dirs {
		for i := 0; i < 100; i++ {
			if err := syscall.Rmdir(d); err == nil || os.IsNotExist(err) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return dirs
}

func readFileQuiet(path string) string {
	data, _ := os.ReadFile(path)
	return string(data)
}

// procsInCgroup lists processes whose cgroup path mentions name.
func procsInCgroup(name string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !alive(pid) {
			// A zombie holds nothing but its pid until its reaper
			// (pid 1 here, for an orphaned init) collects it.
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/cgroup")
		if err != nil {
			continue
		}
		if cg := cgroupMatch(string(data), name); cg != "" {
			cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			out = append(out, fmt.Sprintf("pid %s (%s) in %s", e.Name(),
				strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " ")), cg))
		}
	}
	return out
}

// cgroupMatch returns the first path of a /proc/PID/cgroup text with an
// element that is name (or starts with the package prefix).
func cgroupMatch(procCgroup, name string) string {
	for _, line := range strings.Split(procCgroup, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, el := range strings.Split(parts[2], "/") {
			if el == name || (name == idPrefix && strings.HasPrefix(el, name)) {
				return parts[2]
			}
		}
	}
	return ""
}

// mountPoints lists the mount points of the test's mount namespace.
func mountPoints() []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 {
			out = append(out, unescapeMount(f[4]))
		}
	}
	return out
}

// unescapeMount decodes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// procStatus returns the value of one field of /proc/PID/status.
func procStatus(t *testing.T, pid int, field string) string {
	t.Helper()
	return statusField(t, readFile(t, fmt.Sprintf("/proc/%d/status", pid)), field)
}

// statusField finds "Field:\tvalue" in a /proc/PID/status text.
func statusField(t *testing.T, status, field string) string {
	t.Helper()
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in status:\n%s", field, status)
	return ""
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// hostCgroupDir returns the host directory of pid's cgroup in a v1
// controller's hierarchy.
func hostCgroupDir(t *testing.T, pid int, controller string) string {
	t.Helper()
	for _, line := range strings.Split(readFile(t, fmt.Sprintf("/proc/%d/cgroup", pid)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == controller {
				return filepath.Join("/sys/fs/cgroup", controller, parts[2])
			}
		}
	}
	t.Fatalf("pid %d has no %s cgroup", pid, controller)
	return ""
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && i+2 < len(s) && s[i+2] != 'Z' && s[i+2] != 'X'
}

// lines splits output into trimmed lines.
func lines(s string) []string {
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}

func intPtr(i int) *int { return &i }

func itoa(i int) string { return strconv.Itoa(i) }

// traversable makes every directory from baseDir down to path searchable
// by all: a container's root in a user namespace is another host uid,
// which must reach its rootfs (t.TempDir makes 0700 directories).
func traversable(t *testing.T, path string) {
	t.Helper()
	for p := path; strings.HasPrefix(p, baseDir); p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, fi.Mode().Perm()|0o111); err != nil {
			t.Fatal(err)
		}
	}
}

// runCmd runs a host command and returns its combined output.
func runCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
