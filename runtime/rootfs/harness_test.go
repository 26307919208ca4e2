package rootfs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The mount tests run Prepare/Pivot/Finalize in a re-executed copy of the
// test binary inside fresh mount and PID namespaces, so nothing they mount
// reaches the host and everything vanishes when the child exits.

const childEnv = "BERTH_ROOTFS_TEST_CHILD"

// childConfig is what the parent hands to a child (as JSON in childEnv).
type childConfig struct {
	Scenario string
	Rootfs   string
	Spec     *specs.Spec
	NoPivot  bool
	UserNS   bool
	Legacy   bool
	// HostDir is a scenario-specific host path.
	HostDir string
	// WantPrepareErr makes the child print Prepare's error on stdout
	// instead of failing.
	WantPrepareErr bool
	// WantFinalizeErr is the same for Finalize.
	WantFinalizeErr bool
	// Inner, when set, makes this child an outer helper: it mounts a
	// nosuid,nodev,noexec tmpfs on HostDir, then runs Inner in a new user
	// namespace (so that tmpfs's flags are locked there).
	Inner *childConfig
}

// scenario holds the checks of one test, run in the child.
type scenario struct {
	afterPrepare  func(cfg *childConfig) error
	afterFinalize func(cfg *childConfig) error
}

// scenarios is defined in mount_test.go.

func TestMain(m *testing.M) {
	if v := os.Getenv(childEnv); v != "" {
		os.Exit(childMain(v))
	}
	os.Exit(m.Run())
}

func childMain(v string) int {
	runtime.LockOSThread()
	var cfg childConfig
	if err := json.Unmarshal([]byte(v), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "child config:", err)
		return 2
	}
	if err := runScenario(&cfg); err != nil {
		fmt.Fprintf(os.Stderr, "scenario %s: %v\n", cfg.Scenario, err)
		return 1
	}
	return 0
}

func runScenario(cfg *childConfig) error {
	if cfg.Inner != nil {
		// The inner child's uid_map is written through /proc/<pid>: /proc
		// must show this PID namespace.
		if err := unix.Mount("proc", "/proc", "proc", 0, ""); err != nil {
			return fmt.Errorf("mount /proc: %w", err)
		}
		if err := unix.Mount("tmpfs", cfg.HostDir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=1m"); err != nil {
			return fmt.Errorf("mount locked tmpfs: %w", err)
		}
		if err := os.WriteFile(filepath.Join(cfg.HostDir, "file"), []byte("locked"), 0o644); err != nil {
			return err
		}
		out, err := childCommand(cfg.Inner, true).CombinedOutput()
		os.Stdout.Write(out)
		return err
	}
	sc, ok := scenarios[cfg.Scenario]
	if !ok {
		return fmt.Errorf("unknown scenario")
	}
	c := &Config{Spec: cfg.Spec, Rootfs: cfg.Rootfs, NoPivot: cfg.NoPivot, UserNS: cfg.UserNS, legacyMountAPI: cfg.Legacy}
	err := Prepare(c)
	if cfg.WantPrepareErr {
		c.Close()
		if err == nil {
			return fmt.Errorf("Prepare succeeded, want an error")
		}
		fmt.Print(err.Error())
		return nil
	}
	if err != nil {
		return fmt.Errorf("Prepare: %w", err)
	}
	if sc.afterPrepare != nil {
		if err := sc.afterPrepare(cfg); err != nil {
			return fmt.Errorf("after Prepare: %w", err)
		}
	}
	if err := Pivot(c); err != nil {
		return fmt.Errorf("Pivot: %w", err)
	}
	err = Finalize(c)
	if cfg.WantFinalizeErr {
		if err == nil {
			return fmt.Errorf("Finalize succeeded, want an error")
		}
		fmt.Print(err.Error())
		return nil
	}
	if err != nil {
		return fmt.Errorf("Finalize: %w", err)
	}
	if c.null != nil {
		return fmt.Errorf("Finalize left the host /dev/null handle open")
	}
	if sc.afterFinalize != nil {
		if err := sc.afterFinalize(cfg); err != nil {
			return fmt.Errorf("after Finalize: %w", err)
		}
	}
	return nil
}

// childCommand returns the command running cfg in new namespaces.
func childCommand(cfg *childConfig, userns bool) *exec.Cmd {
	data, err := json.Marshal(cfg)
	if err != nil {
		panic(err)
	}
	self, err := os.Executable()
	if err != nil {
		self = os.Args[0]
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(data))
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:   syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
		Unshareflags: syscall.CLONE_NEWNS,
		Pdeathsig:    syscall.SIGKILL,
	}
	if userns {
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER | syscall.CLONE_NEWIPC
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 65536}}
		cmd.SysProcAttr.GidMappingsEnableSetgroups = true
	}
	if cfg.Spec != nil && cfg.Spec.Linux != nil {
		for _, ns := range cfg.Spec.Linux.Namespaces {
			if ns.Type == specs.CgroupNamespace {
				cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWCGROUP
			}
		}
	}
	return cmd
}

// runChild runs cfg in a child and fails the test if the child fails. It
// returns the child's standard output.
func runChild(t *testing.T, cfg *childConfig) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mount tests need root")
	}
	if _, ok := scenarios[cfg.Scenario]; !ok {
		t.Fatalf("scenario %q is not registered", cfg.Scenario)
	}
	cmd := childCommand(cfg, cfg.UserNS && cfg.Inner == nil)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("child failed: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// busyboxPath finds a static busybox (Debian's busybox-static, or the VM's).
func busyboxPath(t *testing.T) string {
	for _, p := range []string{"/usr/bin/busybox", "/bin/busybox"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skip("no busybox on this machine")
	return ""
}

// makeRootfs builds a small busybox rootfs in a temporary directory.
func makeRootfs(t *testing.T) string {
	t.Helper()
	bb := busyboxPath(t)
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"bin", "dev", "proc", "sys", "etc", "tmp", "mnt"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"sh", "ls", "cat", "stat", "mount", "touch"} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", l)); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(rootfs, "etc/hostname"), "container\n")
	return rootfs
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// baseSpec returns a spec with the usual runc default mounts.
func baseSpec(rootfs string) *specs.Spec {
	return &specs.Spec{
		Root: &specs.Root{Path: rootfs},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{},
	}
}

// errList collects check failures in the child.
type errList []string

func (e *errList) add(format string, args ...any) {
	*e = append(*e, fmt.Sprintf(format, args...))
}

func (e errList) err() error {
	if len(e) == 0 {
		return nil
	}
	return fmt.Errorf("%d check(s) failed:\n  %s", len(e), strings.Join(e, "\n  "))
}

// mountAt returns the topmost mount at mountpoint in the child's view.
func mountAt(mountpoint string) (mountInfo, bool) {
	ms, err := readMountinfo()
	if err != nil {
		return mountInfo{}, false
	}
	var found mountInfo
	ok := false
	for _, m := range ms {
		if m.Mountpoint == mountpoint {
			found, ok = m, true
		}
	}
	return found, ok
}

// hasOpt reports whether the comma separated list has opt.
func hasOpt(list, opt string) bool {
	for _, o := range strings.Split(list, ",") {
		if o == opt {
			return true
		}
	}
	return false
}

// checkMount checks that a mount is at path with the given type and
// per-mount options.
func (e *errList) checkMount(path, fstype string, opts ...string) mountInfo {
	m, ok := mountAt(path)
	if !ok {
		e.add("no mount at %s", path)
		return m
	}
	if fstype != "" && m.FSType != fstype {
		e.add("%s: fstype %s, want %s", path, m.FSType, fstype)
	}
	for _, o := range opts {
		if !hasOpt(m.Options, o) {
			e.add("%s: options %s lack %s", path, m.Options, o)
		}
	}
	return m
}

// checkDevice checks a device node's type, number and permissions.
func (e *errList) checkDevice(path string, typ uint32, major, minor uint32, perm uint32) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		e.add("%s: %v", path, err)
		return
	}
	if st.Mode&unix.S_IFMT != typ || unix.Major(st.Rdev) != major || unix.Minor(st.Rdev) != minor {
		e.add("%s: mode %#o rdev %d:%d, want type %#o %d:%d", path, st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev), typ, major, minor)
	}
	if perm != 0 && st.Mode&0o7777 != perm {
		e.add("%s: permissions %#o, want %#o", path, st.Mode&0o7777, perm)
	}
}

// checkReadOnly checks that creating a file in dir fails with EROFS.
func (e *errList) checkReadOnly(dir string) {
	err := os.WriteFile(filepath.Join(dir, ".berth-rw-probe"), nil, 0o644)
	if err == nil {
		e.add("%s is writable, want read-only", dir)
		os.Remove(filepath.Join(dir, ".berth-rw-probe"))
	} else if !strings.Contains(err.Error(), unix.EROFS.Error()) {
		e.add("%s: write failed with %v, want EROFS", dir, err)
	}
}

// checkWritable checks that a file can be created in dir.
func (e *errList) checkWritable(dir string) {
	p := filepath.Join(dir, ".berth-rw-probe")
	if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
		e.add("%s is not writable: %v", dir, err)
		return
	}
	os.Remove(p)
}

// checkNullMasked checks that path is the null device and reads empty.
func (e *errList) checkNullMasked(path string) {
	e.checkDevice(path, unix.S_IFCHR, 1, 3, 0)
	data, err := os.ReadFile(path)
	if err != nil || len(data) != 0 {
		e.add("%s: read %q, %v; want empty", path, data, err)
	}
}
