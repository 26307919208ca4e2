package container

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/cgroups"
	"github.com/berth-project/berth/runtime/caps"
	"github.com/berth-project/berth/runtime/hooks"
	"github.com/berth-project/berth/runtime/namespaces"
	"github.com/berth-project/berth/runtime/seccomp"
	"github.com/berth-project/berth/runtime/spec"
)

// CreateOpts are the options of `create` and `run`.
type CreateOpts struct {
	ID            string
	Bundle        string
	PidFile       string
	ConsoleSocket string
	NoPivot       bool
	NoNewKeyring  bool
	PreserveFds   int
	Stdio         [3]*os.File
	// Run: start at once, through the sync socket instead of the fifo.
	Run bool
	// Console, a connected unix socket, replaces ConsoleSocket: init
	// sends the pty master on it (Run with a terminal in the foreground
	// receives it itself; the engine's monitor does for its containers).
	Console *os.File
	// Starter, when set, starts stage 0 in place of this process (see
	// Starter); Stdio is then ignored.
	Starter Starter
	// BeforeStart, when set, is called by Launch once the container is
	// created, before its process is allowed to start; an error deletes
	// the container and is Launch's.
	BeforeStart func() error
	// Starting, when set, is called by Launch with init's pid once it
	// told init to execute the process, while the exec happens: the
	// caller may record the start meanwhile. Launch may still fail after
	// it (the exec failed).
	Starting func(pid int)
	// Spec, when set, is the bundle's config in memory: config.json is
	// not read (it must still be written, for hooks and tools). Its
	// root.path may be relative to Bundle. Create does not modify it,
	// so its caller may read it (marshal it) concurrently.
	Spec *specs.Spec
	// BundleReady, when set, is called once init is spawned, before it
	// gets its config and starts using the bundle (mounts its rootfs,
	// runs hooks): the caller may finish the bundle (mount the rootfs,
	// write config.json) concurrently with the creation until then. Its
	// error deletes the container and is Create's.
	BundleReady func() error
	// loaded is the bundle's config as spec.Load returned it (absolute
	// root, validated), when Run or Launch has read it already.
	loaded *specs.Spec
	// Prespawned, when set, is the container's init already started
	// (Prespawn) with the namespaces the config asks for; Create takes
	// it instead of spawning one, or fails (and kills it) if it is not
	// what the config asks.
	Prespawned *Prespawned
}

// initConfig is what the parent sends init (or an exec'd process).
type initConfig struct {
	// Protocol is initProtocol of the parent's build; init refuses
	// another (a berth-init left from another build of berth).
	Protocol string      `json:"protocol"`
	Exec     bool        `json:"exec,omitempty"`
	Spec     *specs.Spec `json:"spec"`
	// Seccomp is linux.seccomp compiled by the parent.
	Seccomp      *seccomp.Program `json:"seccomp,omitempty"`
	ID           string           `json:"id"`
	Bundle       string           `json:"bundle"`
	HostPid      int              `json:"hostPid"`
	NoPivot      bool             `json:"noPivot,omitempty"`
	NoNewKeyring bool             `json:"noNewKeyring,omitempty"`
	NoMountNS    bool             `json:"noMountns,omitempty"` // chroot only
	UserNS       bool             `json:"userns,omitempty"`
	NewNetNS     bool             `json:"newNetns,omitempty"`
	PreserveFds  int              `json:"preserveFds"`
	FifoFd       int              `json:"fifoFd"`    // -1: wait for msgStart
	ConsoleFd    int              `json:"consoleFd"` // -1: no console socket
	// Unshare are the clone flags of the namespaces init makes itself
	// (a prespawned init: see lateNamespaces).
	Unshare int `json:"unshare,omitempty"`
	// PlaceLater: the parent moves init into its cgroup while init
	// prepares the root, and says so with msgPlaced. Init waits for it
	// before anything that depends on its cgroup: the cgroup namespace,
	// a cgroup mount, the createRuntime hooks (see waitPlaced).
	PlaceLater bool `json:"placeLater,omitempty"`
}

// Create makes a container from a bundle and leaves its init waiting for
// Start (or, with o.Run, starts it). On any error nothing is left behind:
// no state directory, cgroup, mount or process.
func (r *Runtime) Create(o CreateOpts) (c *Container, p *proc, retErr error) {
	if err := ValidateID(o.ID); err != nil {
		return nil, nil, err
	}
	bundle, err := filepath.Abs(o.Bundle)
	if err != nil {
		return nil, nil, err
	}
	s := o.loaded
	switch {
	case s != nil:
	case o.Spec != nil:
		if s, err = inMemorySpec(o.Spec, bundle); err != nil {
			return nil, nil, err
		}
	default:
		if s, err = spec.Load(bundle); err != nil {
			return nil, nil, err
		}
	}
	filter, err := r.validateSystem(s)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", filepath.Join(bundle, "config.json"), err)
	}
	mountNS := namespaces.Has(s.Linux, specs.MountNamespace)
	if !mountNS && len(s.Mounts) > 0 {
		// Mounting without a mount namespace would change the host's:
		// such a container only gets a chroot (runc mounts on the host).
		r.Log.Warn("no mount namespace: mounts, masked and read-only paths are not applied", "id", o.ID)
	}
	if s.Process.Terminal == (o.ConsoleSocket == "" && o.Console == nil) {
		if s.Process.Terminal {
			return nil, nil, fmt.Errorf("process.terminal is true: --console-socket is required")
		}
		return nil, nil, fmt.Errorf("--console-socket given but process.terminal is false")
	}

	dir := r.dir(o.ID)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, nil, fmt.Errorf("container %q already exists", o.ID)
		}
		return nil, nil, fmt.Errorf("create state dir: %w", err)
	}
	c = &Container{dir: dir, State: State{ID: o.ID, Bundle: bundle, Rootfs: s.Root.Path,
		Created: time.Now().UTC(), Owner: strconv.Itoa(os.Geteuid()), Rootless: os.Geteuid() != 0, Spec: s}}
	var cg cgroups.Manager
	// spawned, not the result p: every error return sets p to nil before
	// this runs.
	var spawned *proc
	// joinPlaced waits for a prespawned init's placement in its cgroup
	// (see placeLater); a failed placement is the error to report (it
	// killed init, which is how the rest of Create ended).
	joinPlaced := func() error { return nil }
	defer func() {
		if retErr != nil {
			if err := joinPlaced(); err != nil {
				retErr = err
			}
			o.Prespawned.Discard()
			if spawned != nil {
				unix.Kill(spawned.pid, unix.SIGKILL)
				reap(spawned.pid)
				spawned.sock.Close()
			}
			if cg != nil {
				if err := cg.Destroy(); err != nil {
					r.Log.Warn("remove cgroup", "id", o.ID, "err", err)
				}
			}
			os.RemoveAll(dir)
		}
	}()

	cg, err = cgroups.New(cgroups.Config{Path: s.Linux.CgroupsPath, ContainerID: o.ID, Rootless: c.State.Rootless})
	if err != nil {
		cg = nil
		return nil, nil, err
	}
	c.State.CgroupPaths = cg.Paths()
	// A state without init (pid 0: stopped) until init is ready: if this
	// process is killed before then, Load and Delete still find the
	// container and remove its cgroup and whatever runs in it.
	if err := c.save(); err != nil {
		return nil, nil, fmt.Errorf("save state: %w", err)
	}

	sp := &spawnSpec{stdio: o.Stdio, starter: o.Starter, uidMap: s.Linux.UIDMappings, gidMap: s.Linux.GIDMappings}
	for i := 0; i < o.PreserveFds; i++ {
		sp.preserve = append(sp.preserve, os.NewFile(uintptr(3+i), "preserved"))
	}
	// LISTEN_FDS (socket activation) are passed on as runc does.
	if n, _ := strconv.Atoi(os.Getenv("LISTEN_FDS")); n > o.PreserveFds {
		for i := o.PreserveFds; i < n; i++ {
			sp.preserve = append(sp.preserve, os.NewFile(uintptr(3+i), "listen"))
		}
	}
	var userns, newNet bool
	if sp.cloneFlags, sp.joins, userns, newNet, err = namespaceSpawn(s.Linux.Namespaces); err != nil {
		return nil, nil, err
	}
	sp.timens = timensOffsets(s.Linux.TimeOffsets)

	cfg := &initConfig{Protocol: initProtocol, Spec: initSpec(s), Seccomp: filter, ID: o.ID, Bundle: bundle, NoPivot: o.NoPivot, NoNewKeyring: o.NoNewKeyring,
		NoMountNS: !mountNS, UserNS: userns, NewNetNS: newNet, PreserveFds: len(sp.preserve), FifoFd: -1, ConsoleFd: -1}
	next := len(sp.preserve) + 4 // after stdio, preserved fds and the sync socket
	if !o.Run {
		fifo := filepath.Join(dir, fifoFile)
		if err := unix.Mkfifo(fifo, 0o622); err != nil {
			return nil, nil, fmt.Errorf("create exec fifo: %w", err)
		}
		// init opens it as the container's root, which a user namespace
		// maps to another host uid.
		if err := os.Chown(fifo, hostID(s.Linux.UIDMappings, 0), hostID(s.Linux.GIDMappings, 0)); err != nil {
			return nil, nil, fmt.Errorf("chown exec fifo: %w", err)
		}
		ff, err := os.OpenFile(fifo, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, nil, fmt.Errorf("open exec fifo: %w", err)
		}
		defer ff.Close()
		sp.extra = append(sp.extra, ff)
		cfg.FifoFd = next
		next++
	}
	if o.Console != nil {
		sp.extra = append(sp.extra, o.Console)
		cfg.ConsoleFd = next
	} else if o.ConsoleSocket != "" {
		conn, err := dialUnix(o.ConsoleSocket)
		if err != nil {
			return nil, nil, fmt.Errorf("--console-socket %s: %w", o.ConsoleSocket, err)
		}
		defer conn.Close()
		sp.extra = append(sp.extra, conn)
		cfg.ConsoleFd = next
	}
	// The cgroup is made and its limits set while stage 0 execs; once it
	// runs, only its pid is moved in. The pids limit waits until init is
	// ready: init is a Go program whose runtime starts threads, and a
	// small limit (docker's --pids-limit 1..4) would keep it from
	// booting; it limits the user's program, which init becomes.
	var cgWait sync.WaitGroup
	var cgErr error
	res := cgroupResources(s.Linux)
	pidsLimit := res.Pids
	res.Pids = nil
	// Not c's field: an error return clears c while this may still run.
	rootless := c.State.Rootless
	cgWait.Add(1)
	go func() {
		defer cgWait.Done()
		if cgErr = cg.Apply(0); cgErr != nil {
			return
		}
		if rootless && s.Linux.Resources == nil {
			// Nothing asked for, and a rootless runtime could not set
			// the default device rules anyway.
			return
		}
		cgErr = cg.Set(res)
	}()
	defer cgWait.Wait() // before the cleanup above removes the cgroup
	sp.placed = func(pid int) error {
		cgWait.Wait()
		if cgErr != nil {
			return cgErr
		}
		return cg.Apply(pid)
	}

	configSent := make(chan struct{})
	if pp := o.Prespawned; pp != nil {
		r.Log.Debug("take the prespawned init", "id", o.ID)
		if p, err = pp.take(sp); err != nil {
			return nil, nil, err
		}
		spawned = p
		cfg.Unshare = sp.cloneFlags & lateNamespaces
		// Init prepares its root while it is moved into its cgroup (the
		// cgroup's making and limits are most of that time), and waits
		// for msgPlaced only where its cgroup matters.
		cfg.PlaceLater = true
		joinPlaced = placeLater(p, sp.placed, configSent)
		defer joinPlaced()
	} else {
		r.Log.Debug("spawn init", "id", o.ID)
		if p, err = r.spawn(sp); err != nil {
			return nil, nil, err
		}
		spawned = p
	}
	r.Log.Debug("init forked", "id", o.ID, "pid", p.pid)
	c.State.Pid = p.pid
	cfg.HostPid = p.pid
	if s.Process.OOMScoreAdj != nil {
		path := fmt.Sprintf("/proc/%d/oom_score_adj", p.pid)
		if err := os.WriteFile(path, []byte(strconv.Itoa(*s.Process.OOMScoreAdj)), 0); err != nil {
			return nil, nil, fmt.Errorf("process.oomScoreAdj: %w%s", err, capHint(err, "lowering it"))
		}
	}
	if o.BundleReady != nil {
		if err := o.BundleReady(); err != nil {
			return nil, nil, err
		}
	}
	if err := p.send(message{Type: msgConfig, Config: cfg}); err != nil {
		return nil, nil, fmt.Errorf("send config to container init: %w", err)
	}
	close(configSent)
	for {
		m, err := p.recv()
		if err != nil {
			return nil, nil, initError(err)
		}
		if m.Type == msgReady {
			r.Log.Debug("init ready", "id", o.ID)
			if pidsLimit != nil {
				if err := cg.Set(&specs.LinuxResources{Pids: pidsLimit}); err != nil {
					return nil, nil, err
				}
			}
			break
		}
		if m.Type != msgHooks {
			return nil, nil, fmt.Errorf("unexpected message %q from container init", m.Type)
		}
		r.Log.Debug("rootfs prepared", "id", o.ID)
		// Init asks for the hooks once it was placed: the placement's
		// send is over.
		if err := joinPlaced(); err != nil {
			return nil, nil, err
		}
		if s.Hooks != nil {
			st := c.hookState(Creating)
			if err := hooks.Run("prestart", s.Hooks.Prestart, st); err != nil {
				return nil, nil, err
			}
			if err := hooks.Run("createRuntime", s.Hooks.CreateRuntime, st); err != nil {
				return nil, nil, err
			}
		}
		if err := p.send(message{Type: msgOK}); err != nil {
			return nil, nil, err
		}
	}
	start, _, err := procStat(p.pid)
	if err != nil {
		return nil, nil, fmt.Errorf("container init exited: %w", err)
	}
	c.State.PidStart = start
	if !o.Run {
		// The start (another process) finds init through the state.
		// A run saves it once it told init to start (saveStarted).
		if err := c.save(); err != nil {
			return nil, nil, fmt.Errorf("save state: %w", err)
		}
	}
	if o.PidFile != "" {
		if err := writeFileAtomic(o.PidFile, []byte(strconv.Itoa(p.pid)), 0o644); err != nil {
			return nil, nil, fmt.Errorf("--pid-file: %w", err)
		}
	}
	return c, p, nil
}

// saveStarted records the state of a container Create made with o.Run
// (init's pid) once init was told to start: the write overlaps init's
// last steps and exec. On failure the container is deleted.
func (c *Container) saveStarted() error {
	if err := c.save(); err != nil {
		c.Delete(true)
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// placeLater moves the prespawned init p into its cgroup (place) in the
// background and, once the config is sent (configSent closed), tells init
// with msgPlaced. If the placement fails, init is killed, so that Create,
// waiting for init's next message, sees it end. The returned join waits
// for all of it and returns the placement's error; it must run before
// Create sends anything else to init, and before Create returns.
func placeLater(p *proc, place func(pid int) error, configSent <-chan struct{}) (join func() error) {
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		if err := place(p.pid); err != nil {
			unix.Kill(p.pid, unix.SIGKILL)
			done <- err
			return
		}
		select {
		case <-configSent:
			if p.send(message{Type: msgPlaced}) != nil {
				// Init is gone, or would wait for this forever.
				unix.Kill(p.pid, unix.SIGKILL)
			}
		case <-stop: // Create failed before it sent the config
		}
		done <- nil
	}()
	return sync.OnceValue(func() error {
		close(stop)
		return <-done
	})
}

// inMemorySpec is what spec.Load makes of a config given in memory: root.path
// absolute, validated. The caller's spec is left as it was.
func inMemorySpec(s *specs.Spec, bundle string) (*specs.Spec, error) {
	if s.Root != nil && !filepath.IsAbs(s.Root.Path) {
		cp, root := *s, *s.Root
		root.Path = filepath.Join(bundle, root.Path)
		cp.Root = &root
		s = &cp
	}
	if err := spec.Validate(s); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(bundle, "config.json"), err)
	}
	return s, nil
}

// initError names an end of the sync socket for what it is: init died.
func initError(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("container init exited before it was ready")
	}
	return err
}

// seccompCacheDir is the directory of compiled seccomp programs in the
// runtime's root: '~' is not allowed in container ids, so it never clashes
// with a container's directory.
const seccompCacheDir = "~seccomp"

// validateSystem checks the parts of the config that depend on this
// machine or on the kernel, before anything is created, and compiles the
// seccomp profile (which validates it), through the cache in the
// runtime's root: the containers of one profile compile it once.
func (r *Runtime) validateSystem(s *specs.Spec) (*seccomp.Program, error) {
	if err := checkSystem(s); err != nil {
		return nil, err
	}
	return seccomp.Cache{Dir: filepath.Join(r.Root, seccompCacheDir)}.Compile(s.Linux.Seccomp)
}

func checkSystem(s *specs.Spec) error {
	if err := caps.Validate(s.Process.Capabilities); err != nil {
		return err
	}
	return checkRlimits(s.Process.Rlimits)
}

// checkRlimits refuses a hard limit above this process's when berth could
// not raise it (no CAP_SYS_RESOURCE): the kernel would refuse it later.
func checkRlimits(rl []specs.POSIXRlimit) error {
	if hasCap(unix.CAP_SYS_RESOURCE) {
		return nil
	}
	for i, r := range rl {
		var cur unix.Rlimit
		if err := unix.Getrlimit(spec.Rlimits[r.Type], &cur); err != nil {
			continue
		}
		if r.Hard > cur.Max {
			return fmt.Errorf("process.rlimits[%d]: %s hard limit %d is above the current hard limit %d, and raising it needs CAP_SYS_RESOURCE",
				i, r.Type, r.Hard, cur.Max)
		}
	}
	return nil
}

func hasCap(c int) bool {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<uint(c)) != 0
		}
	}
	return false
}

func capHint(err error, what string) string {
	if errors.Is(err, os.ErrPermission) && !hasCap(unix.CAP_SYS_RESOURCE) {
		return " (" + what + " needs CAP_SYS_RESOURCE, which berth does not have here)"
	}
	return ""
}

// initSpec is the part of the spec init reads: the cgroup resources and
// the seccomp rules (compiled already) stay in the runtime, and decoding
// fewer types keeps init's cold JSON decode short.
func initSpec(s *specs.Spec) *specs.Spec {
	c := *s
	l := *s.Linux
	l.Resources = nil
	if l.Seccomp != nil {
		l.Seccomp = &specs.LinuxSeccomp{ListenerPath: l.Seccomp.ListenerPath, ListenerMetadata: l.Seccomp.ListenerMetadata}
	}
	c.Linux = &l
	return &c
}

// hostID maps a container id to the host through a user namespace's
// mappings (the identity without one).
func hostID(m []specs.LinuxIDMapping, id uint32) int {
	if len(m) == 0 {
		return int(id)
	}
	for _, e := range m {
		if id >= e.ContainerID && id-e.ContainerID < e.Size {
			return int(e.HostID + id - e.ContainerID)
		}
	}
	return -1
}

func timensOffsets(o map[string]specs.LinuxTimeOffset) string {
	var b strings.Builder
	for clock, off := range o {
		fmt.Fprintf(&b, "%s %d %d\n", clock, off.Secs, off.Nanosecs)
	}
	return b.String()
}

func dialUnix(path string) (*os.File, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), path), nil
}
