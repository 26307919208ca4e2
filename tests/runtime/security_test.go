package runtime_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TestCVE2019_5736: a container process that holds its init's
// /proc/PID/exe must not be able to write the runtime's binaries once the
// runtime has exited. Without exeseal the init would be the on-disk
// berth-init (or berth, where no berth-init sits beside it): after the
// container is killed nothing executes it, so an O_WRONLY open through
// the held handle would succeed (no ETXTBSY) and could overwrite the
// host's binary. The test uses copies of the binaries, so a failing
// defence cannot damage anything. It also checks which binary the init
// is: berth-init when present (the fast start), else berth's own.
func TestCVE2019_5736(t *testing.T) {
	for _, withInit := range []bool{true, false} {
		name := "berth-init"
		if !withInit {
			name = "built-in init"
		}
		t.Run(name, func(t *testing.T) { testExeSealed(t, withInit) })
	}
}

func testExeSealed(t *testing.T, withInit bool) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "berth")
	copyFile(t, berthExe, exe, 0o755)
	bins := []string{exe}
	initExe := exe
	if withInit {
		initExe = filepath.Join(dir, "berth-init")
		copyFile(t, filepath.Join(filepath.Dir(berthExe), "berth-init"), initExe, 0o755)
		bins = append(bins, initExe)
	}
	if err := os.Symlink("berth", filepath.Join(dir, "berth-runc")); err != nil {
		t.Fatal(err)
	}
	before := map[string]string{}
	for _, b := range bins {
		before[b] = sha256File(t, b)
	}
	r := newRT(t)
	r.bin = filepath.Join(dir, "berth-runc")
	id, _, _ := r.create(newSpec(t)) // init waits for start
	pid := r.state(id).Pid
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/exe", pid), unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open /proc/%d/exe: %v", pid, err)
	}
	defer unix.Close(fd)
	var held unix.Stat_t
	if err := unix.Fstat(fd, &held); err != nil {
		t.Fatal(err)
	}
	for _, b := range bins {
		var disk unix.Stat_t
		if err := unix.Stat(b, &disk); err != nil {
			t.Fatal(err)
		}
		if held.Dev == disk.Dev && held.Ino == disk.Ino {
			t.Errorf("the container's init executes the on-disk binary %s itself", b)
		}
	}
	if got := sha256File(t, fmt.Sprintf("/proc/self/fd/%d", fd)); got != before[initExe] {
		t.Errorf("the container's init is not a copy of %s", initExe)
	}
	r.ok("kill", id, "KILL")
	r.waitStatus(id, "stopped")
	r.ok("delete", id)
	if alive(pid) {
		t.Fatalf("init %d still alive", pid)
	}
	for _, flag := range []int{os.O_WRONLY, os.O_RDWR} {
		w, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", fd), flag, 0)
		if err == nil {
			w.Close()
			t.Errorf("opened the container init's executable for writing (flags %#x) after the runtime exited", flag)
			continue
		}
		if errors.Is(err, syscall.ETXTBSY) {
			t.Errorf("open for writing failed only because the binary is busy: %v", err)
		}
		t.Logf("open for writing (flags %#x): %v", flag, err)
	}
	for _, b := range bins {
		if after := sha256File(t, b); after != before[b] {
			t.Errorf("%s changed: sha256 %s -> %s", b, before[b], after)
		}
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestCVE2024_21626LeakedFds: the container's process inherits only its
// stdio. A leaked runtime descriptor to a host directory would let
// process.cwd (or the process itself) reach the host through
// /proc/self/fd/N.
func TestCVE2024_21626LeakedFds(t *testing.T) {
	r := newRT(t)
	out := r.sh(newSpec(t), "ls /proc/self/fd")
	// ls itself holds one descriptor: the directory it reads.
	if got := strings.Fields(out); !slices.Equal(got, []string{"0", "1", "2", "3"}) {
		t.Errorf("descriptors in the container's process: %v, want 0 1 2 and ls's own 3", got)
	}
}

// TestCVE2024_21626Cwd: process.cwd = /proc/self/fd/N must not leave the
// container's root through a descriptor the runtime's init holds when it
// changes directory: runc before 1.1.12 leaked one to the host's
// /sys/fs/cgroup, and the process started with a host cwd.
func TestCVE2024_21626Cwd(t *testing.T) {
	r := newRT(t)
	// Names in the host's / that the container's / lacks.
	var hostOnly []string
	hostEnts, _ := os.ReadDir("/")
	for _, e := range hostEnts {
		if _, err := os.Lstat(filepath.Join(rootfsDir, e.Name())); err != nil {
			hostOnly = append(hostOnly, e.Name())
		}
	}
	if len(hostOnly) == 0 {
		t.Fatal("the host's / has nothing the container's lacks")
	}
	script := `pwd -P; stat -L -c %i .; stat -L -c %i "$(pwd -P)"; ls ../../../../../../../../..`
	// ran checks the output of a process that did start: its cwd must be
	// a directory of the container.
	ran := func(cwd, out string) {
		t.Helper()
		l := lines(out)
		if len(l) < 3 || !strings.HasPrefix(l[0], "/") || strings.Contains(l[0], "unreachable") || l[1] != l[2] {
			t.Errorf("cwd %s: the process runs outside the container's root: %q", cwd, out)
			return
		}
		for _, name := range l[3:] {
			if slices.Contains(hostOnly, name) {
				t.Errorf("cwd %s: the host's /%s is reachable: %q", cwd, name, out)
			}
		}
	}
	for n := 3; n <= 8; n++ {
		s := newSpec(t)
		s.Process.Cwd = "/proc/self/fd/" + strconv.Itoa(n)
		s.Process.Args = []string{"sh", "-c", script}
		// run: init is started through its sync socket.
		res := r.runSpec(s)
		t.Logf("run, cwd %s: exit %d, stdout %q, stderr %q", s.Process.Cwd, res.code, res.stdout, res.stderr)
		if res.code == 0 {
			ran(s.Process.Cwd, res.stdout)
		} else if !strings.Contains(res.stderr, "process.cwd") {
			t.Errorf("cwd %s refused without naming process.cwd:\n%s", s.Process.Cwd, res)
		}
		// create and start: init also holds the exec fifo and the
		// host's /proc/self/fd while it waits, and reports late errors
		// on the container's stderr.
		bundle := writeBundle(t, s)
		id := r.newID()
		res = r.run("create", "--bundle", bundle, id)
		if res.code != 0 {
			if !strings.Contains(res.stderr, "process.cwd") {
				t.Errorf("create with cwd %s refused without naming process.cwd:\n%s", s.Process.Cwd, res)
			}
			continue
		}
		r.run("start", id)
		r.waitStatus(id, "stopped")
		out, errOut := res.output(t), res.errOutput(t)
		t.Logf("create+start, cwd %s: stdout %q, stderr %q", s.Process.Cwd, out, errOut)
		if out != "" {
			ran(s.Process.Cwd, out)
		} else if !strings.Contains(errOut, "process.cwd") {
			t.Errorf("create+start with cwd %s: no output and no error naming process.cwd (stderr %q)", s.Process.Cwd, errOut)
		}
	}
}

// TestCVE2021_30465: a mount destination that is a symlink in the rootfs
// pointing out of it (../../../../HOSTDIR) must be resolved inside the
// rootfs. runc before 1.0.0-rc95 followed it on the host and mounted over
// host directories.
func TestCVE2021_30465(t *testing.T) {
	r := newRT(t)
	hostDir := t.TempDir()
	rootfs := copyRootfs(t)
	link := strings.Repeat("../", 20) + strings.TrimPrefix(hostDir, "/")
	if err := os.Symlink(link, filepath.Join(rootfs, "evil")); err != nil {
		t.Fatal(err)
	}
	s := newSpec(t)
	s.Root = &specs.Root{Path: rootfs}
	// An odd mode tells this tmpfs from a directory of the rootfs.
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/evil", Type: "tmpfs", Source: "tmpfs", Options: []string{"mode=1703"}})
	s.Process.Args = []string{"sh", "-c", "stat -L -c %a /evil; echo inside > /evil/marker && echo wrote"}
	id, _, res := r.create(s)
	// While the container exists: the host directory is no mount point
	// and empty.
	checkHostDir := func(when string) {
		t.Helper()
		for _, mp := range mountPoints() {
			if mp == hostDir {
				t.Errorf("%s: %s is a mount point on the host", when, hostDir)
			}
		}
		if ents, err := os.ReadDir(hostDir); err != nil || len(ents) != 0 {
			t.Errorf("%s: host dir %s: %v, %d entries, want empty", when, hostDir, err, len(ents))
		}
	}
	checkHostDir("created")
	r.ok("start", id)
	r.waitStatus(id, "stopped")
	if out := res.output(t); out != "1703\nwrote\n" {
		t.Errorf("in the container: %q, want the tmpfs (mode 1703) at /evil's target and a write to it\nstderr: %s", out, res.errOutput(t))
	}
	r.ok("delete", id)
	checkHostDir("deleted")
	// The write went to the tmpfs, not to the rootfs directory under it.
	if _, err := os.Stat(filepath.Join(rootfs, strings.TrimPrefix(hostDir, "/"), "marker")); err == nil {
		t.Errorf("the marker reached the rootfs directory: the tmpfs was not mounted at the symlink's target inside the rootfs")
	}
}

// TestCVE2025_31133: masking a path binds the null device over it. If
// the runtime took the container's own /dev/null, a container whose
// /dev/null is a symlink (here: /dev is a bind of a crafted directory)
// would get the symlink's target bound over the masked path instead: a
// way to make e.g. /proc/sys/kernel/core_pattern writable.
func TestCVE2025_31133(t *testing.T) {
	r := newRT(t)
	dev := t.TempDir()
	for _, d := range []string{"pts", "shm", "mqueue"} {
		if err := os.Mkdir(filepath.Join(dev, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(dev, "null")); err != nil {
		t.Fatal(err)
	}
	s := newSpec(t)
	for i, m := range s.Mounts {
		if m.Destination == "/dev" {
			s.Mounts[i] = specs.Mount{Destination: "/dev", Type: "bind", Source: dev, Options: []string{"rbind", "rw"}}
		}
	}
	s.Linux.MaskedPaths = []string{"/proc/timer_list", "/proc/kcore", "/proc/keys"}
	out := r.sh(s, `readlink /dev/null; for p in /proc/timer_list /proc/keys; do stat -c '%F %t:%T' $p; wc -c < $p; done`)
	want := "/etc/passwd\ncharacter special file 1:3\n0\ncharacter special file 1:3\n0\n"
	if got := strings.Join(strings.Fields(out), " "); got != strings.Join(strings.Fields(want), " ") {
		t.Errorf("got %q, want the symlink /dev/null left alone and real null devices at the masked paths (%q)", out, want)
	}
	if target, err := os.Readlink(filepath.Join(dev, "null")); err != nil || target != "/etc/passwd" {
		t.Errorf("crafted /dev/null changed: %q, %v", target, err)
	}
}

// TestInitProtocolMismatch: a berth-init from another build (here one
// built to speak protocol "0") is refused with one clear line, and the
// failed create leaves nothing behind.
func TestInitProtocolMismatch(t *testing.T) {
	dir := t.TempDir()
	copyFile(t, berthExe, filepath.Join(dir, "berth"), 0o755)
	if err := os.Symlink("berth", filepath.Join(dir, "berth-runc")); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-trimpath", "-tags", "osusergo,netgo",
		"-ldflags", "-X github.com/berth-project/berth/runtime/container.initProtocol=0",
		"-o", filepath.Join(dir, "berth-init"), "github.com/berth-project/berth/cmd/berth-init")
	build.Env = append(os.Environ(), "PATH="+os.Getenv("PATH")+":"+filepath.Join(goruntime.GOROOT(), "bin"))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build berth-init: %v\n%s", err, out)
	}
	r := newRT(t)
	r.bin = filepath.Join(dir, "berth-runc")
	bundle := writeBundle(t, newSpec(t))
	id := r.newID()
	res := r.fails("create", "--bundle", bundle, id)
	oneLine(t, res, `speaks init protocol "0"`, "one build")
	r.nothingLeft(id, bundle)
}
