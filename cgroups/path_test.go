package cgroups

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const fixtureMountinfo = `25 30 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
33 30 0:30 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset,clone_children
34 30 0:31 /nested /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 30 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
41 25 0:38 / /mnt/my\040cgroups rw,relatime - cgroup cgroup rw,pids
`

const fixtureProcCgroup = `12:pids:/
5:memory:/nested/user/session
4:cpuset:/
3:cpu,cpuacct:/user.slice
1:name=systemd:/user.slice/session-1.scope
0::/user.slice/session-1.scope
`

func fixtureHierarchies(t *testing.T) ([]hierarchy, *hierarchy) {
	t.Helper()
	mounts, err := parseMountinfo(strings.NewReader(fixtureMountinfo))
	if err != nil {
		t.Fatal(err)
	}
	cgs, err := parseProcCgroup(strings.NewReader(fixtureProcCgroup))
	if err != nil {
		t.Fatal(err)
	}
	v1, v2, err := matchHierarchies(mounts, cgs)
	if err != nil {
		t.Fatal(err)
	}
	return v1, v2
}

func TestResolveFixture(t *testing.T) {
	v1, v2 := fixtureHierarchies(t)
	if v2 == nil || v2.mnt.mountpoint != "/sys/fs/cgroup/unified" {
		t.Fatalf("v2 hierarchy = %+v", v2)
	}
	byCtrl := map[string]hierarchy{}
	for _, h := range v1 {
		for _, c := range h.controllers {
			byCtrl[c] = h
		}
	}
	for _, c := range []string{"pids", "memory", "cpuset", "cpu", "cpuacct", "name=systemd"} {
		if _, ok := byCtrl[c]; !ok {
			t.Fatalf("controller %s not discovered: %+v", c, v1)
		}
	}
	cases := []struct {
		ctrl, path, want string
	}{
		{"cpu", "/a/b", "/sys/fs/cgroup/cpu,cpuacct/a/b"},
		{"cpuacct", "/a/b", "/sys/fs/cgroup/cpu,cpuacct/a/b"},
		{"cpu", "a/b", "/sys/fs/cgroup/cpu,cpuacct/user.slice/a/b"},
		{"cpu", "../x", "/sys/fs/cgroup/cpu,cpuacct/x"},
		{"cpu", "/a/../b", "/sys/fs/cgroup/cpu,cpuacct/b"},
		// The memory mount shows only the /nested subtree.
		{"memory", "/a", "/sys/fs/cgroup/memory/a"},
		{"memory", "ctr", "/sys/fs/cgroup/memory/user/session/ctr"},
		{"pids", "ctr", "/mnt/my cgroups/ctr"},
		{"name=systemd", "ctr", "/sys/fs/cgroup/systemd/user.slice/session-1.scope/ctr"},
	}
	for _, c := range cases {
		got, err := byCtrl[c.ctrl].dir(c.path)
		if err != nil {
			t.Errorf("%s %q: %v", c.ctrl, c.path, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s %q: got %s, want %s", c.ctrl, c.path, got, c.want)
		}
	}
	if got, _ := v2.dir("ctr"); got != "/sys/fs/cgroup/unified/user.slice/session-1.scope/ctr" {
		t.Errorf("v2 relative: got %s", got)
	}
	for _, bad := range []string{"/..", "/a/../../b", "../../x", "/", "/a/.."} {
		if _, err := byCtrl["cpu"].dir(bad); err == nil || !strings.Contains(err.Error(), "linux.cgroupsPath") {
			t.Errorf("%q: error = %v, want one naming linux.cgroupsPath", bad, err)
		}
	}
}

func TestNewPaths(t *testing.T) {
	mode := DetectMode()
	self, err := readProcCgroup()
	if err != nil {
		t.Fatal(err)
	}
	mounts, err := readCgroupMounts()
	if err != nil {
		t.Fatal(err)
	}
	// The expected directory of the memory controller (or of the v2
	// hierarchy) for a relative path, computed independently.
	var mountpoint, selfPath string
	for _, cg := range self {
		want := []string{"memory"}
		fstype := "cgroup"
		if mode == Unified {
			want, fstype = nil, "cgroup2"
		}
		if (mode == Unified) != (len(cg.controllers) == 0) || (mode != Unified && !hasAll(cg.controllers, want)) {
			continue
		}
		for _, m := range mounts {
			if m.fstype == fstype && (fstype == "cgroup2" || hasAll(m.superOpts, want)) {
				mountpoint, selfPath = m.mountpoint, strings.TrimPrefix(cg.path, strings.TrimSuffix(m.root, "/"))
				break
			}
		}
	}
	if mountpoint == "" {
		t.Skip("no memory hierarchy")
	}
	key := "memory"
	if mode == Unified {
		key = ""
	}
	cases := []struct {
		cfg  Config
		want string
	}{
		{Config{Path: "/berth/abs"}, filepath.Join(mountpoint, "berth/abs")},
		{Config{Path: "rel/ctr"}, filepath.Join(mountpoint, selfPath, "rel/ctr")},
		{Config{ContainerID: "ctr1"}, filepath.Join(mountpoint, selfPath, "ctr1")},
	}
	for _, c := range cases {
		m, err := New(c.cfg)
		if err != nil {
			t.Fatalf("%+v: %v", c.cfg, err)
		}
		paths := m.Paths()
		if got := paths[key]; got != c.want {
			t.Errorf("%+v: %q path = %s, want %s", c.cfg, key, got, c.want)
		}
		if mode == Hybrid && paths[""] == "" {
			t.Errorf("%+v: hybrid host but no unified path in %v", c.cfg, paths)
		}
		if mode != Unified && paths["cpu"] == "" {
			t.Errorf("%+v: no cpu path in %v", c.cfg, paths)
		}
		for _, p := range paths {
			if _, err := os.Stat(p); err == nil {
				t.Errorf("New created %s", p)
			}
		}
	}
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Path: "/../../etc"}, "escapes the root"},
		{Config{Path: "system.slice:berth:abc"}, "--systemd-cgroup"},
		{Config{Path: ":berth:abc"}, "--systemd-cgroup"},
		{Config{}, "linux.cgroupsPath is empty"},
	} {
		_, err := New(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error = %v, want one containing %q", c.cfg, err, c.want)
		}
	}
}

func TestLoadModes(t *testing.T) {
	m, err := Load(map[string]string{"": "/sys/fs/cgroup/x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.(*v2Manager); !ok {
		t.Errorf("Load of a v2 path gave %T", m)
	}
	m, err = Load(map[string]string{"memory": "/sys/fs/cgroup/memory/x", "": "/sys/fs/cgroup/unified/x"})
	if err != nil {
		t.Fatal(err)
	}
	if v1, ok := m.(*v1Manager); !ok || v1.unified != "/sys/fs/cgroup/unified/x" {
		t.Errorf("Load of v1 paths gave %#v", m)
	}
	if _, err := Load(nil); err == nil {
		t.Error("Load(nil) succeeded")
	}
	if _, err := Load(map[string]string{"memory": "rel"}); err == nil {
		t.Error("Load of a relative path succeeded")
	}
}

func TestRootlessMissingCgroup(t *testing.T) {
	m := &v1Manager{paths: map[string]string{}, rootless: true}
	if err := m.Set(&specs.LinuxResources{}); err != nil {
		t.Errorf("Set without resources: %v", err)
	}
	err := m.Set(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: ptr(int64(1 << 20))}})
	if err == nil || !strings.Contains(err.Error(), "linux.resources.memory") || !strings.Contains(err.Error(), "rootless") {
		t.Errorf("Set memory without a memory cgroup: %v", err)
	}
	v2 := &v2Manager{dir: "/sys/fs/cgroup/nonexistent", rootless: true, unavailable: true}
	if err := v2.Set(&specs.LinuxResources{}); err != nil {
		t.Errorf("v2 Set without resources: %v", err)
	}
	if err := v2.Set(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(3))}}); err == nil {
		t.Error("v2 Set with resources on an unavailable cgroup succeeded")
	}
}
