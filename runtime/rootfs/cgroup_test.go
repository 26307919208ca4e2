package rootfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func hostIsCgroup2(t *testing.T) bool {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		t.Skipf("statfs /sys/fs/cgroup: %v", err)
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC
}

func cgroupSpec(rootfs string, cgroupNS bool) *specs.Spec {
	s := baseSpec(rootfs)
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup",
		Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}})
	if cgroupNS {
		s.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.CgroupNamespace}}
	}
	return s
}

func testCgroup(t *testing.T, version string, cgroupNS bool) {
	if v2 := hostIsCgroup2(t); v2 != (version == "v2") {
		t.Skipf("host cgroup layout is not %s", version)
	}
	rootfs := makeRootfs(t)
	runChild(t, &childConfig{Scenario: "cgroup", Rootfs: rootfs, Spec: cgroupSpec(rootfs, cgroupNS), HostDir: version})
}

func TestCgroupV1(t *testing.T)   { testCgroup(t, "v1", false) }
func TestCgroupV1NS(t *testing.T) { testCgroup(t, "v1", true) }
func TestCgroupV2(t *testing.T)   { testCgroup(t, "v2", false) }
func TestCgroupV2NS(t *testing.T) { testCgroup(t, "v2", true) }

// checkCgroupDir checks that dir is a read-only cgroup mount showing the
// process's own cgroup (it lists our pid, 1 in the child's PID namespace).
func (e *errList) checkCgroupDir(dir string) {
	m, ok := mountAt(dir)
	if !ok {
		e.add("no mount at %s", dir)
		return
	}
	if m.FSType != "cgroup" && m.FSType != "cgroup2" {
		e.add("%s: fstype %s, want cgroup", dir, m.FSType)
	}
	if !hasOpt(m.Options, "ro") {
		e.add("%s: options %s, want ro", dir, m.Options)
	}
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		e.add("%s: %v", dir, err)
		return
	}
	found := false
	for _, l := range strings.Split(string(b), "\n") {
		if l == "1" {
			found = true
		}
	}
	if !found {
		e.add("%s/cgroup.procs does not list the container's init (pid 1): %q", dir, b)
	}
}

func checkCgroup(cfg *childConfig) error {
	var e errList
	if cfg.HostDir == "v2" {
		e.checkCgroupDir("/sys/fs/cgroup")
		e.checkReadOnly("/sys/fs/cgroup")
		return e.err()
	}
	e.checkMount("/sys/fs/cgroup", "tmpfs", "ro", "nosuid", "nodev", "noexec")
	e.checkReadOnly("/sys/fs/cgroup")
	ents, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return err
	}
	names := map[string]bool{}
	for _, ent := range ents {
		p := filepath.Join("/sys/fs/cgroup", ent.Name())
		if ent.Type()&os.ModeSymlink != 0 {
			if _, err := os.Stat(p); err != nil {
				e.add("dangling co-mount symlink %s: %v", p, err)
			}
			continue
		}
		names[ent.Name()] = true
		e.checkCgroupDir(p)
	}
	if !names["memory"] {
		e.add("no memory hierarchy in /sys/fs/cgroup (have %v)", names)
	}
	e.checkReadOnly("/sys/fs/cgroup/memory")
	return e.err()
}
