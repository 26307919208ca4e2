package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// bundle writes a bundle whose config is the default spec changed by edit.
func bundle(t *testing.T, edit func(*specs.Spec)) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	s := Default(false)
	if edit != nil {
		edit(s)
	}
	writeJSON(t, filepath.Join(dir, "config.json"), s)
	return dir
}

func TestLoadDefault(t *testing.T) {
	dir := bundle(t, nil)
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Root.Path != filepath.Join(dir, "rootfs") {
		t.Errorf("root.path %q not made absolute against the bundle", s.Root.Path)
	}
	rl := Default(true)
	if !hasNS(rl, specs.UserNamespace) || len(rl.Linux.UIDMappings) != 1 || rl.Linux.UIDMappings[0].HostID != uint32(os.Geteuid()) {
		t.Errorf("rootless spec has no user namespace mapping the caller: %+v", rl.Linux)
	}
	for _, m := range rl.Mounts {
		if m.Destination == "/sys/fs/cgroup" || m.Type == "sysfs" {
			t.Errorf("rootless spec keeps mount %s (%s)", m.Destination, m.Type)
		}
	}
	if err := Validate(rl); err == nil || !strings.Contains(err.Error(), "root.path") {
		t.Errorf("a relative root.path outside a bundle should not validate: %v", err)
	}
}

func hasNS(s *specs.Spec, t specs.LinuxNamespaceType) bool {
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == t {
			return true
		}
	}
	return false
}

func TestLoadErrors(t *testing.T) {
	neg := -1001
	for _, tc := range []struct {
		name string
		edit func(*specs.Spec)
		raw  string // config.json text instead of the edited default
		want string
	}{
		{name: "malformed", raw: `{"ociVersion": "1.0.0", "process": {`, want: "malformed JSON at byte 36"},
		{name: "wrong type", raw: `{"ociVersion": "1.0.0", "process": {"args": "sh"}}`, want: "field process.args: cannot use JSON string"},
		{name: "version", edit: func(s *specs.Spec) { s.Version = "one" }, want: `ociVersion: "one" is not a SemVer version`},
		{name: "no rootfs", edit: func(s *specs.Spec) { s.Root.Path = "nope" }, want: "root.path: stat"},
		{name: "no args", edit: func(s *specs.Spec) { s.Process.Args = nil }, want: "process.args: empty"},
		{name: "relative cwd", edit: func(s *specs.Spec) { s.Process.Cwd = "tmp" }, want: `process.cwd: "tmp" is not an absolute path`},
		{name: "env", edit: func(s *specs.Spec) { s.Process.Env = append(s.Process.Env, "NOEQUALS") }, want: `process.env[2]: "NOEQUALS" is not KEY=VALUE`},
		{name: "rlimit type", edit: func(s *specs.Spec) { s.Process.Rlimits[0].Type = "RLIMIT_FOO" }, want: `process.rlimits[0]: unknown type "RLIMIT_FOO"`},
		{name: "rlimit soft>hard", edit: func(s *specs.Spec) { s.Process.Rlimits[0].Soft = 2048 }, want: "process.rlimits[0]: RLIMIT_NOFILE soft limit 2048 exceeds hard limit 1024"},
		{name: "oom", edit: func(s *specs.Spec) { s.Process.OOMScoreAdj = &neg }, want: "process.oomScoreAdj: -1001 is outside -1000..1000"},
		{name: "namespace type", edit: func(s *specs.Spec) { s.Linux.Namespaces[1].Type = "netwrok" }, want: `linux.namespaces[1]: unknown namespace type "netwrok"`},
		{name: "namespace twice", edit: func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.PIDNamespace})
		}, want: "linux.namespaces[6]: pid namespace given twice"},
		{name: "namespace path", edit: func(s *specs.Spec) { s.Linux.Namespaces[1].Path = "/proc/0/ns/net" }, want: "linux.namespaces[1]: network namespace path: stat /proc/0/ns/net"},
		{name: "userns without maps", edit: func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
		}, want: "linux.namespaces[6]: a new user namespace needs linux.uidMappings and linux.gidMappings"},
		{name: "hostname without uts", edit: func(s *specs.Spec) {
			s.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.MountNamespace}}
		}, want: "hostname: setting it needs a uts namespace"},
		{name: "host sysctl", edit: func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"vm.swappiness": "1"} }, want: `linux.sysctl["vm.swappiness"]: not a namespaced sysctl`},
		{name: "net sysctl without netns", edit: func(s *specs.Spec) {
			s.Linux.Namespaces = s.Linux.Namespaces[:1]
			s.Hostname = ""
			s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1"}
		}, want: `linux.sysctl["net.ipv4.ip_forward"]: needs a network namespace`},
		{name: "device outside /dev", edit: func(s *specs.Spec) {
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/etc/x", Type: "c"}}
		}, want: `linux.devices[0]: path "/etc/x" is outside /dev`},
		{name: "mount destination", edit: func(s *specs.Spec) { s.Mounts[2].Destination = "dev/pts" }, want: `mounts[2]: destination "dev/pts" is not absolute`},
		{name: "propagation", edit: func(s *specs.Spec) { s.Linux.RootfsPropagation = "sideways" }, want: `linux.rootfsPropagation: unknown value "sideways"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := bundle(t, tc.edit)
			if tc.raw != "" {
				os.WriteFile(filepath.Join(dir, "config.json"), []byte(tc.raw), 0o644)
			}
			_, err := Load(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
			if strings.Count(err.Error(), "\n") != 0 {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
}

func TestLoadMissingConfig(t *testing.T) {
	_, err := Load(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "config.json not found") {
		t.Fatalf("error %v", err)
	}
}
