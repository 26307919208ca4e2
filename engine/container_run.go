package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-project/berth/internal/flock"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	units "github.com/docker/go-units"
	mobyctr "github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/containers"
	"github.com/berth-project/berth/metadata"
	"github.com/berth-project/berth/monitor"
	"github.com/berth-project/berth/oci"
	"github.com/berth-project/berth/runtime/container"
	"github.com/berth-project/berth/snapshot"
)

// Log defaults: docker's json-file keeps one unbounded file; berth bounds
// a container's log to 3 files of 20 MiB unless --log-opt says otherwise,
// as podman and docker's "local" driver do, so a chatty container cannot
// fill the disk.
const (
	defaultLogMaxSize  = 20 << 20
	defaultLogMaxFiles = 3
)

// StartOptions are the options of StartContainer.
type StartOptions struct {
	// Attach connects to the container's stdio before it starts, so no
	// output is lost: StartContainer returns the connection.
	Attach bool
	// ClaimCleanup (with Attach): the caller cleans up after the exit
	// (WaitContainer), not the monitor's exit command.
	ClaimCleanup bool
	// policyRestart is a restart by the restart policy (see
	// restartAfterBackoff): it keeps RestartCount and gives up if the
	// container is no longer waiting to be restarted.
	policyRestart bool
}

// lockedContainer resolves ref, locks the container (lockContainer) and
// returns its record as it is under the lock, with the unlock function.
func (s *Store) lockedContainer(ctx context.Context, ref string) (*containers.Container, func(), error) {
	c, err := s.Container(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	unlock, err := s.lockContainer(c.ID)
	if err != nil {
		return nil, nil, err
	}
	if c, err = s.db.GetContainer(ctx, c.ID); err != nil {
		unlock()
		return nil, nil, err
	}
	return c, unlock, nil
}

// lockContainer takes an exclusive flock on the container's lock file:
// start, cleanup and remove of one container never interleave, across
// processes. The lock goes with the process if it dies.
func (s *Store) lockContainer(id string) (func(), error) {
	unlock, err := flock.Lock(filepath.Join(s.containerDir(id), ".lock"), unix.LOCK_EX)
	if err != nil {
		return nil, fmt.Errorf("lock container %s: %w", id, err)
	}
	return unlock, nil
}

// StartContainer starts the created or exited container ref: it mounts
// its rootfs, writes its bundle and /etc files, and hands it to a monitor
// process that starts it through berth's runtime and outlives this
// process. A failed start leaves the container stopped, with the reason
// in State.Error and docker's exit code (126 or 127 when the command
// cannot be run) in State.ExitCode.
func (s *Store) StartContainer(ctx context.Context, ref string, opts StartOptions) (*containers.Container, *monitor.Conn, error) {
	c, unlock, err := s.lockedContainer(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	defer unlock()
	if opts.policyRestart {
		if err := checkPolicyRestart(c); err != nil {
			return c, nil, err
		}
	}
	switch c.State.Status {
	case containers.Running:
		return c, nil, nil
	case containers.Paused:
		return nil, nil, fmt.Errorf("cannot start a paused container, try unpause instead: %w", ErrConflict)
	case containers.Removing, containers.Dead:
		return nil, nil, fmt.Errorf("container %s is marked for removal and cannot be started: %w", c.Name, ErrConflict)
	}
	// What the record said before the start, to put back if the exec
	// fails after the start was recorded.
	var prevState containers.State
	var prevNet *mobyctr.NetworkSettings
	record := func(started monitor.Started) (*containers.Container, error) {
		return s.db.UpdateContainer(recordCtx(ctx, c), c.ID, func(rec *containers.Container) error {
			prev := rec.State
			prevState, prevNet = rec.State, rec.NetworkSettings
			rec.State = containers.State{Status: containers.Running, Pid: started.Pid, StartedAt: time.Now().UTC(),
				MonitorPID: started.MonitorPID, MonitorStart: procStart(started.MonitorPID), BootID: bootID(),
				RestartCount: rec.State.RestartCount}
			startedState(&rec.State, prev, rec.Config, opts.policyRestart)
			rec.NetworkSettings = c.NetworkSettings
			return nil
		})
	}
	// The record of the start is written while init executes the
	// container's process (when berth's runtime runs in this process),
	// not after: the exec may still fail, and then the record is put
	// back as it was.
	type recorded struct {
		c   *containers.Container
		err error
	}
	var early chan recorded
	starting := func(started monitor.Started) {
		early = make(chan recorded, 1)
		go func() {
			c, err := record(started)
			early <- recorded{c, err}
		}()
	}
	conn, started, err := s.start(ctx, c, opts, starting)
	if err != nil {
		msg := err.Error()
		code := StartErrorCode(msg)
		recordedStart := false
		if early != nil {
			recordedStart = (<-early).err == nil
		}
		s.db.UpdateContainer(recordCtx(context.WithoutCancel(ctx), c), c.ID, func(rec *containers.Container) error {
			if recordedStart {
				rec.State, rec.NetworkSettings = prevState, prevNet
			}
			rec.State.Error, rec.State.ExitCode = msg, code
			rec.State.FinishedAt = time.Now().UTC()
			return nil
		})
		return c, nil, &StartError{Code: code, Err: err}
	}
	if early != nil {
		r := <-early
		c, err = r.c, r.err
	} else {
		c, err = record(started)
	}
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, nil, err
	}
	s.containerEvent(ctx, c, "start")
	return c, conn, nil
}

// StartError is a container that could not be started.
type StartError struct {
	Code int // docker's: 127 command not found, 126 not executable, 125 otherwise
	Err  error
}

func (e *StartError) Error() string { return e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

// StartErrorCode is docker's exit code for a start that failed with msg:
// 127 when the command does not exist, 126 when it cannot be executed,
// else 125.
func StartErrorCode(msg string) int {
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "executable file not found"), strings.Contains(m, "no such file or directory"):
		return 127
	case strings.Contains(m, "permission denied"), strings.Contains(m, "exec format error"), strings.Contains(m, "is a directory"):
		return 126
	}
	return 125
}

// start starts c. Where this process is the runtime (see launch), it
// calls starting (if not nil) once init was told to execute the
// container's process, before start returns.
func (s *Store) start(ctx context.Context, c *containers.Container, opts StartOptions, starting func(monitor.Started)) (_ *monitor.Conn, _ monitor.Started, retErr error) {
	dir := s.containerDir(c.ID)
	rootfs := filepath.Join(dir, "rootfs")
	run := s.runDir(c.ID)
	// A launch begun by the create of this container (the run dir is
	// its monitor's), else what a previous run left: a dead monitor's
	// files, a mount, the runtime's state and network of a start cut
	// short.
	early := s.takeEarly(c.ID, opts)
	if early == nil {
		os.RemoveAll(run)
	}
	defer func() {
		if retErr != nil && early != nil {
			early.abort()
		}
	}()
	snapshot.Unmount(rootfs)
	if err := s.clearLeftovers(ctx, c); err != nil {
		return nil, monitor.Started{}, err
	}
	if err := os.MkdirAll(run, 0o700); err != nil {
		return nil, monitor.Started{}, err
	}
	exe, err := s.exe()
	if err != nil {
		return nil, monitor.Started{}, err
	}
	mo, err := s.monitorOptions(c, exe, opts)
	if err != nil {
		return nil, monitor.Started{}, err
	}

	// This process is the runtime when it is the binary the monitor
	// runs (see launch). The monitor then starts (an exec and a fork)
	// and, once the network namespace is known, forks the container's
	// init (stage 0, an exec and the init's runtime start-up: see
	// container.Prespawn) while this process mounts the rootfs and
	// writes the bundle.
	if self, err := os.Executable(); err == nil && self == exe && early == nil {
		early = s.beginLaunch(ctx, mo, opts)
	}

	// The CNI ADD runs while the rootfs is mounted, the bundle written
	// and (in process) the runtime creates the container:
	// finishNetwork waits for it.
	finishNetwork := func() error { return nil }
	defer func() {
		if retErr != nil {
			finishNetwork() // the ADD's goroutine, before its teardown
			snapshot.Unmount(rootfs)
			s.runtime().deleteState(c.ID)
			s.teardownNetwork(ctx, c)
			os.RemoveAll(run)
		}
	}()
	finish, err := s.beginNetwork(ctx, c)
	if err != nil {
		return nil, monitor.Started{}, err
	}
	finishNetwork = finish
	if early != nil {
		if mo.Terminal {
			early.prespawn(nil) // the console is the create's to pass to init
		} else {
			// Generate fails on the same error later.
			ns, _ := oci.Namespaces(c.HostConfig, containerNetNS(c))
			early.prespawn(ns)
		}
	}
	// A --rm container's layer goes with it: no sync on its way out.
	if err := s.mountRootfs(c.ID, rootfs, c.HostConfig.AutoRemove); err != nil {
		return nil, monitor.Started{}, err
	}
	if early == nil || netSysctls(c) {
		// The runtime's create writes the container's net.* sysctls,
		// some of its interfaces'; an external runtime starts at once.
		if err := finishNetwork(); err != nil {
			return nil, monitor.Started{}, err
		}
	}
	spec, files, err := s.bundleSpec(c, dir, rootfs)
	if err != nil {
		return nil, monitor.Started{}, err
	}
	if spec.Process.Terminal != mo.Terminal {
		return nil, monitor.Started{}, fmt.Errorf("container %s: process.terminal is %v but Tty %v", c.ID, spec.Process.Terminal, mo.Terminal)
	}

	if early != nil {
		// Before the container's process starts: the network's ADD
		// done and what it gave written into the files bundle wrote
		// without it (/etc/hosts' own addresses, resolv.conf's name
		// server on networks that resolve names).
		beforeStart := func() error {
			if err := finishNetwork(); err != nil {
				return err
			}
			if networkName(c.HostConfig.NetworkMode) == "" {
				return nil // no ADD (none, host, container:): the files are final
			}
			return s.rewriteEtcFiles(c, dir)
		}
		// The runtime spawns init (the monitor, stage 0 and init's own
		// start-up) while this goroutine writes the bundle; init gets
		// its config once the bundle is complete.
		written := make(chan error, 1)
		bundleReady := func() error { return <-written }
		type result struct {
			conn    *monitor.Conn
			started monitor.Started
			err     error
		}
		done := make(chan result, 1)
		go func() {
			var r result
			if l, pre, err := early.wait(); err != nil {
				r.err = err
			} else {
				r.conn, r.started, r.err = s.launch(c, l, pre, mo, dir, spec, bundleReady, beforeStart, starting)
			}
			early.stopPriming()
			done <- r
		}()
		werr := writeBundle(dir, rootfs, spec, files)
		written <- werr
		r := <-done
		if werr != nil && r.err == nil {
			r.err = werr // the launch got as far without the bundle
		}
		return r.conn, r.started, r.err
	}
	if err := writeBundle(dir, rootfs, spec, files); err != nil {
		return nil, monitor.Started{}, err
	}
	// Another binary than this process's (a library user's): the
	// monitor runs it as the runtime.
	rtArgs := []string{exe, "runtime", "--root", s.runtimeRoot(), "--log", filepath.Join(run, "runtime.log"), "--log-format", "json",
		"run", "--detach", "--bundle", dir, "--pid-file", filepath.Join(run, "pid")}
	if spec.Process.Terminal {
		rtArgs = append(rtArgs, "--console-socket", monitor.ConsoleSocket) // relative: the runtime runs in the run dir
	}
	mo.Runtime = append(rtArgs, c.ID)
	mo.PidFile = filepath.Join(run, "pid")
	if opts.Attach {
		started, conn, err := monitor.StartAttached(ctx, mo)
		return conn, started, err
	}
	started, err := monitor.Start(ctx, mo)
	return nil, started, err
}

// monitorOptions are the options of c's monitor for a start with opts.
func (s *layout) monitorOptions(c *containers.Container, exe string, opts StartOptions) (monitor.Options, error) {
	mo := monitor.Options{
		Exe:          exe,
		RunDir:       s.runDir(c.ID),
		Terminal:     c.Config.Tty, // the spec's process.terminal (start checks)
		Stdin:        c.Config.OpenStdin,
		StdinOnce:    c.Config.StdinOnce,
		Attach:       opts.Attach,
		ClaimCleanup: opts.Attach && opts.ClaimCleanup,
		ExitCommand:  []string{exe, "--root", s.root, "--runroot", s.runRoot, "container", "cleanup", c.ID},
	}
	if lc := c.HostConfig.LogConfig; lc.Type != "none" {
		mo.LogPath = filepath.Join(s.containerDir(c.ID), c.ID+"-json.log")
		var err error
		if mo.LogMaxSize, mo.LogMaxFiles, err = logLimits(lc.Config); err != nil {
			return monitor.Options{}, err
		}
	}
	s.healthOptions(c, exe, &mo)
	return mo, nil
}

// logLimits reads json-file's max-size and max-file options.
func logLimits(opts map[string]string) (int64, int, error) {
	size, files := int64(defaultLogMaxSize), defaultLogMaxFiles
	if v, ok := opts["max-size"]; ok {
		n, err := units.RAMInBytes(v)
		if err != nil {
			return 0, 0, fmt.Errorf("log-opt max-size=%s: %w", v, err)
		}
		size = n
	}
	if v, ok := opts["max-file"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return 0, 0, fmt.Errorf("log-opt max-file=%s: must be a number of at least 1", v)
		}
		files = n
	}
	return size, files, nil
}

// bundleSpec makes c's OCI config (the rootfs must be mounted: users and
// groups are looked up inside it) and the /etc files its mounts name.
func (s *Store) bundleSpec(c *containers.Container, dir, rootfs string) (*specs.Spec, map[string][]byte, error) {
	hostname, files, err := etcFiles(c)
	if err != nil {
		return nil, nil, err
	}
	var mounts []specs.Mount
	for _, m := range c.Mounts {
		mounts = append(mounts, specMount(m))
	}
	in := oci.Input{ID: c.ID, Config: c.Config, Host: c.HostConfig, Rootfs: rootfs, Hostname: hostname,
		HostsPath: filepath.Join(dir, "hosts"), HostnamePath: filepath.Join(dir, "hostname"),
		ResolvConfPath: filepath.Join(dir, "resolv.conf"), Mounts: mounts, CgroupsPath: "/berth/" + c.ID,
		NetNSPath: containerNetNS(c)}
	if c.HostConfig.Init != nil && *c.HostConfig.Init {
		if in.InitPath, err = s.exe(); err != nil {
			return nil, nil, err
		}
	}
	spec, err := oci.Generate(in)
	if err != nil {
		return nil, nil, err
	}
	spec.Root.Path = "rootfs"
	return spec, files, nil
}

// writeBundle writes the /etc files and config.json of spec into dir and
// makes the working directory.
func writeBundle(dir, rootfs string, spec *specs.Spec, files map[string][]byte) error {
	for name, data := range files {
		if err := writeFileAtomic(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	// Docker creates a missing working directory (root's, 0755), inside
	// the rootfs: a symlink on the way cannot lead out of it.
	if cwd := spec.Process.Cwd; cwd != "" && cwd != "/" {
		if err := pathrs.MkdirAll(rootfs, cwd, 0o755); err != nil {
			return fmt.Errorf("working directory %s: %w", cwd, err)
		}
	}
	data, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, "config.json"), data, 0o600)
}

// containerHostname is c's hostname: -h, else its short ID (the host's
// name with --network host).
func containerHostname(c *containers.Container) string {
	switch {
	case c.Config.Hostname != "":
		return c.Config.Hostname
	case c.HostConfig.NetworkMode == "host":
		h, _ := os.Hostname()
		return h
	}
	return c.ID[:12]
}

// etcFiles are the contents of c's /etc/hostname, /etc/hosts and
// /etc/resolv.conf (by their names in the bundle), from its config and
// c.NetworkSettings, and its hostname.
func etcFiles(c *containers.Container) (string, map[string][]byte, error) {
	hostname := containerHostname(c)
	hostNet := c.HostConfig.NetworkMode == "host"
	hostHosts, _ := os.ReadFile("/etc/hosts")
	hosts, err := oci.Hosts(hostname, c.HostConfig.ExtraHosts, hostNet, hostHosts)
	if err != nil {
		return "", nil, err
	}
	hosts = append(hosts, hostsEntries(c, hostname)...)
	hostResolv, _ := os.ReadFile("/etc/resolv.conf")
	return hostname, map[string][]byte{
		"hostname":    []byte(hostname + "\n"),
		"hosts":       hosts,
		"resolv.conf": resolvConf(c, hostResolv),
	}, nil
}

// rewriteEtcFiles brings the /etc files bundle wrote in dir up to date
// with c.NetworkSettings once its network is attached. The runtime has
// already bind-mounted them into the container (which has not started
// yet): a changed file's content is rewritten in place, since a new
// file renamed over it would not be the one mounted.
func (s *Store) rewriteEtcFiles(c *containers.Container, dir string) error {
	_, files, err := etcFiles(c)
	if err != nil {
		return err
	}
	for _, name := range []string{"hosts", "resolv.conf"} {
		path := filepath.Join(dir, name)
		old, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("container %s: %w", c.ID, err)
		}
		if bytes.Equal(old, files[name]) {
			continue
		}
		if err := writeInPlace(path, files[name]); err != nil {
			return fmt.Errorf("container %s: write %s: %w", c.ID, path, err)
		}
	}
	return nil
}

// writeInPlace replaces path's content in the file itself (not a new file
// renamed over it): for the /etc files bind-mounted into a container.
func writeInPlace(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// specMount is the OCI mount of a resolved container mount.
func specMount(m containers.Mount) specs.Mount {
	if m.Type == "tmpfs" {
		opts := append([]string{"nosuid", "nodev", "noexec"}, m.Options...)
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		return specs.Mount{Destination: m.Destination, Type: "tmpfs", Source: "tmpfs", Options: opts}
	}
	opts := []string{"rbind"}
	if m.ReadOnly {
		opts = append(opts, "ro")
	}
	prop := m.Propagation
	if prop == "" {
		prop = "rprivate"
	}
	opts = append(opts, prop)
	return specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts}
}

// writeFileAtomic writes data to path through a temporary file and a
// rename, so readers see the old or the new content, never a part.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}

// exe is the berth binary that monitors and runtimes are run from.
func (s *layout) exe() (string, error) {
	if s.berthExe != "" {
		return s.berthExe, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find berth's binary: %w", err)
	}
	return exe, nil
}

// bootID identifies the host's current boot.
func bootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}

// procStart is process pid's start time (see metadata.Owner), 0 if gone.
func procStart(pid int) uint64 {
	o, err := metadata.OwnerOf(pid)
	if err != nil {
		return 0
	}
	return o.Start
}

// engineRuntime is berth's OCI runtime on the engine's runtime root.
type engineRuntime struct{ rt *container.Runtime }

func (s *Store) runtime() engineRuntime {
	return engineRuntime{&container.Runtime{Root: s.runtimeRoot(), Log: slog.New(slog.DiscardHandler)}}
}

// load returns the runtime's container id, or nil if it has none.
func (r engineRuntime) load(id string) *container.Container {
	c, err := r.rt.Load(id)
	if err != nil {
		return nil
	}
	return c
}

// deleteState kills and deletes the runtime's container id, if any, also
// what a create cut short left.
func (r engineRuntime) deleteState(id string) error {
	return r.rt.Forget(id)
}

// Cleanup finishes a container whose process exited (or whose monitor
// died): it records the exit code and time (or the reason it is unknown),
// deletes the runtime's state, unmounts the rootfs and, for --rm
// containers, removes the container. The monitor runs it when the
// container exits; any berth command that finds a container whose monitor
// is gone runs it too. It is idempotent and safe to run concurrently.
// When the restart policy restarts the container (whichever berth process
// recorded the exit), Cleanup waits the policy's backoff and starts it
// again: only the monitor's cleanup calls Cleanup itself.
func (s *Store) Cleanup(ctx context.Context, ref string) error {
	c, err := s.db.GetContainer(ctx, ref)
	if err != nil {
		return err
	}
	if c, err = s.cleanup(ctx, c); err != nil || c == nil {
		return err
	}
	if c.State.Status == containers.Restarting {
		return s.restartAfterBackoff(ctx, c)
	}
	return nil
}

// cleanup does Cleanup's work for c and returns the updated record (nil
// when removed).
func (s *Store) cleanup(ctx context.Context, c *containers.Container) (*containers.Container, error) {
	if _, err := os.Stat(s.containerDir(c.ID)); errors.Is(err, os.ErrNotExist) {
		return nil, nil // being removed
	}
	unlock, err := s.lockContainer(c.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if c, err = s.db.GetContainer(ctx, c.ID); err != nil {
		return nil, err
	}
	if c.State.Status != containers.Running && c.State.Status != containers.Paused {
		return c, nil
	}
	run := s.runDir(c.ID)
	code, finished, ok, _ := monitor.ReadExit(run)
	reason := ""
	if !ok {
		switch {
		case c.State.BootID != bootID():
			reason, code = "the host rebooted while the container ran", 255
		case monitorAlive(c):
			return c, nil // still running
		default:
			reason, code = fmt.Sprintf("its monitor (pid %d) died; the container was killed", c.State.MonitorPID), 137
		}
		finished = time.Now().UTC()
	}
	s.containerEvent(ctx, c, "die", "exitCode", strconv.Itoa(code))
	// The runtime's state and cgroup go while the rest is removed, if
	// nothing of the container can still run: with a pid namespace of its
	// own, its init's exit was the last of its processes'. With the
	// host's, the runtime's delete kills what is left first.
	deleteState := func() error {
		if err := s.runtime().deleteState(c.ID); err != nil {
			return fmt.Errorf("container %s: delete runtime state: %w", c.ID, err)
		}
		return nil
	}
	waitDeleted := func() error { return nil }
	if c.HostConfig.PidMode.IsHost() {
		if err := deleteState(); err != nil {
			return nil, err
		}
	} else {
		deleted := make(chan error, 1)
		go func() { deleted <- deleteState() }()
		waitDeleted = sync.OnceValue(func() error { return <-deleted })
	}
	defer waitDeleted()
	if err := s.teardownNetworkAfterExit(ctx, c); err != nil {
		// Not fatal: a container whose network cannot be torn down
		// must still stop; the error says what is left.
		fmt.Fprintf(os.Stderr, "berth: container %s: %v\n", c.ID, err)
	}
	if err := snapshot.Unmount(filepath.Join(s.containerDir(c.ID), "rootfs")); err != nil {
		return nil, err
	}
	if c.HostConfig.AutoRemove {
		if err := s.destroyAfter(ctx, c, true, waitDeleted); err != nil {
			return nil, err
		}
		return nil, nil
	}
	os.RemoveAll(run)
	if err := waitDeleted(); err != nil {
		return nil, err
	}
	nc, err := s.db.UpdateContainer(ctx, c.ID, func(rec *containers.Container) error {
		rec.State.Status = containers.Exited
		rec.State.ExitCode, rec.State.FinishedAt, rec.State.Error = code, finished, reason
		rec.State.Pid, rec.State.MonitorPID, rec.State.MonitorStart = 0, 0, 0
		decideRestart(&rec.State, rec.HostConfig)
		rec.NetworkSettings = nil
		return nil
	})
	if err == nil && !ok && c.State.BootID == bootID() && nc.State.Status == containers.Restarting {
		s.spawnRestarter(nc.ID) // the dead monitor will not run its cleanup
	}
	return nc, err
}

// monitorAlive reports whether c's monitor process still runs.
func monitorAlive(c *containers.Container) bool {
	return metadata.Owner{PID: c.State.MonitorPID, Start: c.State.MonitorStart}.Alive()
}

// reconcile brings c's recorded state up to date with the processes: a
// running container whose monitor recorded an exit, died, or ran before a
// reboot is cleaned up.
func (s *Store) reconcile(ctx context.Context, c *containers.Container) (*containers.Container, error) {
	if c.State.Status != containers.Running && c.State.Status != containers.Paused {
		return c, nil
	}
	if _, _, ok, _ := monitor.ReadExit(s.runDir(c.ID)); !ok && c.State.BootID == bootID() && monitorAlive(c) {
		return c, nil
	}
	nc, err := s.cleanup(ctx, c)
	if err != nil {
		return nil, err
	}
	if nc == nil {
		return nil, fmt.Errorf("container %s: %w", c.ID, metadata.ErrNotFound)
	}
	return nc, nil
}

// KillContainer sends sig to the container's init (all its processes with
// all).
func (s *Store) KillContainer(ctx context.Context, ref string, sig unix.Signal) error {
	c, err := s.Container(ctx, ref)
	if err != nil {
		return err
	}
	if c.State.Status == containers.Running || c.State.Status == containers.Paused || c.State.Status == containers.Restarting {
		if c, err = s.markManuallyStopped(ctx, c.ID); err != nil {
			return err
		}
	}
	if c.State.Status == containers.Exited && c.State.ManuallyStopped {
		return nil // was waiting to be restarted: now it is not
	}
	if c.State.Status != containers.Running && c.State.Status != containers.Paused {
		return fmt.Errorf("cannot kill container: %s: container %s is not running: %w", ref, c.ID, ErrConflict)
	}
	rc := s.runtime().load(c.ID)
	if rc == nil {
		return fmt.Errorf("cannot kill container: %s: no runtime state", ref)
	}
	if err := rc.Kill(sig, false); err != nil {
		return fmt.Errorf("cannot kill container: %s: %w", ref, err)
	}
	s.containerEvent(ctx, c, "kill", "signal", strconv.Itoa(int(sig)))
	if c.State.Status == containers.Paused && sig == unix.SIGKILL {
		rc.Resume()
	}
	return nil
}

// StopContainer stops the container: its stop signal (SIGTERM unless the
// image or --stop-signal says otherwise), then SIGKILL to all its
// processes after timeout (nil: the container's --stop-timeout, else 10
// seconds; negative: wait forever). A stopped container is left as it is.
func (s *Store) StopContainer(ctx context.Context, ref string, timeout *int) (*containers.Container, error) {
	c, err := s.Container(ctx, ref)
	if err != nil {
		return nil, err
	}
	if c.State.Status == containers.Running || c.State.Status == containers.Paused || c.State.Status == containers.Restarting {
		if c, err = s.markManuallyStopped(ctx, c.ID); err != nil {
			return nil, err
		}
	}
	if c.State.Status != containers.Running && c.State.Status != containers.Paused {
		return c, nil
	}
	rc := s.runtime().load(c.ID)
	if rc == nil {
		return s.cleanup(ctx, c)
	}
	wait := 10 * time.Second
	if c.Config.StopTimeout != nil {
		wait = time.Duration(*c.Config.StopTimeout) * time.Second
	}
	if timeout != nil {
		wait = time.Duration(*timeout) * time.Second
	}
	sig, err := ParseSignal(c.Config.StopSignal)
	if err != nil {
		sig = unix.SIGTERM
	}
	if wait != 0 {
		rc.Kill(sig, false)
		s.containerEvent(ctx, c, "kill", "signal", strconv.Itoa(int(sig)))
		if c.State.Status == containers.Paused {
			rc.Resume()
		}
		wctx := ctx
		if wait > 0 {
			var cancel context.CancelFunc
			wctx, cancel = context.WithTimeout(ctx, wait)
			defer cancel()
		}
		if _, err := s.waitExit(wctx, c); err == nil {
			return s.cleanupAfterExit(ctx, c)
		}
	}
	rc.Kill(unix.SIGKILL, true)
	rc.Resume()
	if _, err := s.waitExit(ctx, c); err != nil {
		return nil, err
	}
	return s.cleanupAfterExit(ctx, c)
}

func (s *Store) cleanupAfterExit(ctx context.Context, c *containers.Container) (*containers.Container, error) {
	nc, err := s.cleanup(ctx, c)
	if err != nil {
		return nil, err
	}
	s.containerEvent(ctx, c, "stop")
	if nc == nil {
		return c, nil // removed (--rm)
	}
	return nc, nil
}

// waitExit waits until c's monitor recorded its exit (or died), and
// returns the exit code.
func (s *Store) waitExit(ctx context.Context, c *containers.Container) (int, error) {
	run := s.runDir(c.ID)
	delay := 5 * time.Millisecond
	for {
		if code, _, ok, _ := monitor.ReadExit(run); ok {
			return code, nil
		}
		if !monitorAlive(c) {
			return -1, nil
		}
		if conn, err := monitor.Attach(run); err == nil {
			stop := context.AfterFunc(ctx, func() { conn.Close() })
			code, _ := conn.Stream(io.Discard, io.Discard)
			stop()
			conn.Close()
			if code >= 0 {
				return code, nil
			}
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, 100*time.Millisecond)
	}
}

// WaitContainer waits until the container ref is not running and returns
// its exit code (docker's wait; "not-running" condition).
func (s *Store) WaitContainer(ctx context.Context, ref string) (int, error) {
	c, err := s.Container(ctx, ref)
	if err != nil {
		return -1, err
	}
	return s.wait(ctx, c)
}

// WaitStarted is WaitContainer for the container whose record c
// StartContainer returned to this process: it does not look c up first.
func (s *Store) WaitStarted(ctx context.Context, c *containers.Container) (int, error) {
	return s.wait(ctx, c)
}

func (s *Store) wait(ctx context.Context, c *containers.Container) (int, error) {
	if c.State.Status == containers.Running || c.State.Status == containers.Paused {
		code, err := s.waitExit(ctx, c)
		if err != nil {
			return -1, err
		}
		nc, err := s.cleanup(ctx, c)
		if err != nil {
			return -1, err
		}
		if nc == nil {
			// Removed by --rm: the exit file is gone with it; the code
			// was read before (-1: the monitor died without one).
			return code, nil
		}
		c = nc
	}
	return c.State.ExitCode, nil
}

// RemoveOptions are the options of RemoveContainer.
type RemoveOptions struct {
	Force   bool // kill a running container first
	Volumes bool // also remove its anonymous volumes
}

// RemoveContainer removes the container ref: its rootfs, directories,
// record and (with Volumes) anonymous volumes. A running container is
// refused unless Force.
func (s *Store) RemoveContainer(ctx context.Context, ref string, opts RemoveOptions) error {
	c, err := s.Container(ctx, ref)
	if err != nil {
		return err
	}
	s.dropEarly(c.ID)
	if c.State.Status == containers.Running || c.State.Status == containers.Paused || c.State.Status == containers.Restarting {
		if !opts.Force {
			return fmt.Errorf("cannot remove container \"/%s\": container is %s: stop the container before removing or force remove: %w", c.Name, c.State.Status, ErrConflict)
		}
		if c, err = s.markManuallyStopped(ctx, c.ID); err != nil {
			return err
		}
		if rc := s.runtime().load(c.ID); rc != nil {
			rc.Kill(unix.SIGKILL, true)
			rc.Resume()
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		s.waitExit(wctx, c)
		cancel()
		if _, err := s.cleanup(ctx, c); err != nil {
			return err
		}
	}
	unlock, err := s.lockContainer(c.ID)
	if errors.Is(err, os.ErrNotExist) {
		unlock, err = func() {}, nil
	}
	if err != nil {
		return err
	}
	defer unlock()
	if cur, err := s.db.GetContainer(ctx, c.ID); err != nil {
		if errors.Is(err, metadata.ErrNotFound) {
			return nil // removed meanwhile (--rm)
		}
		return err
	} else if cur.State.Status == containers.Running {
		return fmt.Errorf("cannot remove container \"/%s\": it was started again meanwhile: %w", c.Name, ErrConflict)
	}
	if err := s.clearLeftovers(ctx, c); err != nil {
		return err
	}
	s.db.UpdateContainer(ctx, c.ID, func(rec *containers.Container) error {
		rec.State.Status = containers.Removing
		return nil
	})
	return s.destroy(ctx, c, opts.Volumes)
}

// PauseContainer freezes every process of the container.
func (s *Store) PauseContainer(ctx context.Context, ref string) error {
	return s.setPaused(ctx, ref, true)
}

// UnpauseContainer thaws a paused container.
func (s *Store) UnpauseContainer(ctx context.Context, ref string) error {
	return s.setPaused(ctx, ref, false)
}

func (s *Store) setPaused(ctx context.Context, ref string, pause bool) error {
	c, err := s.Container(ctx, ref)
	if err != nil {
		return err
	}
	want, from := containers.Paused, containers.Running
	if !pause {
		want, from = containers.Running, containers.Paused
	}
	if c.State.Status != from {
		if pause && c.State.Status == containers.Paused {
			return fmt.Errorf("container %s is already paused: %w", c.ID, ErrConflict)
		}
		if !pause && c.State.Status == containers.Running {
			return fmt.Errorf("container %s is not paused: %w", c.ID, ErrConflict)
		}
		return fmt.Errorf("container %s is not running: %w", c.ID, ErrConflict)
	}
	rc := s.runtime().load(c.ID)
	if rc == nil {
		return fmt.Errorf("container %s is not running: %w", c.ID, ErrConflict)
	}
	if pause {
		err = rc.Pause()
	} else {
		err = rc.Resume()
	}
	if err != nil {
		return fmt.Errorf("container %s: %w", c.ID, err)
	}
	_, err = s.db.UpdateContainer(ctx, c.ID, func(rec *containers.Container) error {
		rec.State.Status = want
		return nil
	})
	s.containerEvent(ctx, c, map[bool]string{true: "pause", false: "unpause"}[pause])
	return err
}

// ParseSignal parses a signal as docker does: a name with or without
// SIG ("TERM", "SIGKILL"), or a number.
func ParseSignal(s string) (unix.Signal, error) {
	if s == "" {
		return unix.SIGTERM, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal: %s", s)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	if strings.HasPrefix(name, "SIGRTMIN+") || strings.HasPrefix(name, "SIGRTMAX-") {
		n, err := strconv.Atoi(name[9:])
		if err == nil {
			if name[6] == 'I' && 34+n <= 64 {
				return unix.Signal(34 + n), nil
			}
			if name[6] == 'A' && 64-n >= 34 {
				return unix.Signal(64 - n), nil
			}
		}
	}
	return 0, fmt.Errorf("invalid signal: %s", s)
}

func addrStrings(as []netip.Addr) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}
