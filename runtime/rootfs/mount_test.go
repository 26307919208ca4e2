package rootfs

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var scenarios = map[string]scenario{
	"full":          {afterFinalize: checkFull},
	"userns":        {afterFinalize: checkUserNS},
	"escape":        {afterPrepare: checkEscapePrepare, afterFinalize: checkEscapeFinalize},
	"nullsymlink":   {afterFinalize: checkNullSymlink},
	"prepareErr":    {},
	"cgroup":        {afterFinalize: checkCgroup},
	"defaultRslave": {afterFinalize: checkDefaultPropagation},
}

func ptr[T any](v T) *T { return &v }

// fullSpec exercises most mount types and options, devices, read-only and
// masked paths and a read-only root.
func fullSpec(t *testing.T, rootfs, hostDir string) *specs.Spec {
	writeFile(t, filepath.Join(hostDir, "data/hello"), "hello from host")
	writeFile(t, filepath.Join(hostDir, "hostfile"), "host file")
	writeFile(t, filepath.Join(hostDir, "shared/x"), "")
	writeFile(t, filepath.Join(hostDir, "private/x"), "")
	writeFile(t, filepath.Join(hostDir, "rro/x"), "")
	writeFile(t, filepath.Join(rootfs, "etc/secret"), "top secret")
	writeFile(t, filepath.Join(rootfs, "etc/secretdir/key"), "top secret")
	writeFile(t, filepath.Join(rootfs, "etc/ro/file"), "ro")
	if err := os.Symlink("/etc/hostname", filepath.Join(rootfs, "etc/secretlink")); err != nil {
		t.Fatal(err)
	}
	s := baseSpec(rootfs)
	s.Root.Readonly = true
	s.Mounts = append(s.Mounts,
		specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "size=1m", "mode=1777"}},
		specs.Mount{Destination: "/data", Type: "bind", Source: filepath.Join(hostDir, "data"), Options: []string{"rbind", "ro", "nosuid", "nodev"}},
		specs.Mount{Destination: "/etc/hostfile", Type: "bind", Source: filepath.Join(hostDir, "hostfile"), Options: []string{"bind", "ro"}},
		specs.Mount{Destination: "/shared", Source: filepath.Join(hostDir, "shared"), Options: []string{"bind", "shared"}},
		specs.Mount{Destination: "/private", Source: filepath.Join(hostDir, "private"), Options: []string{"rbind", "rprivate"}},
		specs.Mount{Destination: "/rro", Source: filepath.Join(hostDir, "rro"), Options: []string{"rbind", "rro", "rnoexec"}},
		specs.Mount{Destination: "/deep/new/dir", Type: "tmpfs", Source: "tmpfs", Options: []string{"noexec"}},
	)
	s.Linux.Devices = []specs.LinuxDevice{
		{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: ptr(os.FileMode(0o600)), UID: ptr(uint32(1000)), GID: ptr(uint32(1001))},
		{Path: "/dev/loop-test", Type: "b", Major: 7, Minor: 200, FileMode: ptr(os.FileMode(0o660))},
		{Path: "/dev/sub/fifo", Type: "p", FileMode: ptr(os.FileMode(0o640))},
		{Path: "/dev/null", Type: "c", Major: 1, Minor: 3, FileMode: ptr(os.FileMode(0o666))},
	}
	s.Linux.ReadonlyPaths = []string{"/proc/sys", "/etc/ro", "/does/not/exist"}
	s.Linux.MaskedPaths = []string{"/proc/timer_list", "/etc/secret", "/etc/secretdir", "/etc/secretlink", "/does/not/exist"}
	s.Linux.RootfsPropagation = "shared"
	return s
}

func checkFull(cfg *childConfig) error {
	var e errList
	e.checkMount("/proc", "proc", "nosuid", "nodev", "noexec")
	e.checkMount("/dev", "tmpfs", "nosuid")
	pts := e.checkMount("/dev/pts", "devpts", "nosuid", "noexec")
	for _, o := range []string{"mode=620", "ptmxmode=666", "gid=5"} {
		if !hasOpt(pts.SuperOpts, o) {
			e.add("/dev/pts: super options %s lack %s", pts.SuperOpts, o)
		}
	}
	e.checkMount("/dev/shm", "tmpfs", "nosuid", "nodev", "noexec")
	e.checkMount("/dev/mqueue", "mqueue", "nosuid", "nodev", "noexec")
	e.checkMount("/sys", "sysfs", "ro", "nosuid")
	e.checkMount("/tmp", "tmpfs", "nosuid", "nodev")
	var st unix.Statfs_t
	if err := unix.Statfs("/tmp", &st); err != nil {
		e.add("statfs /tmp: %v", err)
	} else if size := st.Blocks * uint64(st.Bsize); size != 1<<20 {
		e.add("/tmp size %d, want 1MiB", size)
	}
	if err := unix.Statfs("/dev", &st); err == nil && st.Blocks*uint64(st.Bsize) != 65536<<10 {
		e.add("/dev size %d, want 64MiB", st.Blocks*uint64(st.Bsize))
	}
	e.checkWritable("/tmp")
	e.checkMount("/deep/new/dir", "tmpfs", "noexec")

	// Bind mounts.
	e.checkMount("/data", "", "ro", "nosuid", "nodev")
	if b, err := os.ReadFile("/data/hello"); err != nil || string(b) != "hello from host" {
		e.add("/data/hello: %q, %v", b, err)
	}
	e.checkReadOnly("/data")
	e.checkMount("/etc/hostfile", "", "ro")
	if b, err := os.ReadFile("/etc/hostfile"); err != nil || string(b) != "host file" {
		e.add("/etc/hostfile: %q, %v", b, err)
	}
	if m := e.checkMount("/shared", ""); !strings.Contains(strings.Join(m.Optional, " "), "shared:") {
		e.add("/shared: optional fields %v lack shared:N", m.Optional)
	}
	// With NoPivot the rootfs tree is moved under "/", which
	// rootfsPropagation made shared, and the kernel then makes every mount
	// of the moved tree shared: only check "rprivate" with pivot_root.
	if m := e.checkMount("/private", ""); !cfg.NoPivot && len(m.Optional) != 0 {
		e.add("/private: optional fields %v, want none (private)", m.Optional)
	}
	e.checkMount("/rro", "", "ro", "noexec")
	e.checkReadOnly("/rro")

	// Devices.
	for _, d := range defaultDevices {
		e.checkDevice(d.Path, unix.S_IFCHR, uint32(d.Major), uint32(d.Minor), 0o666)
	}
	e.checkDevice("/dev/fuse", unix.S_IFCHR, 10, 229, 0o600)
	var ust unix.Stat_t
	if err := unix.Stat("/dev/fuse", &ust); err != nil || ust.Uid != 1000 || ust.Gid != 1001 {
		e.add("/dev/fuse owner %d:%d (%v), want 1000:1001", ust.Uid, ust.Gid, err)
	}
	e.checkDevice("/dev/loop-test", unix.S_IFBLK, 7, 200, 0o660)
	e.checkDevice("/dev/sub/fifo", unix.S_IFIFO, 0, 0, 0o640)
	links := map[string]string{
		"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0", "/dev/stdout": "/proc/self/fd/1",
		"/dev/stderr": "/proc/self/fd/2", "/dev/ptmx": "pts/ptmx",
	}
	// /dev/core only where the kernel has a /proc/kcore to point at.
	if _, err := os.Stat("/proc/kcore"); err == nil {
		links["/dev/core"] = "/proc/kcore"
	} else if _, err := os.Lstat("/dev/core"); err == nil {
		e.add("/dev/core exists, but this kernel has no /proc/kcore")
	}
	for link, want := range links {
		if got, err := os.Readlink(link); err != nil || got != want {
			e.add("readlink %s = %q, %v; want %q", link, got, err, want)
		}
	}
	if f, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0); err != nil {
		e.add("open /dev/ptmx: %v", err)
	} else {
		f.Close()
	}

	// Read-only and masked paths.
	if _, err := os.OpenFile("/proc/sys/kernel/hostname", os.O_WRONLY, 0); !errors.Is(err, unix.EROFS) {
		e.add("open /proc/sys/kernel/hostname for writing: %v, want EROFS", err)
	}
	e.checkMount("/proc/sys", "proc", "ro", "nosuid", "nodev", "noexec")
	e.checkMount("/etc/ro", "", "ro")
	e.checkReadOnly("/etc/ro")
	e.checkNullMasked("/proc/timer_list")
	e.checkNullMasked("/etc/secret")
	if ents, err := os.ReadDir("/etc/secretdir"); err != nil || len(ents) != 0 {
		e.add("/etc/secretdir: %d entries, %v; want empty", len(ents), err)
	}
	e.checkMount("/etc/secretdir", "tmpfs", "ro")
	e.checkReadOnly("/etc/secretdir")
	if _, ok := mountAt("/etc/secretlink"); ok {
		e.add("/etc/secretlink (a symlink) was mounted over")
	}
	if b, err := os.ReadFile("/etc/hostname"); err != nil || string(b) != "container\n" {
		e.add("/etc/hostname (symlink target of a masked path) = %q, %v", b, err)
	}

	// Read-only root, propagation.
	e.checkReadOnly("/")
	e.checkReadOnly("/etc")
	if m := e.checkMount("/", "", "ro"); !strings.Contains(strings.Join(m.Optional, " "), "shared:") {
		e.add("/: optional fields %v lack shared:N (rootfsPropagation shared)", m.Optional)
	}
	if _, err := os.Stat(cfg.HostDir); err == nil {
		e.add("host directory %s is visible after pivot", cfg.HostDir)
	}

	// The rootfs works.
	out, err := exec.Command("/bin/cat", "/etc/hostname").CombinedOutput()
	if err != nil || string(out) != "container\n" {
		e.add("/bin/cat /etc/hostname: %q, %v", out, err)
	}
	return e.err()
}

func TestFullSetup(t *testing.T) {
	for _, tc := range []struct {
		name            string
		noPivot, legacy bool
	}{
		{"Pivot", false, false},
		{"NoPivot", true, false},
		{"LegacyMountAPI", false, true},
		{"LegacyMountAPINoPivot", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rootfs := makeRootfs(t)
			hostDir := t.TempDir()
			runChild(t, &childConfig{
				Scenario: "full", Rootfs: rootfs, Spec: fullSpec(t, rootfs, hostDir),
				HostDir: hostDir, NoPivot: tc.noPivot, Legacy: tc.legacy,
			})
		})
	}
}

func checkDefaultPropagation(cfg *childConfig) error {
	var e errList
	// The test child's namespace is private, so rslave leaves "/" private.
	if m := e.checkMount("/", ""); strings.Contains(strings.Join(m.Optional, " "), "shared:") {
		e.add("/: optional fields %v, want not shared", m.Optional)
	}
	if m := e.checkMount("/proc", "proc"); len(m.Optional) != 0 {
		e.add("/proc: optional fields %v, want none", m.Optional)
	}
	e.checkWritable("/")
	return e.err()
}

func TestDefaultPropagationAndMinimalSpec(t *testing.T) {
	rootfs := makeRootfs(t)
	s := &specs.Spec{Root: &specs.Root{Path: rootfs}, Mounts: []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
	}}
	runChild(t, &childConfig{Scenario: "defaultRslave", Rootfs: rootfs, Spec: s})
}

// TestUserNS runs in a new user namespace, where mknod is refused (devices
// are bind-mounted from the host), sysfs cannot be mounted (the host's is
// bound instead) and the flags of the mounts inherited from the parent
// namespace are locked: a read-only bind of a nosuid,nodev,noexec source
// must keep those flags or the kernel refuses the remount.
func TestUserNS(t *testing.T) {
	rootfs := makeRootfs(t)
	locked := t.TempDir()
	s := baseSpec(rootfs)
	s.Root.Readonly = true
	s.Mounts = append(s.Mounts,
		specs.Mount{Destination: "/locked", Type: "bind", Source: locked, Options: []string{"rbind", "ro"}},
		specs.Mount{Destination: "/lockedfile", Type: "bind", Source: filepath.Join(locked, "file"), Options: []string{"bind", "ro", "nosuid"}},
	)
	s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/zero", Type: "c", Major: 1, Minor: 5}}
	s.Linux.ReadonlyPaths = []string{"/proc/sys"}
	s.Linux.MaskedPaths = []string{"/proc/timer_list", "/proc/scsi", "/etc/hostname"}
	inner := &childConfig{Scenario: "userns", Rootfs: rootfs, Spec: s, UserNS: true}
	runChild(t, &childConfig{Scenario: "userns", HostDir: locked, Inner: inner, UserNS: true})
}

func checkUserNS(cfg *childConfig) error {
	var e errList
	for _, d := range defaultDevices {
		e.checkDevice(d.Path, unix.S_IFCHR, uint32(d.Major), uint32(d.Minor), 0)
		if _, ok := mountAt(d.Path); !ok {
			e.add("%s is not a bind mount of the host device", d.Path)
		}
	}
	if f, err := os.OpenFile("/dev/null", os.O_WRONLY, 0); err != nil {
		e.add("open /dev/null: %v", err)
	} else {
		f.Close()
	}
	e.checkMount("/proc", "proc")
	e.checkMount("/sys", "sysfs", "ro")
	e.checkMount("/locked", "tmpfs", "ro", "nosuid", "nodev", "noexec")
	e.checkReadOnly("/locked")
	if b, err := os.ReadFile("/lockedfile"); err != nil || string(b) != "locked" {
		e.add("/lockedfile: %q, %v", b, err)
	}
	e.checkMount("/lockedfile", "tmpfs", "ro", "nosuid", "nodev", "noexec")
	e.checkMount("/proc/sys", "proc", "ro")
	e.checkNullMasked("/proc/timer_list")
	e.checkNullMasked("/etc/hostname")
	e.checkReadOnly("/")
	return e.err()
}

// TestSymlinkEscape (CVE-2021-30465): a destination that is a symlink
// pointing out of the rootfs is resolved inside the rootfs.
func TestSymlinkEscape(t *testing.T) {
	rootfs := makeRootfs(t)
	// Host directories the symlinks aim at: x for a directory bind, y for
	// a tmpfs, f (its "file") for a file bind.
	host := map[string]string{}
	for _, n := range []string{"x", "y", "f"} {
		d, err := os.MkdirTemp("/tmp", "berth-escape-"+n+"-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		host[n] = d
	}
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "from-source"), "x")
	up := strings.Repeat("../", 16)
	links := map[string]string{"x": host["x"], "y": host["y"], "f": host["f"] + "/file"}
	for n, target := range links {
		if err := os.Symlink(up+strings.TrimPrefix(target, "/"), filepath.Join(rootfs, "mnt", n)); err != nil {
			t.Fatal(err)
		}
	}
	s := baseSpec(rootfs)
	s.Mounts = append(s.Mounts,
		specs.Mount{Destination: "/mnt/x", Type: "bind", Source: src, Options: []string{"rbind"}},
		specs.Mount{Destination: "/mnt/y", Type: "tmpfs", Source: "tmpfs"},
		specs.Mount{Destination: "/mnt/f", Type: "bind", Source: filepath.Join(src, "from-source"), Options: []string{"bind"}},
	)
	hostDirs := host["x"] + ":" + host["y"] + ":" + host["f"]
	runChild(t, &childConfig{Scenario: "escape", Rootfs: rootfs, Spec: s, HostDir: hostDirs})
	for _, d := range host {
		ents, err := os.ReadDir(d)
		if err != nil || len(ents) != 0 {
			t.Errorf("host dir %s: %d entries, %v; want untouched and empty", d, len(ents), err)
		}
	}
	for _, p := range links {
		if _, err := os.Stat(filepath.Join(rootfs, p)); err != nil {
			t.Errorf("mount point not created inside the rootfs: %v", err)
		}
	}
}

func checkEscapePrepare(cfg *childConfig) error {
	var e errList
	dirs := strings.Split(cfg.HostDir, ":")
	targets := []string{dirs[0], dirs[1], dirs[2] + "/file"}
	for i, p := range targets {
		if _, ok := mountAt(p); ok {
			e.add("mount landed on the host path %s", p)
		}
		m := e.checkMount(filepath.Join(cfg.Rootfs, p), "")
		if i == 1 && m.FSType != "tmpfs" {
			e.add("%s: fstype %q, want tmpfs", p, m.FSType)
		}
	}
	if _, err := os.Stat(filepath.Join(dirs[0], "from-source")); err == nil {
		e.add("bind source visible in the host dir")
	}
	if _, err := os.Stat(filepath.Join(cfg.Rootfs, dirs[0], "from-source")); err != nil {
		e.add("bind source not visible inside the rootfs: %v", err)
	}
	return e.err()
}

func checkEscapeFinalize(cfg *childConfig) error {
	var e errList
	dirs := strings.Split(cfg.HostDir, ":")
	if _, err := os.Stat("/mnt/x/from-source"); err != nil {
		e.add("/mnt/x/from-source: %v", err)
	}
	e.checkMount(dirs[1], "tmpfs")
	if b, err := os.ReadFile("/mnt/f"); err != nil || string(b) != "x" {
		e.add("/mnt/f: %q, %v", b, err)
	}
	return e.err()
}

// TestMaskedPathNullSymlink (CVE-2025-31133): the container's /dev/null is
// a symlink (or a regular file); masking must still use the real null
// device and never bind the crafted file.
func TestMaskedPathNullSymlink(t *testing.T) {
	for _, tc := range []struct {
		name   string
		legacy bool
		null   string // "symlink" or "file"
	}{
		{"Symlink", false, "symlink"},
		{"File", false, "file"},
		{"SymlinkLegacyNoPivot", true, "symlink"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rootfs := makeRootfs(t)
			crafted := t.TempDir()
			writeFile(t, filepath.Join(rootfs, "crafted"), "CRAFTED")
			writeFile(t, filepath.Join(rootfs, "etc/masked"), "secret")
			if tc.null == "symlink" {
				if err := os.Symlink("/crafted", filepath.Join(crafted, "null")); err != nil {
					t.Fatal(err)
				}
			} else {
				writeFile(t, filepath.Join(crafted, "null"), "CRAFTED")
			}
			s := baseSpec(rootfs)
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/dev", Type: "bind", Source: crafted, Options: []string{"rbind"}})
			s.Linux.MaskedPaths = []string{"/etc/masked", "/proc/timer_list"}
			runChild(t, &childConfig{Scenario: "nullsymlink", Rootfs: rootfs, Spec: s, Legacy: tc.legacy, NoPivot: tc.legacy})
		})
	}
}

// TestMaskedPathNullFallbackRefusesCrafted covers old kernels without
// open_tree(2) after pivot_root: the detached host /dev/null cannot be
// bound, and the container's /dev/null is used only if it is the real
// device. A crafted one is refused.
func TestMaskedPathNullFallbackRefusesCrafted(t *testing.T) {
	rootfs := makeRootfs(t)
	crafted := t.TempDir()
	writeFile(t, filepath.Join(rootfs, "crafted"), "CRAFTED")
	writeFile(t, filepath.Join(rootfs, "etc/masked"), "secret")
	if err := os.Symlink("/crafted", filepath.Join(crafted, "null")); err != nil {
		t.Fatal(err)
	}
	s := baseSpec(rootfs)
	s.Mounts = append(s.Mounts, specs.Mount{Destination: "/dev", Type: "bind", Source: crafted, Options: []string{"rbind"}})
	s.Linux.MaskedPaths = []string{"/etc/masked"}
	got := runChild(t, &childConfig{Scenario: "nullsymlink", Rootfs: rootfs, Spec: s, Legacy: true, WantFinalizeErr: true})
	want := "linux.maskedPaths[0]: /etc/masked: mount null device: container /dev/null: not the null device"
	if !strings.HasPrefix(got, want) {
		t.Errorf("Finalize error = %q, want prefix %q", got, want)
	}
}

func checkNullSymlink(cfg *childConfig) error {
	var e errList
	e.checkNullMasked("/etc/masked")
	e.checkNullMasked("/proc/timer_list")
	if b, err := os.ReadFile("/crafted"); err != nil || string(b) != "CRAFTED" {
		e.add("/crafted changed: %q, %v", b, err)
	}
	if _, ok := mountAt("/crafted"); ok {
		e.add("/crafted was mounted over")
	}
	return e.err()
}

// prepareError runs Prepare in a child and returns its error message.
func prepareError(t *testing.T, rootfs string, s *specs.Spec) string {
	t.Helper()
	return runChild(t, &childConfig{Scenario: "prepareErr", Rootfs: rootfs, Spec: s, WantPrepareErr: true})
}

func TestPrepareErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, rootfs string, s *specs.Spec)
		want  string
	}{
		{"RelativeDestination", func(t *testing.T, rootfs string, s *specs.Spec) {
			s.Mounts = append(s.Mounts[:3:3], specs.Mount{Destination: "rel/path", Type: "tmpfs", Source: "tmpfs"})
		}, `mounts[3]: destination "rel/path" is not absolute`},
		{"MissingBindSource", func(t *testing.T, rootfs string, s *specs.Spec) {
			s.Mounts = append(s.Mounts[:1:1], specs.Mount{Destination: "/x", Type: "bind", Source: "/nope", Options: []string{"rbind"}})
		}, `mounts[1]: bind source /nope: no such file or directory`},
		{"DeviceOutsideDev", func(t *testing.T, rootfs string, s *specs.Spec) {
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/etc/x", Type: "c", Major: 1, Minor: 3}}
		}, `linux.devices[0]: path "/etc/x" is outside /dev`},
		{"DeviceDotDot", func(t *testing.T, rootfs string, s *specs.Spec) {
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/null", Type: "c", Major: 1, Minor: 3}, {Path: "/dev/../etc/x", Type: "c", Major: 1, Minor: 3}}
		}, `linux.devices[1]: path "/dev/../etc/x" is outside /dev`},
		{"DeviceBadType", func(t *testing.T, rootfs string, s *specs.Spec) {
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/x", Type: "z"}}
		}, `linux.devices[0]: type "z"`},
		{"IdmapRefused", func(t *testing.T, rootfs string, s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/x", Type: "bind", Source: "/tmp", Options: []string{"rbind", "idmap"}})
		}, `mounts[6]: option "idmap"`},
		{"BadRootfsPropagation", func(t *testing.T, rootfs string, s *specs.Spec) {
			s.Linux.RootfsPropagation = "sideways"
		}, `linux.rootfsPropagation: unknown value "sideways"`},
		// CVE-2019-19921 family: procfs/sysfs never go on a symlink, even
		// one that stays inside the rootfs.
		{"ProcOnSymlink", func(t *testing.T, rootfs string, s *specs.Spec) {
			os.Remove(filepath.Join(rootfs, "proc"))
			if err := os.Symlink("tmp", filepath.Join(rootfs, "proc")); err != nil {
				t.Fatal(err)
			}
		}, `mounts[0]: mount proc (type "proc") on /proc: "/proc" in rootfs is a symlink`},
		{"SysOnSymlink", func(t *testing.T, rootfs string, s *specs.Spec) {
			os.Remove(filepath.Join(rootfs, "sys"))
			if err := os.Symlink("/tmp", filepath.Join(rootfs, "sys")); err != nil {
				t.Fatal(err)
			}
		}, `mounts[5]: mount sysfs (type "sysfs") on /sys: "/sys" in rootfs is a symlink`},
		{"BindDirOnFile", func(t *testing.T, rootfs string, s *specs.Spec) {
			writeFile(t, filepath.Join(rootfs, "etc/file"), "")
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "/etc/file", Type: "bind", Source: "/tmp", Options: []string{"rbind"}})
		}, `mounts[6]: mount /tmp (type "bind") on /etc/file: "/etc/file" in rootfs is not a directory`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rootfs := makeRootfs(t)
			s := baseSpec(rootfs)
			tt.setup(t, rootfs, s)
			got := prepareError(t, rootfs, s)
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("error = %q\nwant prefix %q", got, tt.want)
			}
		})
	}
}
