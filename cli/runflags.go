package cli

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/sys/capability"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/volume"
)

// runFlags are the values of docker's `run` and `create` flags, as the
// user typed them. parse turns them into docker's container.Config and
// container.HostConfig; the few settings that are not part of a
// container's configuration (--pull, --platform, --detach-keys, ...) end
// up in runOptions.
type runFlags struct {
	fs *pflag.FlagSet // for Changed and for the flags' names in errors

	detach, interactive, tty, rm, readOnly, privileged, init, noHealthcheck, sigProxy bool
	publishAll                                                                        bool
	// sigs, when set, catches the signals to proxy (see attachRun), once
	// sigsReady is closed.
	sigs      chan os.Signal
	sigsReady <-chan struct{}

	name, workdir, user, entrypoint, hostname, domainname                        string
	restart, network, pull, platform, stopSignal, cidfile, logDriver, detachKeys string
	ipc, pid, uts, cgroupns, cpusetCpus, cpusetMems, healthCmd                   string

	env, envFile, volumes, mounts, tmpfs, labels, labelFiles, addHosts    []string
	capAdd, capDrop, securityOpt, devices, publish, expose, sysctls       []string
	dns, dnsSearch, dnsOption, logOpts, attach, groupAdd                  []string
	memory, memorySwap, memoryReservation, shmSize                        bytesValue
	cpus                                                                  decimalValue
	ulimits                                                               ulimitValue
	cpuShares, cpuPeriod, cpuQuota, pidsLimit                             int64
	oomScoreAdj, stopTimeout, healthRetries                               int
	healthInterval, healthTimeout, healthStartPeriod, healthStartInterval time.Duration
	net                                                                   netRunFlags

	opts runOptions // filled by parse
}

// runOptions are the settings of a run or create that belong to the
// command, not to the container's configuration.
type runOptions struct {
	Name       string
	Detach     bool
	Pull       string // "missing" (the default), "always" or "never"
	Platform   string // os/arch[/variant], "" for the host's
	DetachKeys string
	SigProxy   bool
	// Endpoint is the container's settings on its network
	// (--network-alias, --ip, --ip6, --mac-address), nil for none.
	Endpoint *network.EndpointSettings
}

// addRunFlags registers docker's run and create flags on fs, storing
// their values in f.
func addRunFlags(fs *pflag.FlagSet, f *runFlags) {
	f.fs = fs
	fs.SetInterspersed(false) // flags after the image belong to the command
	fs.BoolVarP(&f.detach, "detach", "d", false, "run the container in the background and print its ID")
	fs.BoolVarP(&f.interactive, "interactive", "i", false, "keep STDIN open even if not attached")
	fs.BoolVarP(&f.tty, "tty", "t", false, "allocate a pseudo-TTY")
	fs.BoolVar(&f.rm, "rm", false, "automatically remove the container and its anonymous volumes when it exits")
	fs.StringVar(&f.name, "name", "", "assign a name to the container")
	stringArrayVarP(fs, &f.env, "env", "e", "set environment variables (KEY=VALUE, or KEY to take it from the environment)")
	stringArrayVarP(fs, &f.envFile, "env-file", "", "read in a file of environment variables")
	fs.StringVarP(&f.workdir, "workdir", "w", "", "working directory inside the container")
	fs.StringVarP(&f.user, "user", "u", "", "username or UID (format: <name|uid>[:<group|gid>])")
	fs.StringVar(&f.entrypoint, "entrypoint", "", "overwrite the default ENTRYPOINT of the image")
	stringArrayVarP(fs, &f.volumes, "volume", "v", "bind mount a volume ([SRC:]DST[:OPTS])")
	stringArrayVarP(fs, &f.mounts, "mount", "", "attach a filesystem mount to the container")
	stringArrayVarP(fs, &f.tmpfs, "tmpfs", "", "mount a tmpfs directory (DST[:OPTS])")
	fs.BoolVar(&f.readOnly, "read-only", false, "mount the container's root filesystem as read only")
	stringArrayVarP(fs, &f.labels, "label", "l", "set metadata on a container")
	stringArrayVarP(fs, &f.labelFiles, "label-file", "", "read in a line delimited file of labels")
	fs.StringVarP(&f.hostname, "hostname", "h", "", "container host name")
	fs.StringVar(&f.domainname, "domainname", "", "container NIS domain name")
	stringArrayVarP(fs, &f.addHosts, "add-host", "", "add a custom host-to-IP mapping (host:ip)")
	fs.VarP(&f.memory, "memory", "m", "memory limit")
	fs.Var(&f.memorySwap, "memory-swap", "swap limit equal to memory plus swap: '-1' to enable unlimited swap")
	fs.Var(&f.memoryReservation, "memory-reservation", "memory soft limit")
	fs.Var(&f.cpus, "cpus", "number of CPUs")
	fs.Int64VarP(&f.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	fs.Int64Var(&f.cpuPeriod, "cpu-period", 0, "limit CPU CFS (Completely Fair Scheduler) period")
	fs.Int64Var(&f.cpuQuota, "cpu-quota", 0, "limit CPU CFS (Completely Fair Scheduler) quota")
	fs.StringVar(&f.cpusetCpus, "cpuset-cpus", "", "CPUs in which to allow execution (0-3, 0,1)")
	fs.StringVar(&f.cpusetMems, "cpuset-mems", "", "MEMs in which to allow execution (0-3, 0,1)")
	fs.Int64Var(&f.pidsLimit, "pids-limit", 0, "tune container pids limit (set -1 for unlimited)")
	f.ulimits.m = map[string]*units.Ulimit{}
	fs.Var(&f.ulimits, "ulimit", "ulimit options (name=soft[:hard])")
	stringArrayVarP(fs, &f.capAdd, "cap-add", "", "add Linux capabilities")
	stringArrayVarP(fs, &f.capDrop, "cap-drop", "", "drop Linux capabilities")
	fs.BoolVar(&f.privileged, "privileged", false, "give extended privileges to this container")
	stringArrayVarP(fs, &f.securityOpt, "security-opt", "", "security options")
	stringArrayVarP(fs, &f.devices, "device", "", "add a host device to the container (host[:container][:rwm])")
	fs.BoolVar(&f.init, "init", false, "run an init inside the container that forwards signals and reaps processes")
	fs.StringVar(&f.restart, "restart", "no", "restart policy to apply when a container exits")
	fs.StringVar(&f.healthCmd, "health-cmd", "", "command to run to check health")
	fs.DurationVar(&f.healthInterval, "health-interval", 0, "time between running the check (ms|s|m|h)")
	fs.DurationVar(&f.healthTimeout, "health-timeout", 0, "maximum time to allow one check to run (ms|s|m|h)")
	fs.DurationVar(&f.healthStartPeriod, "health-start-period", 0, "start period for the container to initialize before starting health-retries countdown (ms|s|m|h)")
	fs.DurationVar(&f.healthStartInterval, "health-start-interval", 0, "time between running the check during the start period (ms|s|m|h)")
	fs.IntVar(&f.healthRetries, "health-retries", 0, "consecutive failures needed to report unhealthy")
	fs.BoolVar(&f.noHealthcheck, "no-healthcheck", false, "disable any container-specified HEALTHCHECK")
	fs.StringVar(&f.stopSignal, "stop-signal", "", "signal to stop the container")
	fs.IntVar(&f.stopTimeout, "stop-timeout", 0, "timeout (in seconds) to stop a container")
	fs.StringVar(&f.network, "network", "", "connect a container to a network")
	fs.StringVar(&f.network, "net", "", "connect a container to a network")
	_ = fs.MarkHidden("net")
	addNetRunFlags(fs, &f.net)
	stringArrayVarP(fs, &f.publish, "publish", "p", "publish a container's port(s) to the host")
	stringArrayVarP(fs, &f.expose, "expose", "", "expose a port or a range of ports")
	fs.BoolVarP(&f.publishAll, "publish-all", "P", false, "publish all exposed ports to random ports")
	fs.StringVar(&f.pull, "pull", "missing", `pull image before running ("always", "missing", "never")`)
	fs.StringVar(&f.platform, "platform", "", "set platform if server is multi-platform capable")
	fs.Var(&f.shmSize, "shm-size", "size of /dev/shm")
	stringArrayVarP(fs, &f.sysctls, "sysctl", "", "sysctl options")
	fs.IntVar(&f.oomScoreAdj, "oom-score-adj", 0, "tune host's OOM preferences (-1000 to 1000)")
	stringArrayVarP(fs, &f.dns, "dns", "", "set custom DNS servers")
	stringArrayVarP(fs, &f.dnsSearch, "dns-search", "", "set custom DNS search domains")
	stringArrayVarP(fs, &f.dnsOption, "dns-option", "", "set DNS options")
	fs.StringVar(&f.cidfile, "cidfile", "", "write the container ID to the file")
	fs.StringVar(&f.logDriver, "log-driver", "", "logging driver for the container (json-file or none)")
	stringArrayVarP(fs, &f.logOpts, "log-opt", "", "log driver options")
	stringArrayVarP(fs, &f.attach, "attach", "a", "attach to STDIN, STDOUT or STDERR")
	fs.StringVar(&f.detachKeys, "detach-keys", "", "override the key sequence for detaching a container")
	fs.BoolVar(&f.sigProxy, "sig-proxy", true, "proxy received signals to the process")
	stringArrayVarP(fs, &f.groupAdd, "group-add", "", "add additional groups to join")
	fs.StringVar(&f.ipc, "ipc", "", "IPC mode to use")
	fs.StringVar(&f.pid, "pid", "", "PID namespace to use")
	fs.StringVar(&f.uts, "uts", "", "UTS namespace to use")
	fs.StringVar(&f.cgroupns, "cgroupns", "", `cgroup namespace to use (host|private)`)
}

// options returns the command's settings that parse validated.
func (f *runFlags) options() runOptions { return f.opts }

// badArg is docker's error for a flag's bad value.
func (f *runFlags) badArg(name, val string, err error) error {
	disp := "--" + name
	if f.fs != nil {
		if fl := f.fs.Lookup(name); fl != nil && fl.Shorthand != "" {
			disp = "-" + fl.Shorthand + ", --" + name
		}
	}
	return fmt.Errorf("invalid argument %q for %q flag: %w", val, disp, err)
}

func (f *runFlags) changed(name string) bool { return f.fs != nil && f.fs.Changed(name) }

// parse validates the flags and builds the container's configuration for
// image, running args (nil for the image's command). getenv looks up the
// host's environment for -e KEY and env-file lines without a value.
func (f *runFlags) parse(image string, args []string, getenv func(string) (string, bool)) (*container.Config, *container.HostConfig, error) {
	if getenv == nil {
		getenv = func(string) (string, bool) { return "", false }
	}
	cfg := &container.Config{
		Image:      image,
		Hostname:   f.hostname,
		Domainname: f.domainname,
		User:       f.user,
		Tty:        f.tty,
	}
	if len(args) > 0 {
		cfg.Cmd = append([]string(nil), args...)
	}
	hc := &container.HostConfig{
		AutoRemove:      f.rm,
		ReadonlyRootfs:  f.readOnly,
		Privileged:      f.privileged,
		ContainerIDFile: f.cidfile,
		OomScoreAdj:     f.oomScoreAdj,
		GroupAdd:        f.groupAdd,
		DNSSearch:       f.dnsSearch,
		DNSOptions:      f.dnsOption,
		NetworkMode:     container.NetworkMode(f.network),
		PublishAllPorts: f.publishAll,
	}
	steps := []func(*container.Config, *container.HostConfig) error{
		f.parseStreams, f.parseLabels, f.parseWorkdir, f.parseEntrypoint,
		f.parseVolumes, f.parseMounts, f.parseTmpfs, f.parseHosts, f.parseResources,
		f.parseSecurity, f.parseDevices, f.parseRestart, f.parseHealth, f.parseStop,
		f.parseNetwork, f.parsePorts, f.parseLogging, f.parseNamespaces, f.parseMisc,
	}
	for _, step := range steps {
		if err := step(cfg, hc); err != nil {
			return nil, nil, err
		}
	}
	env, err := f.environment(getenv)
	if err != nil {
		return nil, nil, err
	}
	cfg.Env = env
	return cfg, hc, nil
}

func (f *runFlags) parseStreams(cfg *container.Config, hc *container.HostConfig) error {
	var in, out, errs bool
	for _, a := range f.attach {
		switch strings.ToLower(a) {
		case "stdin":
			in = true
		case "stdout":
			out = true
		case "stderr":
			errs = true
		default:
			return f.badArg("attach", a, errors.New("valid streams are STDIN, STDOUT and STDERR"))
		}
	}
	if len(f.attach) > 0 && f.detach {
		return errors.New("conflicting options: cannot specify both --attach and --detach")
	}
	if len(f.attach) == 0 && !f.detach {
		out, errs = true, true
		in = f.interactive
	}
	cfg.AttachStdin, cfg.AttachStdout, cfg.AttachStderr = in, out, errs
	cfg.OpenStdin = f.interactive
	cfg.StdinOnce = f.interactive && !f.detach && in
	return nil
}

// environment is -e and --env-file, files first as docker does.
func (f *runFlags) environment(getenv func(string) (string, bool)) ([]string, error) {
	var env []string
	for _, file := range f.envFile {
		lines, err := readKVFile(file, getenv, true)
		if err != nil {
			return nil, err
		}
		env = append(env, lines...)
	}
	for _, e := range f.env {
		k, _, hasVal := strings.Cut(e, "=")
		if k == "" {
			return nil, f.badArg("env", e, errors.New("no variable name"))
		}
		if strings.ContainsFunc(k, unicode.IsSpace) {
			return nil, f.badArg("env", e, fmt.Errorf("variable '%s' contains whitespaces", k))
		}
		if hasVal {
			env = append(env, e)
			continue
		}
		if v, ok := getenv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env, nil
}

// readKVFile reads docker's env-file and label-file format: KEY=VALUE
// lines, # comments and blank lines skipped, a line with only KEY takes
// the value from the environment (env files; dropped when unset) or the
// empty value (label files).
func readKVFile(file string, getenv func(string) (string, bool), fromEnv bool) ([]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), len(data)+1)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if n == 1 {
			line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
		}
		if !utf8.Valid(line) {
			return nil, fmt.Errorf("%s:%d: invalid UTF-8", file, n)
		}
		s := strings.TrimLeftFunc(string(line), unicode.IsSpace)
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		k, v, hasVal := strings.Cut(s, "=")
		if k == "" {
			return nil, fmt.Errorf("%s:%d: no variable name on line '%s'", file, n, s)
		}
		if strings.ContainsFunc(k, unicode.IsSpace) {
			return nil, fmt.Errorf("%s:%d: variable '%s' contains whitespaces", file, n, k)
		}
		switch {
		case hasVal:
			out = append(out, k+"="+v)
		case fromEnv:
			if v, ok := getenv(k); ok {
				out = append(out, k+"="+v)
			}
		default:
			out = append(out, k)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	return out, nil
}

func (f *runFlags) parseLabels(cfg *container.Config, _ *container.HostConfig) error {
	var all []string
	for _, file := range f.labelFiles {
		lines, err := readKVFile(file, nil, false)
		if err != nil {
			return err
		}
		all = append(all, lines...)
	}
	for _, l := range f.labels {
		if strings.HasPrefix(l, "=") {
			return f.badArg("label", l, errors.New("no label name"))
		}
	}
	all = append(all, f.labels...)
	if len(all) == 0 {
		return nil
	}
	cfg.Labels = make(map[string]string, len(all))
	for _, l := range all {
		k, v, _ := strings.Cut(l, "=")
		cfg.Labels[k] = v
	}
	return nil
}

func (f *runFlags) parseWorkdir(cfg *container.Config, _ *container.HostConfig) error {
	if f.workdir != "" && !path.IsAbs(f.workdir) {
		return f.badArg("workdir", f.workdir, fmt.Errorf("the working directory '%s' is invalid, it needs to be an absolute path", f.workdir))
	}
	cfg.WorkingDir = f.workdir
	return nil
}

// parseEntrypoint: nil when not given, [""] when given empty (docker's
// "reset the image's entrypoint"), else the one string.
func (f *runFlags) parseEntrypoint(cfg *container.Config, _ *container.HostConfig) error {
	switch {
	case f.entrypoint != "":
		cfg.Entrypoint = []string{f.entrypoint}
	case f.changed("entrypoint"):
		cfg.Entrypoint = []string{""}
	}
	return nil
}

var propagations = map[string]bool{
	"private": true, "rprivate": true, "shared": true, "rshared": true, "slave": true, "rslave": true,
}

// parseVolumes checks -v values and sorts them as docker does: with a
// source they are binds (a host path or a volume name), without one an
// anonymous volume in Config.Volumes.
func (f *runFlags) parseVolumes(cfg *container.Config, hc *container.HostConfig) error {
	for _, v := range f.volumes {
		if err := checkVolumeSpec(v); err != nil {
			return f.badArg("volume", v, err)
		}
		if !strings.Contains(v, ":") {
			if cfg.Volumes == nil {
				cfg.Volumes = map[string]struct{}{}
			}
			cfg.Volumes[path.Clean(v)] = struct{}{}
			continue
		}
		hc.Binds = append(hc.Binds, v)
	}
	return nil
}

func checkVolumeSpec(spec string) error {
	parts := strings.Split(spec, ":")
	var src, dst, mode string
	switch len(parts) {
	case 1:
		dst = parts[0]
	case 2:
		src, dst = parts[0], parts[1]
	case 3:
		src, dst, mode = parts[0], parts[1], parts[2]
	default:
		return errors.New("invalid volume specification: too many colons")
	}
	for _, p := range parts {
		if p == "" {
			return errors.New("invalid volume specification: empty section")
		}
	}
	if !path.IsAbs(dst) {
		return fmt.Errorf("invalid volume specification: destination '%s' is not an absolute path", dst)
	}
	if path.Clean(dst) == "/" {
		return errors.New("invalid volume specification: destination can't be '/'")
	}
	bind := false
	if src != "" {
		if path.IsAbs(src) {
			bind = true
		} else if err := volume.ValidName(src); err != nil {
			return fmt.Errorf("invalid volume specification: source '%s' is neither an absolute path nor a volume name", src)
		}
	}
	if mode == "" {
		return nil
	}
	var rw, label, prop, cp int
	for _, o := range strings.Split(mode, ",") {
		switch {
		case o == "ro" || o == "rw":
			rw++
		case o == "z" || o == "Z":
			label++
		case o == "nocopy":
			if bind {
				return fmt.Errorf("invalid mode: %s: nocopy is for volumes, not bind mounts", mode)
			}
			cp++
		case propagations[o]:
			prop++
		default:
			return fmt.Errorf("invalid mode: %s: unknown option '%s'", mode, o)
		}
	}
	if rw > 1 || label > 1 || prop > 1 || cp > 1 {
		return fmt.Errorf("invalid mode: %s: conflicting options", mode)
	}
	return nil
}

// parseMounts reads --mount's CSV fields into docker's mount.Mount.
func (f *runFlags) parseMounts(_ *container.Config, hc *container.HostConfig) error {
	for _, v := range f.mounts {
		m, err := parseMount(v)
		if err != nil {
			return f.badArg("mount", v, err)
		}
		hc.Mounts = append(hc.Mounts, m)
	}
	return nil
}

func parseMount(spec string) (mount.Mount, error) {
	r := csv.NewReader(strings.NewReader(spec))
	fields, err := r.Read()
	if err != nil {
		return mount.Mount{}, err
	}
	m := mount.Mount{Type: mount.TypeVolume}
	var bindOpt, volOpt, tmpfsOpt []string
	for _, field := range fields {
		key, val, hasVal := strings.Cut(field, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		parseBool := func() (bool, error) {
			if !hasVal {
				return true, nil
			}
			switch strings.ToLower(val) {
			case "1", "true":
				return true, nil
			case "0", "false":
				return false, nil
			}
			return false, fmt.Errorf("invalid value for %s: %s", key, val)
		}
		if !hasVal && key != "readonly" && key != "ro" && key != "volume-nocopy" {
			return m, fmt.Errorf("invalid field '%s' must be a key=value pair", field)
		}
		switch key {
		case "type":
			switch mount.Type(strings.ToLower(val)) {
			case mount.TypeBind, mount.TypeVolume, mount.TypeTmpfs:
				m.Type = mount.Type(strings.ToLower(val))
			default:
				return m, fmt.Errorf("unsupported mount type '%s' (bind, volume or tmpfs)", val)
			}
		case "source", "src":
			m.Source = val
		case "target", "dst", "destination":
			m.Target = val
		case "readonly", "ro":
			if m.ReadOnly, err = parseBool(); err != nil {
				return m, err
			}
		case "consistency":
			m.Consistency = mount.Consistency(val)
		case "bind-propagation":
			if !propagations[val] {
				return m, fmt.Errorf("invalid bind-propagation '%s'", val)
			}
			bindOpt = append(bindOpt, key)
			if m.BindOptions == nil {
				m.BindOptions = &mount.BindOptions{}
			}
			m.BindOptions.Propagation = mount.Propagation(val)
		case "volume-nocopy":
			b, err := parseBool()
			if err != nil {
				return m, err
			}
			volOpt = append(volOpt, key)
			if m.VolumeOptions == nil {
				m.VolumeOptions = &mount.VolumeOptions{}
			}
			m.VolumeOptions.NoCopy = b
		case "volume-label":
			volOpt = append(volOpt, key)
			if m.VolumeOptions == nil {
				m.VolumeOptions = &mount.VolumeOptions{}
			}
			if m.VolumeOptions.Labels == nil {
				m.VolumeOptions.Labels = map[string]string{}
			}
			k, v, _ := strings.Cut(val, "=")
			m.VolumeOptions.Labels[k] = v
		case "volume-subpath":
			volOpt = append(volOpt, key)
			if m.VolumeOptions == nil {
				m.VolumeOptions = &mount.VolumeOptions{}
			}
			m.VolumeOptions.Subpath = val
		case "tmpfs-size":
			n, err := units.RAMInBytes(val)
			if err != nil {
				return m, fmt.Errorf("invalid value for %s: %w", key, err)
			}
			tmpfsOpt = append(tmpfsOpt, key)
			if m.TmpfsOptions == nil {
				m.TmpfsOptions = &mount.TmpfsOptions{}
			}
			m.TmpfsOptions.SizeBytes = n
		case "tmpfs-mode":
			n, err := strconv.ParseUint(val, 8, 32)
			if err != nil || n > 07777 {
				return m, fmt.Errorf("invalid value for %s: %s (octal mode)", key, val)
			}
			tmpfsOpt = append(tmpfsOpt, key)
			if m.TmpfsOptions == nil {
				m.TmpfsOptions = &mount.TmpfsOptions{}
			}
			m.TmpfsOptions.Mode = os.FileMode(n)
		default:
			return m, fmt.Errorf("unexpected key '%s' in '%s'", key, field)
		}
	}
	if m.Target == "" {
		return m, errors.New("target is required")
	}
	if !path.IsAbs(m.Target) {
		return m, fmt.Errorf("target '%s' is not an absolute path", m.Target)
	}
	mixed := func(opts []string, typ mount.Type) error {
		if len(opts) > 0 && m.Type != typ {
			return fmt.Errorf("cannot mix '%s' with mount type '%s'", opts[0], m.Type)
		}
		return nil
	}
	for _, c := range []error{mixed(bindOpt, mount.TypeBind), mixed(volOpt, mount.TypeVolume), mixed(tmpfsOpt, mount.TypeTmpfs)} {
		if c != nil {
			return m, c
		}
	}
	switch m.Type {
	case mount.TypeBind:
		if m.Source == "" {
			return m, errors.New("source is required for a bind mount")
		}
		if !path.IsAbs(m.Source) {
			return m, fmt.Errorf("bind source '%s' is not an absolute path", m.Source)
		}
	case mount.TypeVolume:
		if m.Source != "" {
			if err := volume.ValidName(m.Source); err != nil {
				return m, err
			}
		}
	case mount.TypeTmpfs:
		if m.Source != "" {
			return m, errors.New("a tmpfs mount takes no source")
		}
	}
	return m, nil
}

func (f *runFlags) parseTmpfs(_ *container.Config, hc *container.HostConfig) error {
	for _, t := range f.tmpfs {
		dst, opts, _ := strings.Cut(t, ":")
		if !path.IsAbs(dst) {
			return f.badArg("tmpfs", t, fmt.Errorf("destination '%s' is not an absolute path", dst))
		}
		if hc.Tmpfs == nil {
			hc.Tmpfs = map[string]string{}
		}
		hc.Tmpfs[path.Clean(dst)] = opts
	}
	return nil
}

func (f *runFlags) parseHosts(_ *container.Config, hc *container.HostConfig) error {
	for _, h := range f.addHosts {
		sep := "="
		if !strings.Contains(h, "=") {
			sep = ":"
		}
		name, ip, ok := strings.Cut(h, sep)
		if !ok || name == "" || ip == "" {
			return f.badArg("add-host", h, errors.New("bad format for add-host (want host:ip)"))
		}
		ip = strings.TrimSuffix(strings.TrimPrefix(ip, "["), "]")
		if ip != "host-gateway" {
			if _, err := netip.ParseAddr(ip); err != nil {
				return f.badArg("add-host", h, fmt.Errorf("invalid IP address in add-host: %q", ip))
			}
		}
		hc.ExtraHosts = append(hc.ExtraHosts, name+":"+ip)
	}
	for _, d := range f.dns {
		a, err := netip.ParseAddr(d)
		if err != nil {
			return f.badArg("dns", d, fmt.Errorf("%s is not an IP address", d))
		}
		hc.DNS = append(hc.DNS, a)
	}
	return nil
}

func (f *runFlags) parseResources(_ *container.Config, hc *container.HostConfig) error {
	r := &hc.Resources
	r.Memory = f.memory.n
	r.MemorySwap = f.memorySwap.n
	r.MemoryReservation = f.memoryReservation.n
	hc.ShmSize = f.shmSize.n
	if f.memorySwap.n < -1 {
		return f.badArg("memory-swap", f.memorySwap.String(), errors.New("only -1 may be negative"))
	}
	if f.memorySwap.n > 0 && f.memory.n > 0 && f.memorySwap.n < f.memory.n {
		return errors.New("minimum memoryswap limit should be larger than memory limit, see usage")
	}
	if f.memorySwap.n != 0 && f.memory.n == 0 {
		return errors.New("you should always set the memory limit when using memoryswap limit, see usage")
	}
	for _, m := range []*bytesValue{&f.memory, &f.memoryReservation, &f.shmSize} {
		if m.n < 0 {
			return fmt.Errorf("invalid size %s: must not be negative", m.String())
		}
	}
	r.NanoCPUs = f.cpus.n
	if r.NanoCPUs < 0 {
		return f.badArg("cpus", f.cpus.String(), errors.New("must not be negative"))
	}
	if r.NanoCPUs > 0 && (f.cpuPeriod != 0 || f.cpuQuota != 0) {
		return errors.New("conflicting options: --cpus and --cpu-period/--cpu-quota cannot both be set")
	}
	r.CPUShares, r.CPUPeriod, r.CPUQuota = f.cpuShares, f.cpuPeriod, f.cpuQuota
	if f.cpuShares < 0 {
		return f.badArg("cpu-shares", strconv.FormatInt(f.cpuShares, 10), errors.New("must not be negative"))
	}
	if f.cpuPeriod != 0 && (f.cpuPeriod < 1000 || f.cpuPeriod > 1000000) {
		return f.badArg("cpu-period", strconv.FormatInt(f.cpuPeriod, 10), errors.New("CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"))
	}
	if f.cpuQuota != 0 && f.cpuQuota != -1 && f.cpuQuota < 1000 {
		return f.badArg("cpu-quota", strconv.FormatInt(f.cpuQuota, 10), errors.New("CPU cfs quota can not be less than 1ms (i.e. 1000)"))
	}
	for _, c := range []struct{ name, val string }{{"cpuset-cpus", f.cpusetCpus}, {"cpuset-mems", f.cpusetMems}} {
		if c.val != "" && !validCPUSet(c.val) {
			return f.badArg(c.name, c.val, errors.New("want a list like 0-3,5"))
		}
	}
	r.CpusetCpus, r.CpusetMems = f.cpusetCpus, f.cpusetMems
	if f.changed("pids-limit") {
		n := f.pidsLimit
		r.PidsLimit = &n
	}
	r.Ulimits = f.ulimits.list()
	if f.oomScoreAdj < -1000 || f.oomScoreAdj > 1000 {
		return f.badArg("oom-score-adj", strconv.Itoa(f.oomScoreAdj), errors.New("must be in the range -1000 to 1000"))
	}
	return nil
}

// validCPUSet checks the kernel's cpuset list syntax: N or N-M, comma
// separated.
func validCPUSet(s string) bool {
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return false
		}
		if isRange {
			b, err := strconv.ParseUint(hi, 10, 16)
			if err != nil || b < a {
				return false
			}
		}
	}
	return true
}

func (f *runFlags) parseSecurity(_ *container.Config, hc *container.HostConfig) error {
	var err error
	if hc.CapAdd, err = f.capabilities("cap-add", f.capAdd); err != nil {
		return err
	}
	if hc.CapDrop, err = f.capabilities("cap-drop", f.capDrop); err != nil {
		return err
	}
	for _, o := range f.securityOpt {
		opt, err := securityOpt(o)
		if err != nil {
			return f.badArg("security-opt", o, err)
		}
		hc.SecurityOpt = append(hc.SecurityOpt, opt)
	}
	return nil
}

// capabilities normalizes capability names as docker does (CAP_ prefix,
// upper case, ALL kept) and rejects unknown ones.
func (f *runFlags) capabilities(flag string, names []string) ([]string, error) {
	var out []string
	for _, n := range names {
		u := strings.ToUpper(strings.TrimSpace(n))
		if u == "ALL" {
			out = append(out, u)
			continue
		}
		u = "CAP_" + strings.TrimPrefix(u, "CAP_")
		known := false
		for _, c := range capability.ListKnown() {
			if "CAP_"+strings.ToUpper(c.String()) == u {
				known = true
				break
			}
		}
		if !known {
			return nil, f.badArg(flag, n, fmt.Errorf("unknown capability: %q", n))
		}
		out = append(out, u)
	}
	return out, nil
}

// securityOpt checks one --security-opt and returns it as key=value;
// seccomp=FILE is read and replaced by the profile's compact JSON, as
// docker's client does.
func securityOpt(o string) (string, error) {
	k, v, hasVal := strings.Cut(o, "=")
	if !hasVal {
		k, v, hasVal = strings.Cut(o, ":") // docker's old separator
	}
	switch k {
	case "no-new-privileges":
		if !hasVal {
			return "no-new-privileges=true", nil
		}
		if _, err := strconv.ParseBool(v); err != nil {
			return "", fmt.Errorf("invalid no-new-privileges value '%s' (true or false)", v)
		}
		return k + "=" + v, nil
	case "seccomp":
		if v == "" {
			return "", errors.New("seccomp needs a profile file, 'unconfined' or 'builtin'")
		}
		if v == "unconfined" || v == "builtin" {
			return k + "=" + v, nil
		}
		data, err := os.ReadFile(v)
		if err != nil {
			return "", fmt.Errorf("read seccomp profile %s: %w", v, err)
		}
		var b bytes.Buffer
		if err := json.Compact(&b, data); err != nil {
			return "", fmt.Errorf("seccomp profile %s is not JSON: %w", v, err)
		}
		return k + "=" + b.String(), nil
	case "label", "apparmor":
		if v == "" {
			return "", fmt.Errorf("%s needs a value", k)
		}
		return k + "=" + v, nil
	case "mask", "unmask":
		if v == "" {
			return "", fmt.Errorf("%s needs a path list", k)
		}
		for _, p := range strings.Split(v, ":") {
			if !path.IsAbs(p) && !(k == "unmask" && p == "ALL") {
				return "", fmt.Errorf("%s: '%s' is not an absolute path", k, p)
			}
		}
		return k + "=" + v, nil
	case "systempaths":
		if v != "unconfined" {
			return "", fmt.Errorf("systempaths takes only 'unconfined', not '%s'", v)
		}
		return k + "=" + v, nil
	}
	return "", fmt.Errorf("invalid --security-opt: %q", o)
}

func (f *runFlags) parseDevices(_ *container.Config, hc *container.HostConfig) error {
	for _, d := range f.devices {
		m, err := parseDevice(d)
		if err != nil {
			return f.badArg("device", d, err)
		}
		hc.Devices = append(hc.Devices, m)
	}
	return nil
}

func validDevicePerms(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c != 'r' && c != 'w' && c != 'm' {
			return false
		}
	}
	return true
}

func parseDevice(d string) (container.DeviceMapping, error) {
	parts := strings.Split(d, ":")
	m := container.DeviceMapping{CgroupPermissions: "rwm"}
	switch len(parts) {
	case 1:
		m.PathOnHost = parts[0]
	case 2:
		m.PathOnHost = parts[0]
		if validDevicePerms(parts[1]) {
			m.CgroupPermissions = parts[1]
		} else {
			m.PathInContainer = parts[1]
		}
	case 3:
		m.PathOnHost, m.PathInContainer = parts[0], parts[1]
		if !validDevicePerms(parts[2]) {
			return m, fmt.Errorf("invalid device permissions '%s' (a combination of r, w and m)", parts[2])
		}
		m.CgroupPermissions = parts[2]
	default:
		return m, errors.New("too many colons (host[:container][:rwm])")
	}
	if m.PathInContainer == "" {
		m.PathInContainer = m.PathOnHost
	}
	if !path.IsAbs(m.PathOnHost) {
		return m, fmt.Errorf("device path '%s' is not absolute", m.PathOnHost)
	}
	if !path.IsAbs(m.PathInContainer) {
		return m, fmt.Errorf("container path '%s' is not absolute", m.PathInContainer)
	}
	return m, nil
}

func (f *runFlags) parseRestart(_ *container.Config, hc *container.HostConfig) error {
	name, count, hasCount := strings.Cut(f.restart, ":")
	if name == "" && hasCount {
		return f.badArg("restart", f.restart, errors.New("invalid restart policy format: no policy provided before colon"))
	}
	p := container.RestartPolicy{Name: container.RestartPolicyMode(name)}
	if hasCount {
		n, err := strconv.Atoi(count)
		if err != nil {
			return f.badArg("restart", f.restart, errors.New("invalid restart policy format: maximum retry count must be an integer"))
		}
		p.MaximumRetryCount = n
	}
	if err := container.ValidateRestartPolicy(p); err != nil {
		return f.badArg("restart", f.restart, err)
	}
	if f.rm && !p.IsNone() {
		return errors.New("Conflicting options: --restart and --rm")
	}
	hc.RestartPolicy = p
	return nil
}

func (f *runFlags) parseHealth(cfg *container.Config, _ *container.HostConfig) error {
	settings := f.healthCmd != "" || f.healthInterval != 0 || f.healthTimeout != 0 ||
		f.healthStartPeriod != 0 || f.healthStartInterval != 0 || f.healthRetries != 0
	if f.noHealthcheck {
		if settings {
			return errors.New("--no-healthcheck conflicts with --health-* options")
		}
		cfg.Healthcheck = &container.HealthConfig{Test: []string{"NONE"}}
		return nil
	}
	if !settings {
		return nil
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"health-interval", f.healthInterval}, {"health-timeout", f.healthTimeout}, {"health-start-period", f.healthStartPeriod}, {"health-start-interval", f.healthStartInterval}} {
		if d.v < 0 {
			return f.badArg(d.name, d.v.String(), fmt.Errorf("--%s cannot be negative", d.name))
		}
		if d.v != 0 && d.v < container.MinimumDuration {
			return f.badArg(d.name, d.v.String(), fmt.Errorf("--%s cannot be less than %s", d.name, container.MinimumDuration))
		}
	}
	if f.healthRetries < 0 {
		return f.badArg("health-retries", strconv.Itoa(f.healthRetries), errors.New("--health-retries cannot be negative"))
	}
	h := &container.HealthConfig{
		Interval:      f.healthInterval,
		Timeout:       f.healthTimeout,
		StartPeriod:   f.healthStartPeriod,
		StartInterval: f.healthStartInterval,
		Retries:       f.healthRetries,
	}
	if f.healthCmd != "" {
		h.Test = []string{"CMD-SHELL", f.healthCmd}
	}
	cfg.Healthcheck = h
	return nil
}

func (f *runFlags) parseStop(cfg *container.Config, _ *container.HostConfig) error {
	if f.stopSignal != "" {
		if err := validSignal(f.stopSignal); err != nil {
			return f.badArg("stop-signal", f.stopSignal, err)
		}
		cfg.StopSignal = f.stopSignal
	}
	if f.changed("stop-timeout") {
		if f.stopTimeout < -1 {
			return f.badArg("stop-timeout", strconv.Itoa(f.stopTimeout), errors.New("must be -1 (wait forever) or more"))
		}
		n := f.stopTimeout
		cfg.StopTimeout = &n
	}
	return nil
}

// validSignal accepts a signal's number or its name with or without SIG.
func validSignal(s string) error {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > 64 {
			return fmt.Errorf("invalid signal: %s", s)
		}
		return nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if unix.SignalNum(name) == 0 {
		return fmt.Errorf("invalid signal: %s", s)
	}
	return nil
}

func (f *runFlags) parseNetwork(_ *container.Config, hc *container.HostConfig) error {
	n := hc.NetworkMode
	if n.IsContainer() && n.ConnectedContainer() == "" {
		return f.badArg("network", f.network, errors.New("container: needs a container's name or ID"))
	}
	if n.IsNone() && len(f.publish) > 0 {
		return errors.New("conflicting options: cannot publish ports with --network none")
	}
	ep, err := f.endpoint()
	f.opts.Endpoint = ep
	return err
}

func (f *runFlags) parsePorts(cfg *container.Config, hc *container.HostConfig) error {
	addExposed := func(p network.Port) {
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = network.PortSet{}
		}
		cfg.ExposedPorts[p] = struct{}{}
	}
	for _, e := range f.expose {
		pr, err := parsePortRange(e)
		if err != nil {
			return f.badArg("expose", e, err)
		}
		for p := range pr.All() {
			addExposed(p)
		}
	}
	for _, spec := range f.publish {
		bindings, err := parsePublish(spec)
		if err != nil {
			return f.badArg("publish", spec, err)
		}
		for _, b := range bindings {
			addExposed(b.port)
			if hc.PortBindings == nil {
				hc.PortBindings = network.PortMap{}
			}
			hc.PortBindings[b.port] = append(hc.PortBindings[b.port], b.binding)
		}
	}
	return nil
}

func parsePortRange(s string) (network.PortRange, error) {
	pr, err := network.ParsePortRange(s)
	if err != nil {
		return pr, err
	}
	switch pr.Proto() {
	case network.TCP, network.UDP, network.SCTP:
	default:
		return pr, fmt.Errorf("invalid protocol '%s' (tcp, udp or sctp)", pr.Proto())
	}
	return pr, nil
}

type portBinding struct {
	port    network.Port
	binding network.PortBinding
}

// parsePublish reads docker's -p forms: [[IP:][HOSTPORT]:]PORT[/PROTO],
// with ranges on either side and IPv6 addresses in brackets.
func parsePublish(spec string) ([]portBinding, error) {
	rest, proto := spec, ""
	if i := strings.LastIndex(spec, "/"); i >= 0 {
		rest, proto = spec[:i], spec[i+1:]
		if proto == "" {
			return nil, errors.New("no protocol after '/'")
		}
	}
	var ip, host, ctr string
	if strings.HasPrefix(rest, "[") {
		end := strings.Index(rest, "]")
		if end < 0 || !strings.HasPrefix(rest[end+1:], ":") {
			return nil, errors.New("invalid IPv6 address: want [IP]:HOSTPORT:PORT")
		}
		ip = rest[1:end]
		var ok bool
		if host, ctr, ok = strings.Cut(rest[end+2:], ":"); !ok {
			return nil, errors.New("missing container port")
		}
	} else {
		parts := strings.Split(rest, ":")
		n := len(parts)
		switch {
		case n == 1:
			ctr = parts[0]
		case n == 2:
			host, ctr = parts[0], parts[1]
		default:
			ip, host, ctr = strings.Join(parts[:n-2], ":"), parts[n-2], parts[n-1]
		}
		if n >= 3 && ip == "" {
			return nil, errors.New("empty IP address")
		}
	}
	var addr netip.Addr
	if ip != "" {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return nil, fmt.Errorf("invalid IP address '%s'", ip)
		}
		addr = a
	}
	if ctr == "" {
		return nil, errors.New("no port specified")
	}
	if proto != "" {
		ctr += "/" + proto
	}
	cr, err := parsePortRange(ctr)
	if err != nil {
		return nil, err
	}
	var hostStart, hostEnd uint16
	if host != "" {
		hr, err := network.ParsePortRange(host)
		if err != nil || strings.Contains(host, "/") {
			return nil, fmt.Errorf("invalid host port '%s'", host)
		}
		hostStart, hostEnd = hr.Start(), hr.End()
		cn, hn := int(cr.End())-int(cr.Start()), int(hostEnd)-int(hostStart)
		if cn != 0 && cn != hn {
			return nil, fmt.Errorf("invalid ranges: host %s and container %s differ in length", host, ctr)
		}
	}
	var out []portBinding
	i := 0
	for p := range cr.All() {
		b := network.PortBinding{HostIP: addr}
		switch {
		case host == "":
		case cr.Start() == cr.End() && hostStart != hostEnd:
			b.HostPort = fmt.Sprintf("%d-%d", hostStart, hostEnd)
		default:
			b.HostPort = strconv.Itoa(int(hostStart) + i)
		}
		out = append(out, portBinding{port: p, binding: b})
		i++
	}
	return out, nil
}

func (f *runFlags) parseLogging(_ *container.Config, hc *container.HostConfig) error {
	driver := f.logDriver
	switch driver {
	case "", "json-file", "none":
	default:
		return f.badArg("log-driver", driver, fmt.Errorf("unsupported logging driver '%s' (berth has json-file and none)", driver))
	}
	hc.LogConfig.Type = driver
	for _, o := range f.logOpts {
		k, v, ok := strings.Cut(o, "=")
		if !ok || k == "" {
			return f.badArg("log-opt", o, errors.New("want key=value"))
		}
		if driver == "none" {
			return f.badArg("log-opt", o, errors.New("the none log driver takes no options"))
		}
		switch k {
		case "max-size":
			n, err := units.FromHumanSize(v)
			if err != nil {
				return f.badArg("log-opt", o, err)
			}
			if n <= 0 {
				return f.badArg("log-opt", o, errors.New("max-size must be positive"))
			}
		case "max-file":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return f.badArg("log-opt", o, errors.New("max-file must be a number of at least 1"))
			}
		case "compress":
			if _, err := strconv.ParseBool(v); err != nil {
				return f.badArg("log-opt", o, errors.New("compress must be true or false"))
			}
		default:
			return f.badArg("log-opt", o, fmt.Errorf("unknown log opt '%s' for json-file log driver", k))
		}
		if hc.LogConfig.Config == nil {
			hc.LogConfig.Config = map[string]string{}
		}
		hc.LogConfig.Config[k] = v
	}
	return nil
}

func (f *runFlags) parseNamespaces(_ *container.Config, hc *container.HostConfig) error {
	hc.IpcMode = container.IpcMode(f.ipc)
	if !hc.IpcMode.Valid() || (hc.IpcMode.IsContainer() && hc.IpcMode.Container() == "") {
		return f.badArg("ipc", f.ipc, errors.New("invalid IPC mode"))
	}
	hc.PidMode = container.PidMode(f.pid)
	if !hc.PidMode.Valid() {
		return f.badArg("pid", f.pid, errors.New("invalid PID mode"))
	}
	uts := f.uts
	if uts == "private" {
		uts = ""
	}
	hc.UTSMode = container.UTSMode(uts)
	if !hc.UTSMode.Valid() {
		return f.badArg("uts", f.uts, errors.New("invalid UTS mode"))
	}
	if hc.UTSMode.IsHost() && f.hostname != "" {
		return errors.New("conflicting options: cannot set --hostname with --uts host")
	}
	hc.CgroupnsMode = container.CgroupnsMode(f.cgroupns)
	if !hc.CgroupnsMode.Valid() {
		return f.badArg("cgroupns", f.cgroupns, errors.New("invalid cgroup namespace mode (host or private)"))
	}
	return nil
}

func (f *runFlags) parseMisc(_ *container.Config, hc *container.HostConfig) error {
	for _, s := range f.sysctls {
		k, _, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return f.badArg("sysctl", s, errors.New("want key=value"))
		}
		if hc.Sysctls == nil {
			hc.Sysctls = map[string]string{}
		}
		k, v, _ := strings.Cut(s, "=")
		hc.Sysctls[k] = v
	}
	if f.init {
		t := true
		hc.Init = &t
	}
	switch f.pull {
	case "missing", "always", "never":
	default:
		return f.badArg("pull", f.pull, errors.New(`invalid pull option: must be one of "always", "missing" or "never"`))
	}
	if f.platform != "" {
		parts := strings.Split(f.platform, "/")
		if len(parts) < 2 || len(parts) > 3 || slicesHasEmpty(parts) {
			return f.badArg("platform", f.platform, errors.New("want os/arch[/variant]"))
		}
	}
	if f.name != "" && !validContainerName(f.name) {
		return f.badArg("name", f.name, fmt.Errorf("invalid container name (%s), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", f.name))
	}
	f.opts = runOptions{
		Name:       strings.TrimPrefix(f.name, "/"),
		Detach:     f.detach,
		Pull:       f.pull,
		Platform:   f.platform,
		DetachKeys: f.detachKeys,
		SigProxy:   f.sigProxy,
		Endpoint:   f.opts.Endpoint, // parseNetwork's
	}
	return nil
}

func slicesHasEmpty(s []string) bool {
	for _, p := range s {
		if p == "" {
			return true
		}
	}
	return false
}

// validContainerName is docker's /?[a-zA-Z0-9][a-zA-Z0-9_.-]+.
func validContainerName(n string) bool {
	return volume.ValidName(strings.TrimPrefix(n, "/")) == nil
}

// bytesValue is a size flag in docker's units (RAMInBytes: 512m, 1g);
// "-1" is accepted and range-checked by the user of the value.
type bytesValue struct {
	n   int64
	set bool
}

func (b *bytesValue) String() string {
	if !b.set {
		return ""
	}
	return strconv.FormatInt(b.n, 10)
}

func (b *bytesValue) Set(s string) error {
	if s == "-1" {
		b.n, b.set = -1, true
		return nil
	}
	n, err := units.RAMInBytes(s)
	if err != nil {
		// go-units says "invalid suffix: 'q'"; docker's message names
		// the whole value.
		return fmt.Errorf("invalid size: '%s'", s)
	}
	b.n, b.set = n, true
	return nil
}

func (b *bytesValue) Type() string { return "bytes" }

// decimalValue is --cpus: a decimal number of CPUs kept as nano-CPUs.
type decimalValue struct {
	n int64
	s string
}

func (d *decimalValue) String() string { return d.s }

func (d *decimalValue) Set(s string) error {
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return fmt.Errorf("failed to parse %v as a rational number", s)
	}
	nano := r.Mul(r, big.NewRat(1e9, 1))
	if !nano.IsInt() {
		return fmt.Errorf("value is too precise")
	}
	if !nano.Num().IsInt64() {
		return fmt.Errorf("value is too large")
	}
	d.n, d.s = nano.Num().Int64(), s
	return nil
}

func (d *decimalValue) Type() string { return "decimal" }

// ulimitValue is the repeatable --ulimit, the last value of a name wins.
type ulimitValue struct{ m map[string]*units.Ulimit }

func (u *ulimitValue) String() string {
	var s []string
	for _, l := range u.list() {
		s = append(s, l.String())
	}
	return "[" + strings.Join(s, " ") + "]"
}

func (u *ulimitValue) Set(s string) error {
	l, err := units.ParseUlimit(s)
	if err != nil {
		return err
	}
	if u.m == nil {
		u.m = map[string]*units.Ulimit{}
	}
	u.m[l.Name] = l
	return nil
}

func (u *ulimitValue) Type() string { return "ulimit" }

func (u *ulimitValue) list() []*container.Ulimit {
	if len(u.m) == 0 {
		return nil
	}
	names := make([]string, 0, len(u.m))
	for n := range u.m {
		names = append(names, n)
	}
	sort.Strings(names)
	out := make([]*container.Ulimit, 0, len(names))
	for _, n := range names {
		out = append(out, u.m[n])
	}
	return out
}
