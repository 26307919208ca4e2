package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/runtime/container"
	"github.com/berth-project/berth/runtime/spec"
)

func execCmd(g *globals) *cobra.Command {
	var (
		o             container.ExecOpts
		processFile   string
		tty, noNew    bool
		cwd, userSpec string
		env, capsAdd  []string
		addGids       []string
		ignorePaused  bool
	)
	cmd := &cobra.Command{
		Use:   "exec [flags] CONTAINER_ID [COMMAND [ARG...]]",
		Short: "run a new process in a running container",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.load(args[0])
			if err != nil {
				return err
			}
			var p *specs.Process
			if processFile != "" {
				if p, err = readProcess(processFile); err != nil {
					return err
				}
			} else {
				if len(args) < 2 {
					return fmt.Errorf("exec needs a command, or --process")
				}
				base := *c.State.Spec.Process
				p = &base
				p.Args = args[1:]
				p.Terminal = tty
				p.ConsoleSize = nil
				p.Env = append(append([]string{}, base.Env...), env...)
				if cwd != "" {
					p.Cwd = cwd
				}
				if userSpec != "" {
					if p.User, err = parseUser(userSpec); err != nil {
						return err
					}
				}
				for _, gs := range addGids {
					gid, err := strconv.ParseUint(gs, 10, 32)
					if err != nil {
						return fmt.Errorf("--additional-gids: %q is not a number", gs)
					}
					p.User.AdditionalGids = append(p.User.AdditionalGids, uint32(gid))
				}
				if len(capsAdd) > 0 {
					p.Capabilities = addCaps(base.Capabilities, capsAdd)
				}
				if cmd.Flags().Changed("no-new-privs") {
					p.NoNewPrivileges = noNew
				}
			}
			rt, err := g.runtime()
			if err != nil {
				return err
			}
			o.Process, o.Stdio = p, stdio()
			code, err := rt.Exec(c, o)
			if err != nil {
				return err
			}
			if code != 0 {
				return &ExitError{Code: code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false)
	f.StringVarP(&processFile, "process", "p", "", "a process.json (the spec's process object); - for stdin")
	f.BoolVarP(&tty, "tty", "t", false, "allocate a pseudo-terminal")
	f.StringVar(&cwd, "cwd", "", "working directory in the container")
	f.StringArrayVarP(&env, "env", "e", nil, "set an environment variable (KEY=VALUE)")
	f.StringVarP(&userSpec, "user", "u", "", "UID[:GID]")
	f.StringArrayVarP(&addGids, "additional-gids", "g", nil, "additional group ids")
	f.StringArrayVarP(&capsAdd, "cap", "c", nil, "add a capability")
	f.BoolVar(&noNew, "no-new-privs", false, "set no_new_privs for the process")
	f.BoolVarP(&o.Detach, "detach", "d", false, "do not wait for the process")
	f.StringVar(&o.PidFile, "pid-file", "", "write the process's pid to this file")
	f.StringVar(&o.ConsoleSocket, "console-socket", "", "unix socket that receives the pty master")
	f.IntVar(&o.PreserveFds, "preserve-fds", 0, "pass N more file descriptors to the process")
	f.BoolVar(&ignorePaused, "ignore-paused", false, "ignored")
	f.String("apparmor", "", "ignored: berth does not apply AppArmor profiles")
	f.String("process-label", "", "ignored: berth does not apply SELinux labels")
	return cmd
}

func readProcess(path string) (*specs.Process, error) {
	var r io.Reader
	if path == "-" {
		r = os.Stdin
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("--process: %w", err)
		}
		defer f.Close()
		r = f
	}
	var p specs.Process
	dec := json.NewDecoder(io.LimitReader(r, spec.MaxConfigSize))
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("--process %s: malformed JSON: %w", path, err)
	}
	return &p, nil
}

func parseUser(s string) (specs.User, error) {
	var u specs.User
	us, gs, hasG := strings.Cut(s, ":")
	uid, err := strconv.ParseUint(us, 10, 32)
	if err != nil {
		return u, fmt.Errorf("--user: %q is not UID[:GID]", s)
	}
	u.UID = uint32(uid)
	if hasG {
		gid, err := strconv.ParseUint(gs, 10, 32)
		if err != nil {
			return u, fmt.Errorf("--user: %q is not UID[:GID]", s)
		}
		u.GID = uint32(gid)
	}
	return u, nil
}

func addCaps(base *specs.LinuxCapabilities, add []string) *specs.LinuxCapabilities {
	c := &specs.LinuxCapabilities{}
	if base != nil {
		*c = *base
	}
	for _, name := range add {
		name = strings.ToUpper(name)
		if !strings.HasPrefix(name, "CAP_") {
			name = "CAP_" + name
		}
		c.Bounding = append(c.Bounding, name)
		c.Effective = append(c.Effective, name)
		c.Permitted = append(c.Permitted, name)
	}
	return c
}

func updateCmd(g *globals) *cobra.Command {
	var resFile string
	var mem, memRes, memSwap, kmem, kmemTCP, cpusetCpus, cpusetMems string
	var shares, period, rtPeriod uint64
	var quota, rtRuntime, pids int64
	var blkioWeight uint16
	cmd := &cobra.Command{
		Use:   "update [flags] CONTAINER_ID",
		Short: "change a running container's resource limits",
		Args:  exactArgs(1, "CONTAINER_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.load(args[0])
			if err != nil {
				return err
			}
			r := &specs.LinuxResources{}
			if old := c.State.Spec.Linux.Resources; old != nil {
				data, _ := json.Marshal(old)
				json.Unmarshal(data, r)
			}
			if resFile != "" {
				in := io.Reader(os.Stdin)
				if resFile != "-" {
					f, err := os.Open(resFile)
					if err != nil {
						return fmt.Errorf("--resources: %w", err)
					}
					defer f.Close()
					in = f
				}
				r = &specs.LinuxResources{}
				if err := json.NewDecoder(in).Decode(r); err != nil {
					return fmt.Errorf("--resources %s: malformed JSON: %w", resFile, err)
				}
			}
			fl := cmd.Flags()
			mm := func() *specs.LinuxMemory {
				if r.Memory == nil {
					r.Memory = &specs.LinuxMemory{}
				}
				return r.Memory
			}
			cc := func() *specs.LinuxCPU {
				if r.CPU == nil {
					r.CPU = &specs.LinuxCPU{}
				}
				return r.CPU
			}
			for _, b := range []struct {
				flag string
				val  string
				dst  func() **int64
			}{
				{"memory", mem, func() **int64 { return &mm().Limit }},
				{"memory-reservation", memRes, func() **int64 { return &mm().Reservation }},
				{"memory-swap", memSwap, func() **int64 { return &mm().Swap }},
				{"kernel-memory", kmem, func() **int64 { return &mm().Kernel }},
				{"kernel-memory-tcp", kmemTCP, func() **int64 { return &mm().KernelTCP }},
			} {
				if fl.Changed(b.flag) {
					v, err := ParseBytes(b.val)
					if err != nil {
						return fmt.Errorf("--%s: %w", b.flag, err)
					}
					*b.dst() = &v
				}
			}
			if fl.Changed("cpu-shares") {
				cc().Shares = &shares
			}
			if fl.Changed("cpu-period") {
				cc().Period = &period
			}
			if fl.Changed("cpu-quota") {
				cc().Quota = &quota
			}
			if fl.Changed("cpu-rt-period") {
				cc().RealtimePeriod = &rtPeriod
			}
			if fl.Changed("cpu-rt-runtime") {
				cc().RealtimeRuntime = &rtRuntime
			}
			if fl.Changed("cpuset-cpus") {
				cc().Cpus = cpusetCpus
			}
			if fl.Changed("cpuset-mems") {
				cc().Mems = cpusetMems
			}
			if fl.Changed("pids-limit") {
				r.Pids = &specs.LinuxPids{Limit: &pids}
			}
			if fl.Changed("blkio-weight") {
				if r.BlockIO == nil {
					r.BlockIO = &specs.LinuxBlockIO{}
				}
				r.BlockIO.Weight = &blkioWeight
			}
			return c.Update(r)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&resFile, "resources", "r", "", "a JSON file of linux.resources; - for stdin")
	f.StringVar(&mem, "memory", "", "memory limit (bytes, or with k, m, g)")
	f.StringVar(&memRes, "memory-reservation", "", "memory soft limit")
	f.StringVar(&memSwap, "memory-swap", "", "memory plus swap limit; -1 for unlimited")
	f.StringVar(&kmem, "kernel-memory", "", "kernel memory limit (deprecated)")
	f.StringVar(&kmemTCP, "kernel-memory-tcp", "", "kernel TCP buffer limit (deprecated)")
	f.Uint64Var(&shares, "cpu-shares", 0, "relative CPU weight")
	f.Uint64Var(&period, "cpu-period", 0, "CFS period (µs)")
	f.Int64Var(&quota, "cpu-quota", 0, "CFS quota (µs) per period")
	f.Uint64Var(&rtPeriod, "cpu-rt-period", 0, "realtime period (µs)")
	f.Int64Var(&rtRuntime, "cpu-rt-runtime", 0, "realtime runtime (µs)")
	f.StringVar(&cpusetCpus, "cpuset-cpus", "", "CPUs allowed (0-3,5)")
	f.StringVar(&cpusetMems, "cpuset-mems", "", "memory nodes allowed")
	f.Int64Var(&pids, "pids-limit", 0, "maximum number of processes")
	f.Uint16Var(&blkioWeight, "blkio-weight", 0, "block IO weight (10-1000)")
	return cmd
}

// ParseBytes parses a size like 512, 64k, 100m, 1g or 1GiB; -1 is
// unlimited.
func ParseBytes(s string) (int64, error) {
	if s == "-1" {
		return -1, nil
	}
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "ib"), "b")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return int64(n * float64(mult)), nil
}

func eventsCmd(g *globals) *cobra.Command {
	var stats bool
	var interval time.Duration
	cmd := &cobra.Command{
		Use:   "events [flags] CONTAINER_ID",
		Short: "print the container's resource usage as JSON events",
		Args:  exactArgs(1, "CONTAINER_ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.load(args[0])
			if err != nil {
				return err
			}
			if interval <= 0 {
				return fmt.Errorf("--interval: must be positive")
			}
			enc := json.NewEncoder(os.Stdout)
			for {
				if c.Status() == container.Stopped {
					return fmt.Errorf("container %s is stopped", c.ID())
				}
				st, err := c.Stats()
				if err != nil {
					return err
				}
				if err := enc.Encode(map[string]any{"type": "stats", "id": c.ID(), "data": st}); err != nil {
					return err
				}
				if stats {
					return nil
				}
				time.Sleep(interval)
			}
		},
	}
	cmd.Flags().BoolVar(&stats, "stats", false, "print the statistics once and exit")
	cmd.Flags().DurationVar(&interval, "interval", 5*time.Second, "time between statistics")
	return cmd
}

func featuresCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "features",
		Short: "print what this runtime supports (OCI features JSON)",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, args []string) error {
			return printJSON(Features(), true)
		},
	}
}

// Features describes what berth's runtime implements.
func Features() *features.Features {
	t := true
	f := false
	var nss []string
	for _, ns := range []specs.LinuxNamespaceType{specs.CgroupNamespace, specs.IPCNamespace, specs.MountNamespace,
		specs.NetworkNamespace, specs.PIDNamespace, specs.TimeNamespace, specs.UserNamespace, specs.UTSNamespace} {
		nss = append(nss, string(ns))
	}
	return &features.Features{
		OCIVersionMin: "1.0.0",
		OCIVersionMax: specs.Version,
		Hooks:         []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"},
		MountOptions: []string{"async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "lazytime",
			"mand", "noatime", "nodev", "nodiratime", "noexec", "nolazytime", "nomand", "norelatime", "nostrictatime",
			"nosuid", "private", "rbind", "relatime", "remount", "ro", "rprivate", "rshared", "rslave", "runbindable",
			"rw", "shared", "silent", "slave", "strictatime", "suid", "sync", "unbindable", "loud"},
		Linux: &features.Linux{
			Namespaces:   nss,
			Capabilities: capNames(),
			Cgroup:       &features.Cgroup{V1: &t, V2: &t, Systemd: &f, SystemdUser: &f, Rdma: &f},
			Seccomp: &features.Seccomp{Enabled: &t,
				Actions: []string{"SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
					"SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"},
				Operators: []string{"SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
					"SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"},
				Archs: []string{"SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"},
			},
			Apparmor: &features.Apparmor{Enabled: &f},
			Selinux:  &features.Selinux{Enabled: &f},
		},
	}
}

func capNames() []string {
	var out []string
	list, err := capability.ListSupported()
	if err != nil {
		list = capability.ListKnown()
	}
	for _, c := range list {
		out = append(out, "CAP_"+strings.ToUpper(c.String()))
	}
	return out
}
