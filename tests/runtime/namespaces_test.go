package runtime_test

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestPidNamespace(t *testing.T) {
	r := newRT(t)
	s := newSpec(t)
	s.Process.Args = []string{"sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'"}
	id, _, res := r.create(s)
	st := r.state(id)
	if st.Pid == 1 {
		t.Fatalf("host pid of init is 1")
	}
	r.ok("start", id)
	r.waitStatus(id, "stopped")
	// Inside: the shell is pid 1 and sees only itself and grep (and ls).
	out := lines(res.output(t))
	if len(out) != 2 || out[0] != "1" {
		t.Fatalf("output %q, want pid 1 and a process count", out)
	}
	if n, _ := strconv.Atoi(out[1]); n < 1 || n > 3 {
		t.Errorf("container sees %s processes in /proc, want its own 1-3", out[1])
	}
}

// TestJoinNetns: a network namespace given by path is joined, not made.
func TestJoinNetns(t *testing.T) {
	r := newRT(t)
	holder := exec.Command("unshare", "--net", "sleep", "3600")
	if err := holder.Start(); err != nil {
		t.Fatalf("unshare --net: %v", err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	nsPath := fmt.Sprintf("/proc/%d/ns/net", holder.Process.Pid)
	// unshare has the new namespace once its link differs from ours.
	self, _ := os.Readlink("/proc/self/ns/net")
	var want string
	for deadline := time.Now().Add(5 * time.Second); ; {
		want, _ = os.Readlink(nsPath)
		if want != "" && want != self {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never left the host network namespace", nsPath)
		}
		time.Sleep(5 * time.Millisecond)
	}
	s := newSpec(t)
	for i, ns := range s.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			s.Linux.Namespaces[i].Path = nsPath
		}
	}
	if got := strings.TrimSpace(r.sh(s, "readlink /proc/self/ns/net")); got != want {
		t.Errorf("container's netns %q, want the joined %q (host: %q)", got, want, self)
	}
}

func TestUserNamespace(t *testing.T) {
	const hostBase = 100000
	r := newRT(t)
	rootfs := copyRootfs(t)
	traversable(t, rootfs)
	err := filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, hostBase, hostBase)
	})
	if err != nil {
		t.Fatal(err)
	}
	s := newSpec(t)
	s.Root.Path = rootfs
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: hostBase, Size: 65536}}
	s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: hostBase, Size: 65536}}
	s.Process.Args = []string{"sh", "-c", "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; touch /tmp/f && stat -c %u:%g /tmp/f"}
	s.Root.Readonly = false
	id, _, res := r.create(s)
	pid := r.state(id).Pid
	if uid := procStatus(t, pid, "Uid"); uid != "100000\t100000\t100000\t100000" {
		t.Errorf("host uid of the container's init = %q, want 100000", uid)
	}
	r.ok("start", id)
	r.waitStatus(id, "stopped")
	got := strings.Fields(res.output(t))
	want := strings.Fields("0 0 0 100000 65536 0 100000 65536 0:0")
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("inside: %q, want %q\n(create stderr: %s)", got, want, res.stderr)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(rootfs, "tmp", "f"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != hostBase || st.Gid != hostBase {
		t.Errorf("file made in the container is %d:%d on the host, want %d:%d", st.Uid, st.Gid, hostBase, hostBase)
	}
}

func TestTimeNamespace(t *testing.T) {
	if _, err := os.Stat("/proc/self/ns/time"); err != nil {
		t.Skip("kernel has no time namespaces")
	}
	const offset = 10 * 86400
	r := newRT(t)
	s := newSpec(t)
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
	s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{
		"monotonic": {Secs: offset},
		"boottime":  {Secs: offset},
	}
	before := uptime(t, readFile(t, "/proc/uptime"))
	out := r.sh(s, "cat /proc/uptime; cat /proc/self/timens_offsets")
	after := uptime(t, readFile(t, "/proc/uptime"))
	l := lines(out)
	if len(l) != 3 {
		t.Fatalf("output %q", out)
	}
	inside := uptime(t, l[0])
	if inside < before+offset || inside > after+offset+1 {
		t.Errorf("uptime inside %.2f, want host's (%.2f..%.2f) + %d", inside, before, after, offset)
	}
	offs := strings.Join(l[1:], "\n")
	for _, w := range []string{fmt.Sprintf("monotonic %d 0", offset), fmt.Sprintf("boottime %d 0", offset)} {
		if !containsLine(l[1:], w) {
			t.Errorf("timens_offsets %q lacks %q", offs, w)
		}
	}
}

func containsLine(ls []string, w string) bool {
	for _, l := range ls {
		if strings.Join(strings.Fields(l), " ") == w {
			return true
		}
	}
	return false
}

func uptime(t *testing.T, s string) float64 {
	t.Helper()
	f := strings.Fields(s)
	if len(f) == 0 {
		t.Fatalf("bad /proc/uptime %q", s)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		t.Fatalf("bad /proc/uptime %q", s)
	}
	return v
}

// TestCgroupNamespace: the container sees its own cgroup as the root; the
// host sees it under the container's id.
func TestCgroupNamespace(t *testing.T) {
	r := newRT(t)
	s := newSpec(t)
	s.Process.Args = []string{"cat", "/proc/self/cgroup"}
	id, _, res := r.create(s)
	pid := r.state(id).Pid
	if host := readFile(t, fmt.Sprintf("/proc/%d/cgroup", pid)); cgroupMatch(host, id) == "" {
		t.Errorf("host view of init's cgroups does not name %s:\n%s", id, host)
	}
	r.ok("start", id)
	r.waitStatus(id, "stopped")
	out := res.output(t)
	if out == "" {
		t.Fatalf("no output; create stderr %q", res.stderr)
	}
	for _, l := range lines(out) {
		if !strings.HasSuffix(l, ":/") {
			t.Errorf("inside the cgroup namespace %q is not the root", l)
		}
	}
}
