package oci

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// DefaultPathEnv is the PATH a container gets when its config sets none.
const DefaultPathEnv = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// defaultShmSize is docker's /dev/shm size: 64 MiB.
const defaultShmSize = 64 << 20

// DefaultMaskedPaths are the paths docker hides from a container.
var DefaultMaskedPaths = []string{
	"/proc/asound",
	"/proc/acpi",
	"/proc/interrupts",
	"/proc/kcore",
	"/proc/keys",
	"/proc/latency_stats",
	"/proc/timer_list",
	"/proc/timer_stats",
	"/proc/sched_debug",
	"/proc/scsi",
	"/sys/firmware",
	"/sys/devices/virtual/powercap",
}

// DefaultReadonlyPaths are the paths docker makes read-only in a container.
var DefaultReadonlyPaths = []string{
	"/proc/bus",
	"/proc/fs",
	"/proc/irq",
	"/proc/sys",
	"/proc/sysrq-trigger",
}

// Input is what [Generate] needs to know of a container.
type Input struct {
	// ID is the container's ID; Generate's errors name it.
	ID     string
	Config *container.Config // already merged with the image's (see Merge)
	Host   *container.HostConfig
	// Rootfs is the host path of the container's mounted root
	// filesystem; /etc/passwd and /etc/group are read inside it.
	Rootfs   string
	Hostname string
	// Files the engine prepared on the host, bind-mounted at /etc/hosts,
	// /etc/hostname and /etc/resolv.conf ("" for none).
	HostsPath, HostnamePath, ResolvConfPath string
	// Mounts are the binds, volumes and tmpfs mounts the engine already
	// resolved to host sources; one at the destination of a default
	// mount replaces it.
	Mounts []specs.Mount
	// InitPath is the host path of the init for HostConfig.Init: it is
	// bind-mounted read-only at /dev/init, which runs the command.
	InitPath string
	// CgroupsPath is linux.cgroupsPath, e.g. "berth/<id>".
	CgroupsPath string
	// NetNSPath is the network namespace to join, for network modes
	// other than host, none and default (whose namespace the engine
	// sets up). When set it is used for those too.
	NetNSPath string
	// NumCPU is the number of CPUs of the host for --cpus validation;
	// 0 means runtime.NumCPU().
	NumCPU int
}

// InitDest is where HostConfig.Init's binary is mounted.
const InitDest = "/dev/init"

// Generate returns the OCI runtime spec of a container: docker's defaults,
// the merged config and the host config's options. Errors name the
// container and what was wrong, in docker's words where docker has some.
func Generate(in Input) (*specs.Spec, error) {
	s, err := buildSpec(in)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", in.ID, err)
	}
	return s, nil
}

func buildSpec(in Input) (*specs.Spec, error) {
	cfg, hc := in.Config, in.Host
	if cfg == nil {
		return nil, errors.New("generate spec: no container config")
	}
	if hc == nil {
		hc = &container.HostConfig{}
	}
	if in.Rootfs == "" {
		return nil, errors.New("generate spec: no rootfs")
	}
	sec, err := parseSecurityOpts(hc.SecurityOpt)
	if err != nil {
		return nil, err
	}

	s := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: in.Rootfs, Readonly: hc.ReadonlyRootfs},
		Linux:   &specs.Linux{CgroupsPath: in.CgroupsPath},
	}

	// Namespaces and hostname.
	hostNet := hc.NetworkMode == "host"
	s.Hostname = in.Hostname
	if hostNet {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("host network: read the host's hostname: %w", err)
		}
		s.Hostname = h
	}
	ns, err := Namespaces(hc, in.NetNSPath)
	if err != nil {
		return nil, err
	}
	s.Linux.Namespaces = ns
	if hc.UTSMode.IsHost() {
		s.Hostname = ""
	} else {
		s.Domainname = cfg.Domainname
	}
	if len(hc.Annotations) > 0 {
		s.Annotations = maps.Clone(hc.Annotations)
	}

	// Process.
	p, err := process(in, cfg, hc, sec, s.Hostname)
	if err != nil {
		return nil, err
	}
	s.Process = p

	// Capabilities and seccomp.
	var caps []string
	if hc.Privileged {
		if caps, err = PrivilegedCapabilities(); err != nil {
			return nil, err
		}
	} else if caps, err = Capabilities(DefaultCapabilities, hc.CapAdd, hc.CapDrop); err != nil {
		return nil, err
	}
	p.Capabilities = &specs.LinuxCapabilities{
		Bounding:  caps,
		Effective: slices.Clone(caps),
		Permitted: slices.Clone(caps),
	}
	switch {
	case sec.seccompUnconfined:
	case sec.seccompProfile != nil:
		if s.Linux.Seccomp, err = seccompFromJSON(sec.seccompProfile, caps); err != nil {
			return nil, fmt.Errorf("seccomp profile %s: %w", sec.seccompSource, err)
		}
	case hc.Privileged && !sec.seccompBuiltin:
	default:
		if s.Linux.Seccomp, err = DefaultSeccomp(caps); err != nil {
			return nil, err
		}
	}

	// Mounts.
	if s.Mounts, err = mounts(in, hc); err != nil {
		return nil, err
	}

	// Masked and read-only paths.
	if !hc.Privileged && !sec.unmaskAll {
		masked, ro := DefaultMaskedPaths, DefaultReadonlyPaths
		if hc.MaskedPaths != nil {
			masked = hc.MaskedPaths
		}
		if hc.ReadonlyPaths != nil {
			ro = hc.ReadonlyPaths
		}
		keep := func(p string) bool { return !slices.Contains(sec.unmask, p) }
		for _, m := range masked {
			if keep(m) {
				s.Linux.MaskedPaths = append(s.Linux.MaskedPaths, m)
			}
		}
		for _, m := range ro {
			if keep(m) {
				s.Linux.ReadonlyPaths = append(s.Linux.ReadonlyPaths, m)
			}
		}
	}
	for _, m := range sec.mask {
		if !slices.Contains(s.Linux.MaskedPaths, m) {
			s.Linux.MaskedPaths = append(s.Linux.MaskedPaths, m)
		}
	}

	// Devices and resources.
	res, err := Resources(hc.Resources, in.NumCPU)
	if err != nil {
		return nil, err
	}
	s.Linux.Resources = res
	if hc.Privileged {
		if s.Linux.Devices, err = hostDevices(); err != nil {
			return nil, err
		}
		res.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
	} else {
		res.Devices = DefaultDeviceRules()
	}
	devs, rules, err := Devices(hc.Devices)
	if err != nil {
		return nil, err
	}
	s.Linux.Devices = append(s.Linux.Devices, devs...)
	if !hc.Privileged {
		res.Devices = append(res.Devices, rules...)
		for _, r := range hc.DeviceCgroupRules {
			rule, err := parseDeviceCgroupRule(r)
			if err != nil {
				return nil, err
			}
			res.Devices = append(res.Devices, rule)
		}
	}

	// Sysctls.
	if len(hc.Sysctls) > 0 {
		s.Linux.Sysctl = make(map[string]string, len(hc.Sysctls))
		for k, v := range hc.Sysctls {
			if err := checkSysctl(k, hc); err != nil {
				return nil, err
			}
			s.Linux.Sysctl[k] = v
		}
	}
	return s, nil
}

// Namespaces returns the namespaces of a container with hc whose network
// namespace is at netnsPath ("" for none or a new one): docker's default
// is a new one of each kind but user; a cgroup namespace of its own on a
// cgroup v2 host, the host's on v1. Generate gives the spec these.
func Namespaces(hc *container.HostConfig, netnsPath string) ([]specs.LinuxNamespace, error) {
	var ns []specs.LinuxNamespace
	switch {
	case hc.PidMode == "":
		ns = append(ns, specs.LinuxNamespace{Type: specs.PIDNamespace})
	case hc.PidMode.IsHost():
	default:
		return nil, fmt.Errorf("pid mode %q is not supported", hc.PidMode)
	}
	switch {
	case hc.IpcMode.IsEmpty(), hc.IpcMode.IsPrivate(), hc.IpcMode.IsShareable(), hc.IpcMode.IsNone():
		ns = append(ns, specs.LinuxNamespace{Type: specs.IPCNamespace})
	case hc.IpcMode.IsHost():
	default:
		return nil, fmt.Errorf("ipc mode %q is not supported", hc.IpcMode)
	}
	switch {
	case hc.UTSMode == "":
		ns = append(ns, specs.LinuxNamespace{Type: specs.UTSNamespace})
	case hc.UTSMode.IsHost():
	default:
		return nil, fmt.Errorf("uts mode %q is not supported", hc.UTSMode)
	}
	ns = append(ns, specs.LinuxNamespace{Type: specs.MountNamespace})
	switch mode := hc.NetworkMode; {
	case mode == "host":
		if netnsPath != "" {
			return nil, fmt.Errorf("network mode host: cannot also join network namespace %s", netnsPath)
		}
	case netnsPath != "":
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: netnsPath})
	case mode == "" || mode == "none" || mode == "default":
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	default:
		return nil, fmt.Errorf("network mode %q needs the path of its network namespace", mode)
	}
	if !hc.UsernsMode.Valid() {
		return nil, fmt.Errorf("userns mode %q is not supported", hc.UsernsMode)
	}
	private := false
	switch hc.CgroupnsMode {
	case container.CgroupnsModePrivate:
		private = true
	case container.CgroupnsModeHost:
	case container.CgroupnsModeEmpty:
		v2, err := cgroup2Host()
		if err != nil {
			return nil, err
		}
		private = v2
	default:
		return nil, fmt.Errorf("cgroupns mode %q is not supported", hc.CgroupnsMode)
	}
	if private {
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return ns, nil
}

// cgroup2Host reports whether /sys/fs/cgroup is the unified hierarchy.
func cgroup2Host() (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return false, fmt.Errorf("statfs /sys/fs/cgroup: %w", err)
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC, nil
}

// rlimits maps docker's ulimit names to the spec's.
var rlimits = map[string]string{
	"as": "RLIMIT_AS", "core": "RLIMIT_CORE", "cpu": "RLIMIT_CPU", "data": "RLIMIT_DATA",
	"fsize": "RLIMIT_FSIZE", "locks": "RLIMIT_LOCKS", "memlock": "RLIMIT_MEMLOCK",
	"msgqueue": "RLIMIT_MSGQUEUE", "nice": "RLIMIT_NICE", "nofile": "RLIMIT_NOFILE",
	"nproc": "RLIMIT_NPROC", "rss": "RLIMIT_RSS", "rtprio": "RLIMIT_RTPRIO",
	"rttime": "RLIMIT_RTTIME", "sigpending": "RLIMIT_SIGPENDING", "stack": "RLIMIT_STACK",
}

func process(in Input, cfg *container.Config, hc *container.HostConfig, sec securityOpts, hostname string) (*specs.Process, error) {
	args := append(slices.Clone(cfg.Entrypoint), cfg.Cmd...)
	if len(args) == 0 {
		return nil, ErrNoCommand
	}
	if hc.Init != nil && *hc.Init {
		if in.InitPath == "" {
			return nil, errors.New("init requested but no init binary given")
		}
		args = append([]string{InitDest, "--"}, args...)
	}
	cwd := cfg.WorkingDir
	if cwd == "" {
		cwd = "/"
	}
	if !path.IsAbs(cwd) {
		return nil, fmt.Errorf("the working directory %q is invalid, it needs to be an absolute path", cfg.WorkingDir)
	}
	user, home, err := ResolveUserHome(in.Rootfs, cfg.User)
	if err != nil {
		return nil, err
	}
	extra, err := ResolveGroups(in.Rootfs, hc.GroupAdd)
	if err != nil {
		return nil, err
	}
	for _, g := range extra {
		user.AdditionalGids = appendGid(user.AdditionalGids, g)
	}
	if hc.Umask != nil {
		user.Umask = ptr(*hc.Umask)
	}

	env := []string{"PATH=" + DefaultPathEnv}
	if hostname != "" {
		env = append(env, "HOSTNAME="+hostname)
	}
	if cfg.Tty {
		env = append(env, "TERM=xterm")
	}
	env = replaceEnv(env, cfg.Env)
	if !slices.ContainsFunc(env, func(kv string) bool { return envKey(kv) == "HOME" }) {
		env = append(env, "HOME="+home)
	}

	p := &specs.Process{
		Terminal:        cfg.Tty,
		User:            user,
		Args:            args,
		Env:             env,
		Cwd:             path.Clean(cwd),
		NoNewPrivileges: sec.noNewPrivileges,
	}
	if cfg.Tty && (hc.ConsoleSize[0] != 0 || hc.ConsoleSize[1] != 0) {
		p.ConsoleSize = &specs.Box{Height: hc.ConsoleSize[0], Width: hc.ConsoleSize[1]}
	}
	for _, u := range hc.Ulimits {
		if u == nil {
			continue
		}
		t, ok := rlimits[u.Name]
		if !ok {
			return nil, fmt.Errorf("ulimit %q: unknown resource", u.Name)
		}
		if u.Soft > u.Hard && u.Hard >= 0 {
			return nil, fmt.Errorf("ulimit %s: soft limit %d is above hard limit %d", u.Name, u.Soft, u.Hard)
		}
		p.Rlimits = append(p.Rlimits, specs.POSIXRlimit{Type: t, Hard: uint64(u.Hard), Soft: uint64(u.Soft)})
	}
	if hc.OomScoreAdj != 0 {
		if hc.OomScoreAdj < -1000 || hc.OomScoreAdj > 1000 {
			return nil, fmt.Errorf("invalid oom score adjustment %d: must be between -1000 and 1000", hc.OomScoreAdj)
		}
		p.OOMScoreAdj = ptr(hc.OomScoreAdj)
	}
	return p, nil
}

// replaceEnv sets each of over's variables in env, replacing one of the
// same name in place or appending it. A bare NAME (no "=") is kept as is.
func replaceEnv(env, over []string) []string {
	out := slices.Clone(env)
	for _, kv := range over {
		i := slices.IndexFunc(out, func(e string) bool { return envKey(e) == envKey(kv) })
		if i >= 0 {
			out[i] = kv
		} else {
			out = append(out, kv)
		}
	}
	return out
}

// mounts returns docker's default mounts, the etc files, the init and
// in.Mounts, the latter replacing defaults at the same destination, sorted
// (stably) by destination depth so that a parent is mounted before its
// children.
func mounts(in Input, hc *container.HostConfig) ([]specs.Mount, error) {
	shm := hc.ShmSize
	if shm < 0 {
		return nil, fmt.Errorf("invalid shm size %d", shm)
	}
	if shm == 0 {
		shm = defaultShmSize
	}
	cgroupOpt := "ro"
	if hc.Privileged {
		cgroupOpt = "rw"
	}
	ms := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{cgroupOpt, "nosuid", "noexec", "nodev"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
	}
	switch {
	case hc.IpcMode.IsNone():
	case hc.IpcMode.IsHost():
		ms = append(ms, specs.Mount{Destination: "/dev/shm", Type: "bind", Source: "/dev/shm", Options: []string{"rbind", "rprivate"}})
	default:
		ms = append(ms, specs.Mount{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=" + strconv.FormatInt(shm, 10)}})
	}
	for _, f := range []struct{ src, dst string }{
		{in.ResolvConfPath, "/etc/resolv.conf"},
		{in.HostnamePath, "/etc/hostname"},
		{in.HostsPath, "/etc/hosts"},
	} {
		if f.src != "" {
			ms = append(ms, specs.Mount{Destination: f.dst, Type: "bind", Source: f.src, Options: []string{"rbind", "rprivate"}})
		}
	}
	if hc.Init != nil && *hc.Init {
		ms = append(ms, specs.Mount{Destination: InitDest, Type: "bind", Source: in.InitPath, Options: []string{"bind", "ro", "rprivate"}})
	}
	for _, m := range in.Mounts {
		if !path.IsAbs(m.Destination) {
			return nil, fmt.Errorf("mount %s: destination %q is not an absolute path", m.Source, m.Destination)
		}
		dst := path.Clean(m.Destination)
		ms = slices.DeleteFunc(ms, func(d specs.Mount) bool { return path.Clean(d.Destination) == dst })
		ms = append(ms, m)
	}
	sort.SliceStable(ms, func(i, j int) bool { return depth(ms[i].Destination) < depth(ms[j].Destination) })
	return ms, nil
}

// depth is the number of components of an absolute path ("/" is 0).
func depth(p string) int {
	p = path.Clean(p)
	if p == "/" {
		return 0
	}
	return strings.Count(p, "/")
}

// ipcSysctls are the IPC namespace's sysctls besides fs.mqueue.*.
var ipcSysctls = []string{
	"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
	"kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced",
}

// checkSysctl accepts, as docker does, only the sysctls of namespaces the
// container has its own of: IPC ones unless --ipc host, net.* unless
// --network host.
func checkSysctl(k string, hc *container.HostConfig) error {
	switch {
	case slices.Contains(ipcSysctls, k) || strings.HasPrefix(k, "fs.mqueue."):
		if hc.IpcMode.IsHost() {
			return fmt.Errorf("sysctl %q is not allowed with the host's IPC namespace", k)
		}
	case strings.HasPrefix(k, "net."):
		if hc.NetworkMode == "host" {
			return fmt.Errorf("sysctl %q is not allowed with the host's network namespace", k)
		}
	default:
		return fmt.Errorf("sysctl %q is not allowed: not in a namespace of the container", k)
	}
	return nil
}
