package oci

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	runtimespec "github.com/berth-project/berth/runtime/spec"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func testInput(t *testing.T) Input {
	t.Helper()
	return Input{
		ID:             "c1",
		Config:         &container.Config{Cmd: []string{"/bin/sh", "-c", "true"}},
		Host:           &container.HostConfig{},
		Rootfs:         fakeRootfs(t),
		Hostname:       "box",
		HostsPath:      "/run/c1/hosts",
		ResolvConfPath: "/run/c1/resolv.conf",
		HostnamePath:   "/run/c1/hostname",
		CgroupsPath:    "berth/c1",
	}
}

func generate(t *testing.T, in Input) *specs.Spec {
	t.Helper()
	s, err := Generate(in)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return s
}

func findMount(s *specs.Spec, dst string) *specs.Mount {
	for i := range s.Mounts {
		if s.Mounts[i].Destination == dst {
			return &s.Mounts[i]
		}
	}
	return nil
}

func hasNS(s *specs.Spec, typ specs.LinuxNamespaceType) bool {
	return slices.ContainsFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == typ })
}

func TestGenerateDefaults(t *testing.T) {
	s := generate(t, testInput(t))
	p := s.Process
	eq(t, "args", p.Args, []string{"/bin/sh", "-c", "true"})
	eq(t, "env", p.Env, []string{"PATH=" + DefaultPathEnv, "HOSTNAME=box", "HOME=/root"})
	eq(t, "cwd", p.Cwd, "/")
	eq(t, "user", p.User, specs.User{})
	eq(t, "terminal", p.Terminal, false)
	eq(t, "noNewPrivileges", p.NoNewPrivileges, false)
	eq(t, "oomScoreAdj", p.OOMScoreAdj, (*int)(nil))
	eq(t, "hostname", s.Hostname, "box")
	eq(t, "root", *s.Root, specs.Root{Path: testInputRoot(s), Readonly: false})
	eq(t, "cgroupsPath", s.Linux.CgroupsPath, "berth/c1")

	caps := p.Capabilities
	want := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT", "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP"}
	if got := slices.Sorted(slices.Values(caps.Bounding)); !reflect.DeepEqual(got, slices.Sorted(slices.Values(want))) {
		t.Errorf("bounding = %v, want %v", caps.Bounding, want)
	}
	eq(t, "effective", caps.Effective, caps.Bounding)
	eq(t, "permitted", caps.Permitted, caps.Bounding)
	eq(t, "inheritable", len(caps.Inheritable), 0)
	eq(t, "ambient", len(caps.Ambient), 0)

	for _, ns := range []specs.LinuxNamespaceType{specs.PIDNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.MountNamespace, specs.NetworkNamespace} {
		if !hasNS(s, ns) {
			t.Errorf("no %s namespace", ns)
		}
	}
	if hasNS(s, specs.UserNamespace) {
		t.Error("user namespace by default")
	}
	v2, err := cgroup2Host()
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "cgroup namespace (private on cgroup v2 only)", hasNS(s, specs.CgroupNamespace), v2)

	wantMounts := map[string][2]string{ // destination: type, an option it must have
		"/proc":            {"proc", "nosuid"},
		"/dev":             {"tmpfs", "size=65536k"},
		"/dev/pts":         {"devpts", "ptmxmode=0666"},
		"/sys":             {"sysfs", "ro"},
		"/sys/fs/cgroup":   {"cgroup", "ro"},
		"/dev/mqueue":      {"mqueue", "nodev"},
		"/dev/shm":         {"tmpfs", "size=67108864"},
		"/etc/hosts":       {"bind", "rbind"},
		"/etc/hostname":    {"bind", "rbind"},
		"/etc/resolv.conf": {"bind", "rbind"},
	}
	for dst, w := range wantMounts {
		m := findMount(s, dst)
		if m == nil {
			t.Errorf("no mount at %s", dst)
			continue
		}
		if m.Type != w[0] || !slices.Contains(m.Options, w[1]) {
			t.Errorf("mount %s = %+v, want type %s with option %s", dst, m, w[0], w[1])
		}
	}
	eq(t, "hosts source", findMount(s, "/etc/hosts").Source, "/run/c1/hosts")
	if slices.Contains(findMount(s, "/etc/hosts").Options, "ro") {
		t.Error("/etc/hosts is read-only; docker's is not")
	}
	eq(t, "mount count", len(s.Mounts), len(wantMounts))
	eq(t, "masked", s.Linux.MaskedPaths, DefaultMaskedPaths)
	eq(t, "readonly", s.Linux.ReadonlyPaths, DefaultReadonlyPaths)
	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno {
		t.Errorf("seccomp = %+v, want docker's default profile", s.Linux.Seccomp)
	}
	eq(t, "device rules", s.Linux.Resources.Devices, DefaultDeviceRules())
	eq(t, "devices", len(s.Linux.Devices), 0)
}

func testInputRoot(s *specs.Spec) string { return s.Root.Path }

func TestGenerateOptions(t *testing.T) {
	in := testInput(t)
	in.Config = &container.Config{
		Entrypoint: []string{"/entry"},
		Cmd:        []string{"arg"},
		Env:        []string{"PATH=/mine", "HOME=/h", "X=1"},
		Tty:        true,
		User:       "app",
		WorkingDir: "/srv/",
		Domainname: "example.com",
	}
	init := true
	in.Host = &container.HostConfig{
		ReadonlyRootfs: true,
		ShmSize:        1 << 30,
		SecurityOpt:    []string{"no-new-privileges", "label=disable", "apparmor=unconfined"},
		OomScoreAdj:    500,
		GroupAdd:       []string{"staff"},
		Init:           &init,
		Sysctls:        map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000"},
	}
	in.Host.Ulimits = []*container.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}}
	in.InitPath = "/usr/bin/berth"
	in.Mounts = []specs.Mount{
		{Destination: "/data/sub", Type: "bind", Source: "/host/sub", Options: []string{"rbind"}},
		{Destination: "/data", Type: "bind", Source: "/host/data", Options: []string{"rbind"}},
		{Destination: "/dev/shm", Type: "bind", Source: "/host/shm", Options: []string{"rbind"}},
	}
	s := generate(t, in)
	p := s.Process
	eq(t, "args", p.Args, []string{"/dev/init", "--", "/entry", "arg"})
	eq(t, "env", p.Env, []string{"PATH=/mine", "HOSTNAME=box", "TERM=xterm", "HOME=/h", "X=1"})
	eq(t, "cwd", p.Cwd, "/srv")
	eq(t, "terminal", p.Terminal, true)
	eq(t, "user", p.User, specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10, 29, 50}})
	eq(t, "noNewPrivileges", p.NoNewPrivileges, true)
	eq(t, "oomScoreAdj", *p.OOMScoreAdj, 500)
	eq(t, "rlimits", p.Rlimits, []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 2048, Soft: 1024}})
	eq(t, "readonly root", s.Root.Readonly, true)
	eq(t, "domainname", s.Domainname, "example.com")
	eq(t, "sysctl", s.Linux.Sysctl, map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000"})
	if m := findMount(s, InitDest); m == nil || m.Source != "/usr/bin/berth" || !slices.Contains(m.Options, "ro") {
		t.Errorf("init mount = %+v", m)
	}
	// The user's /dev/shm replaces the default one.
	if m := findMount(s, "/dev/shm"); m == nil || m.Source != "/host/shm" {
		t.Errorf("/dev/shm = %+v, want the user's bind", m)
	}
	var dsts []string
	for _, m := range s.Mounts {
		dsts = append(dsts, m.Destination)
	}
	if slices.Index(dsts, "/data") > slices.Index(dsts, "/data/sub") || slices.Index(dsts, "/dev") > slices.Index(dsts, "/dev/shm") {
		t.Errorf("mounts not sorted by depth: %v", dsts)
	}

	// Home from passwd when the env has none; default shm size option.
	in = testInput(t)
	in.Config.User = "app"
	in.Host.ShmSize = 1 << 20
	s = generate(t, in)
	if !slices.Contains(s.Process.Env, "HOME=/home/app") {
		t.Errorf("env %v lacks HOME=/home/app", s.Process.Env)
	}
	if m := findMount(s, "/dev/shm"); !slices.Contains(m.Options, "size=1048576") {
		t.Errorf("/dev/shm options %v, want size=1048576", m.Options)
	}
}

func TestGenerateErrors(t *testing.T) {
	tests := []struct {
		name string
		mod  func(in *Input)
		msg  string
	}{
		{"relative workdir", func(in *Input) { in.Config.WorkingDir = "srv" }, "needs to be an absolute path"},
		{"unknown user", func(in *Input) { in.Config.User = "ghost" }, "unable to find user ghost"},
		{"unknown security-opt", func(in *Input) { in.Host.SecurityOpt = []string{"frobnicate=1"} }, `unknown security-opt "frobnicate=1"`},
		{"bad ulimit", func(in *Input) { in.Host.Ulimits = []*container.Ulimit{{Name: "bogus", Soft: 1, Hard: 1}} }, `ulimit "bogus"`},
		{"unnamespaced sysctl", func(in *Input) { in.Host.Sysctls = map[string]string{"vm.swappiness": "1"} }, `sysctl "vm.swappiness"`},
		{"net sysctl with host net", func(in *Input) {
			in.Host.NetworkMode = "host"
			in.Host.Sysctls = map[string]string{"net.ipv4.ip_forward": "1"}
		}, "host's network namespace"},
		{"bridge without netns", func(in *Input) { in.Host.NetworkMode = "bridge" }, `network mode "bridge" needs the path`},
		{"no command", func(in *Input) { in.Config.Cmd = nil }, "no command specified"},
		{"init without binary", func(in *Input) { b := true; in.Host.Init = &b }, "no init binary"},
		{"oom score", func(in *Input) { in.Host.OomScoreAdj = 1001 }, "oom score"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := testInput(t)
			tt.mod(&in)
			_, err := Generate(in)
			if err == nil || !strings.Contains(err.Error(), tt.msg) || !strings.HasPrefix(err.Error(), "container c1: ") {
				t.Fatalf("Generate: %v, want error naming container c1 and containing %q", err, tt.msg)
			}
		})
	}
}

func TestGenerateNetwork(t *testing.T) {
	in := testInput(t)
	in.Host.NetworkMode = "host"
	s := generate(t, in)
	if hasNS(s, specs.NetworkNamespace) {
		t.Error("host network has a network namespace")
	}
	h, _ := os.Hostname()
	eq(t, "hostname", s.Hostname, h)
	if !slices.Contains(s.Process.Env, "HOSTNAME="+h) {
		t.Errorf("env %v lacks the host's hostname", s.Process.Env)
	}

	in = testInput(t)
	in.Host.NetworkMode = "bridge"
	in.NetNSPath = "/run/netns/c1"
	s = generate(t, in)
	i := slices.IndexFunc(s.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.NetworkNamespace })
	if i < 0 || s.Linux.Namespaces[i].Path != "/run/netns/c1" {
		t.Errorf("namespaces %+v, want network at /run/netns/c1", s.Linux.Namespaces)
	}

	in = testInput(t)
	in.Host.NetworkMode = "none"
	in.Host.PidMode = "host"
	in.Host.IpcMode = "host"
	in.Host.UTSMode = "host"
	in.Host.CgroupnsMode = container.CgroupnsModePrivate
	s = generate(t, in)
	for typ, want := range map[specs.LinuxNamespaceType]bool{specs.NetworkNamespace: true, specs.PIDNamespace: false, specs.IPCNamespace: false, specs.UTSNamespace: false, specs.CgroupNamespace: true} {
		eq(t, "namespace "+string(typ), hasNS(s, typ), want)
	}
	if m := findMount(s, "/dev/shm"); m == nil || m.Source != "/dev/shm" || m.Type != "bind" {
		t.Errorf("ipc host /dev/shm = %+v, want the host's", m)
	}
}

func TestCapabilities(t *testing.T) {
	all, err := PrivilegedCapabilities()
	if err != nil {
		t.Fatal(err)
	}
	without := func(set []string, drop ...string) []string {
		return slices.DeleteFunc(slices.Clone(set), func(c string) bool { return slices.Contains(drop, c) })
	}
	def, err := Capabilities(DefaultCapabilities, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		add, drop []string
		want      []string
	}{
		{"add lower no prefix", []string{"sys_admin"}, nil, append(slices.Clone(def), "CAP_SYS_ADMIN")},
		{"drop with prefix", nil, []string{"CAP_NET_RAW", "mknod"}, without(def, "CAP_NET_RAW", "CAP_MKNOD")},
		{"drop all add one", []string{"chown"}, []string{"ALL"}, []string{"CAP_CHOWN"}},
		{"add all drop one", []string{"all"}, []string{"SYS_ADMIN"}, without(all, "CAP_SYS_ADMIN")},
		{"add beats drop", []string{"KILL"}, []string{"KILL"}, def},
	}
	for _, tt := range tests {
		got, err := Capabilities(DefaultCapabilities, tt.add, tt.drop)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !reflect.DeepEqual(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(tt.want))) {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	for _, bad := range [][2][]string{{{"CAP_FLY"}, nil}, {nil, {"fly"}}} {
		_, err := Capabilities(DefaultCapabilities, bad[0], bad[1])
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "fly") {
			t.Errorf("unknown capability %v: %v, want an error naming it", bad, err)
		}
	}

	in := testInput(t)
	in.Host.CapAdd = []string{"SYS_ADMIN"}
	in.Host.CapDrop = []string{"NET_RAW"}
	s := generate(t, in)
	if !slices.Contains(s.Process.Capabilities.Bounding, "CAP_SYS_ADMIN") || slices.Contains(s.Process.Capabilities.Effective, "CAP_NET_RAW") {
		t.Errorf("caps %+v", s.Process.Capabilities)
	}
	in.Host.CapAdd = []string{"BOGUS"}
	if _, err := Generate(in); err == nil || !strings.Contains(err.Error(), "BOGUS") {
		t.Errorf("Generate with cap-add BOGUS: %v", err)
	}
}

// TestPrivilegedCapabilities: --privileged gets exactly the kernel's
// capabilities that berth's bounding set holds, never one it cannot grant
// (a host without CAP_SYS_RESOURCE made every privileged container fail).
func TestPrivilegedCapabilities(t *testing.T) {
	known, err := hostCapabilities()
	if err != nil {
		t.Fatal(err)
	}
	got, err := PrivilegedCapabilities()
	if err != nil {
		t.Fatal(err)
	}
	// The bounding set as the kernel reports it, read independently of
	// the prctl the code uses.
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(status), "CapBnd:")
	hex, _, _ := strings.Cut(strings.TrimSpace(rest), "\n")
	mask, err := strconv.ParseUint(hex, 16, 64)
	if err != nil {
		t.Fatalf("CapBnd %q: %v", hex, err)
	}
	var want []string
	for _, c := range capability.ListKnown() {
		name := "CAP_" + strings.ToUpper(c.String())
		if slices.Contains(known, name) && mask&(1<<uint(c)) != 0 {
			want = append(want, name)
		}
	}
	eq(t, "privileged caps", got, want)
	if len(got) == 0 {
		t.Fatal("no capability in the bounding set")
	}
}

func TestPrivileged(t *testing.T) {
	in := testInput(t)
	in.Host.Privileged = true
	s := generate(t, in)
	all, err := PrivilegedCapabilities()
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "caps", s.Process.Capabilities.Bounding, all)
	eq(t, "seccomp", s.Linux.Seccomp, (*specs.LinuxSeccomp)(nil))
	eq(t, "masked", len(s.Linux.MaskedPaths), 0)
	eq(t, "readonly", len(s.Linux.ReadonlyPaths), 0)
	eq(t, "device rules", s.Linux.Resources.Devices, []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}})
	if !slices.ContainsFunc(s.Linux.Devices, func(d specs.LinuxDevice) bool { return d.Path == "/dev/null" && d.Major == 1 && d.Minor == 3 }) {
		t.Errorf("privileged devices lack /dev/null: %d devices", len(s.Linux.Devices))
	}
	if m := findMount(s, "/sys/fs/cgroup"); slices.Contains(m.Options, "ro") {
		t.Errorf("privileged cgroup mount is read-only: %v", m.Options)
	}

	in.Host.SecurityOpt = []string{"seccomp=builtin"}
	if s := generate(t, in); s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActErrno {
		t.Errorf("privileged with seccomp=builtin: %+v, want the default profile", s.Linux.Seccomp)
	}

	// An explicit profile still applies.
	prof := filepath.Join(t.TempDir(), "p.json")
	writeFile(t, prof, `{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["reboot"],"action":"SCMP_ACT_ERRNO"}]}`)
	in.Host.SecurityOpt = []string{"seccomp=" + prof}
	s = generate(t, in)
	if s.Linux.Seccomp == nil || s.Linux.Seccomp.DefaultAction != specs.ActAllow {
		t.Errorf("privileged with a profile: seccomp %+v", s.Linux.Seccomp)
	}
}

func TestMaskOptions(t *testing.T) {
	in := testInput(t)
	in.Host.SecurityOpt = []string{"unmask=/proc/kcore:/proc/sys", "mask=/proc/extra"}
	s := generate(t, in)
	if slices.Contains(s.Linux.MaskedPaths, "/proc/kcore") || slices.Contains(s.Linux.ReadonlyPaths, "/proc/sys") {
		t.Errorf("unmask kept paths: %v %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
	if !slices.Contains(s.Linux.MaskedPaths, "/proc/extra") || !slices.Contains(s.Linux.MaskedPaths, "/proc/keys") {
		t.Errorf("masked %v", s.Linux.MaskedPaths)
	}
	in.Host.SecurityOpt = []string{"unmask=ALL"}
	s = generate(t, in)
	if len(s.Linux.MaskedPaths)+len(s.Linux.ReadonlyPaths) != 0 {
		t.Errorf("unmask=ALL left %v %v", s.Linux.MaskedPaths, s.Linux.ReadonlyPaths)
	}
}

func TestDevices(t *testing.T) {
	in := testInput(t)
	in.Host.Devices = []container.DeviceMapping{{PathOnHost: "/dev/null", PathInContainer: "/dev/mynull", CgroupPermissions: "rw"}}
	in.Host.DeviceCgroupRules = []string{"c 42:* rmw"}
	s := generate(t, in)
	if len(s.Linux.Devices) != 1 {
		t.Fatalf("devices %+v", s.Linux.Devices)
	}
	d := s.Linux.Devices[0]
	if d.Path != "/dev/mynull" || d.Type != "c" || d.Major != 1 || d.Minor != 3 || d.FileMode == nil || *d.FileMode&0o666 != 0o666 {
		t.Errorf("device %+v", d)
	}
	rules := s.Linux.Resources.Devices
	n := len(DefaultDeviceRules())
	if len(rules) != n+2 {
		t.Fatalf("rules %+v", rules)
	}
	if r := rules[n]; !r.Allow || r.Type != "c" || *r.Major != 1 || *r.Minor != 3 || r.Access != "rw" {
		t.Errorf("device rule %+v", r)
	}
	if r := rules[n+1]; r.Type != "c" || *r.Major != 42 || r.Minor != nil || r.Access != "rmw" {
		t.Errorf("cgroup rule %+v", r)
	}

	in.Host.Devices = []container.DeviceMapping{{PathOnHost: "/dev/does-not-exist"}}
	if _, err := Generate(in); err == nil || !strings.Contains(err.Error(), "/dev/does-not-exist") {
		t.Errorf("missing device: %v, want an error naming it", err)
	}
	in.Host.Devices = nil
	in.Host.DeviceCgroupRules = []string{"x 1:2 r"}
	if _, err := Generate(in); err == nil || !strings.Contains(err.Error(), "x 1:2 r") {
		t.Errorf("bad cgroup rule: %v", err)
	}
}

// The specs Generate makes pass berth's runtime's own validation.
func TestGenerateValidForRuntime(t *testing.T) {
	for name, mod := range map[string]func(*Input){
		"defaults":   func(*Input) {},
		"privileged": func(in *Input) { in.Host.Privileged = true },
		"options": func(in *Input) {
			in.Config.Tty = true
			in.Config.User = "app"
			in.Host.CapAdd = []string{"SYS_ADMIN"}
			in.Host.Memory = 64 << 20
			in.Host.Devices = []container.DeviceMapping{{PathOnHost: "/dev/null", PathInContainer: "/dev/n"}}
		},
	} {
		in := testInput(t)
		mod(&in)
		s := generate(t, in)
		if err := runtimespec.Validate(s); err != nil {
			t.Errorf("%s: runtime/spec.Validate: %v", name, err)
		}
	}
}
