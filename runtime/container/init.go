package container

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/runtime/console"
	"github.com/berth-project/berth/runtime/hooks"
	"github.com/berth-project/berth/runtime/nsexec"
	"github.com/berth-project/berth/runtime/rootfs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// IsInit reports whether this process was started as a container init or
// exec (stage 1, after runtime/nsexec), so main must call Init.
func IsInit() bool { return os.Getenv(nsexec.EnvInitPipe) != "" }

func init() {
	// Namespaces, credentials and capabilities are per thread: init's
	// whole life happens on the thread that execs.
	if IsInit() {
		runtime.LockOSThread()
	}
}

// Init runs stage 1 of a container init or exec. It never returns: it
// execs the user's program or exits 1 after reporting the error to the
// parent.
func Init() {
	fd, err := strconv.Atoi(os.Getenv(nsexec.EnvInitPipe))
	if err != nil {
		os.Exit(1)
	}
	os.Unsetenv(nsexec.EnvInitPipe)
	os.Unsetenv("GOMAXPROCS") // see initEnv
	// encoding/json's first decode of a type builds its decoder (about
	// 0.6 ms for a config's): built here while init waits for its config
	// (a prespawned init waits), the config's decode is quick.
	go json.Unmarshal([]byte(configWarmUp), new(message))
	sock := os.NewFile(uintptr(fd), "sync")
	p := &proc{sock: sock, dec: json.NewDecoder(sock), enc: json.NewEncoder(sock), syncFd: fd}
	m, err := p.recv()
	if err == nil && m.Config == nil {
		err = fmt.Errorf("no config from the runtime")
	}
	if err == nil && m.Config.Protocol != initProtocol {
		exe, _ := os.Readlink("/proc/self/exe")
		err = fmt.Errorf("container init %s speaks init protocol %q, the runtime %q: berth and %s must come from one build (scripts/build.sh)",
			exe, initProtocol, m.Config.Protocol, InitName)
	}
	if err == nil {
		if m.Config.Exec {
			err = execInit(p, m.Config)
		} else {
			err = containerInit(p, m.Config)
		}
	}
	// After create has returned nobody reads the socket: the container's
	// stderr is where the error can still be seen.
	if p.detached || p.send(message{Type: msgError, Error: err.Error()}) != nil {
		fmt.Fprintf(os.Stderr, "berth init: %v\n", err)
	}
	os.Exit(1)
}

// configWarmUp is a config message with every part of the spec that
// initSpec passes on and init reads, empty: decoding it builds the
// decoders of all their types (the new encoding/json builds one when a
// value first has that part).
const configWarmUp = `{"type":"config","config":{"spec":{"process":{"user":{"additionalGids":[0],"umask":0},` +
	`"args":[""],"env":[""],"capabilities":{"bounding":[""]},"rlimits":[{}],"consoleSize":{}},` +
	`"root":{},"mounts":[{"options":[""],"uidMappings":[{}]}],"hooks":{"createContainer":[{"args":[""],"timeout":0}]},` +
	`"linux":{"namespaces":[{}],"uidMappings":[{}],"sysctl":{"a":""},"seccomp":{},"maskedPaths":[""],` +
	`"readonlyPaths":[""],"devices":[{"fileMode":0,"uid":0}],"personality":{},"timeOffsets":{"a":{}}},"annotations":{"a":""}},` +
	`"seccomp":{"filter":""}}}`

// containerInit prepares the container around itself and execs the
// user's program once started.
func containerInit(p *proc, c *initConfig) error {
	s := c.Spec
	unshare, placed := c.Unshare, func() error { return nil }
	if c.PlaceLater {
		// The cgroup namespace is rooted in init's cgroup: made once
		// init is in it.
		cgroupNS := unshare & unix.CLONE_NEWCGROUP
		unshare &^= cgroupNS
		placed = sync.OnceValue(func() error { return waitPlaced(p, cgroupNS) })
	}
	if unshare != 0 {
		// Now that the rootfs is mounted: the mount namespace copies it.
		// For this thread, which execs.
		if err := unix.Unshare(unshare); err != nil {
			return fmt.Errorf("create namespaces (clone flags %#x): %w", unshare, err)
		}
	}
	if !c.NoNewKeyring {
		// A fresh session keyring, so the container cannot read the
		// host's keys. Kernels without keyrings just lack this.
		unix.KeyctlJoinSessionKeyring("_ses." + c.ID)
	}
	if c.NewNetNS {
		if err := loopbackUp(); err != nil {
			return err
		}
	}
	// The exec fifo is reopened through the host's /proc, which the
	// container's root may not have.
	procFds := -1
	if c.FifoFd >= 0 {
		fd, err := unix.Open("/proc/self/fd", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open /proc/self/fd: %w", err)
		}
		procFds = fd
		defer unix.Close(fd)
	}
	rc := &rootfs.Config{Spec: s, Rootfs: s.Root.Path, NoPivot: c.NoPivot, UserNS: c.UserNS, BeforeCgroup: placed}
	if !c.NoMountNS {
		if err := rootfs.Prepare(rc); err != nil {
			return err
		}
		defer rc.Close()
	}
	// The parent runs the hooks on a container in its cgroup.
	if err := placed(); err != nil {
		return err
	}
	if err := p.send(message{Type: msgHooks}); err != nil {
		return err
	}
	if _, err := p.recv(); err != nil {
		return err
	}
	state := hookState(c, Created)
	if s.Hooks != nil {
		if err := hooks.Run("createContainer", s.Hooks.CreateContainer, state); err != nil {
			return err
		}
	}
	if c.NoMountNS {
		if err := chroot(s.Root.Path); err != nil {
			return err
		}
		if err := writeSysctls(s.Linux.Sysctl); err != nil {
			return err
		}
		if s.Process.Terminal {
			if err := setupConsole(c, false); err != nil {
				return err
			}
		}
	} else {
		if err := rootfs.Pivot(rc); err != nil {
			return err
		}
		// Before Finalize makes /proc/sys read-only.
		if err := writeSysctls(s.Linux.Sysctl); err != nil {
			return err
		}
		if s.Process.Terminal {
			if err := setupConsole(c, true); err != nil {
				return err
			}
		}
		if err := rootfs.Finalize(rc); err != nil {
			return err
		}
	}
	if s.Hostname != "" {
		if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
			return fmt.Errorf("hostname: %w", err)
		}
	}
	if s.Domainname != "" {
		if err := unix.Setdomainname([]byte(s.Domainname)); err != nil {
			return fmt.Errorf("domainname: %w", err)
		}
	}
	ps, err := prepareProcess(s.Process, s.Linux, c.Seccomp)
	if err != nil {
		return err
	}
	if err := p.send(message{Type: msgReady}); err != nil {
		return err
	}
	var fifo *os.File
	if c.FifoFd >= 0 {
		// create returns now: later errors can only go to stderr.
		p.detached = true
		var err error
		if fifo, err = waitFifo(procFds, c.FifoFd); err != nil {
			return err
		}
	} else if m, err := p.recv(); err != nil || m.Type != msgStart {
		return fmt.Errorf("waiting for start: %v", err)
	}
	if s.Hooks != nil {
		if err := hooks.Run("startContainer", s.Hooks.StartContainer, hookState(c, Running)); err != nil {
			return err
		}
	}
	if fifo != nil {
		// start reads until the fifo closes, which execve does (it is
		// close-on-exec): its poststart hooks then follow the exec.
		if _, err := fifo.Write([]byte{'0'}); err != nil {
			return fmt.Errorf("write exec fifo: %w", err)
		}
	}
	err = ps.exec(c.PreserveFds)
	runtime.KeepAlive(fifo)
	return err
}

// waitPlaced waits for the parent's word that init is in its cgroup,
// then makes the cgroup namespace (cgroupNS: its clone flag, or 0).
func waitPlaced(p *proc, cgroupNS int) error {
	m, err := p.recv()
	if err != nil {
		return fmt.Errorf("waiting to be placed in the cgroup: %w", err)
	}
	if m.Type != msgPlaced {
		return fmt.Errorf("waiting to be placed in the cgroup: unexpected message %q", m.Type)
	}
	if cgroupNS != 0 {
		if err := unix.Unshare(cgroupNS); err != nil {
			return fmt.Errorf("create the cgroup namespace: %w", err)
		}
	}
	return nil
}

// execInit runs a new process in a running container: stage 0 has
// already entered all its namespaces.
func execInit(p *proc, c *initConfig) error {
	s := c.Spec
	if s.Process.Terminal {
		if err := setupConsole(c, false); err != nil {
			return err
		}
	}
	ps, err := prepareProcess(s.Process, s.Linux, c.Seccomp)
	if err != nil {
		return err
	}
	return ps.exec(c.PreserveFds)
}

func chroot(root string) error {
	if err := unix.Chroot(root); err != nil {
		return fmt.Errorf("chroot %s: %w", root, err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chroot %s: %w", root, err)
	}
	return nil
}

func hookState(c *initConfig, status specs.ContainerState) []byte {
	data, _ := json.Marshal(specs.State{Version: specs.Version, ID: c.ID, Status: status,
		Pid: c.HostPid, Bundle: c.Bundle, Annotations: c.Spec.Annotations})
	return data
}

// waitFifo blocks until `start` opens the exec fifo for reading, and
// returns its write end.
func waitFifo(procFds, fd int) (*os.File, error) {
	wfd, err := unix.Openat(procFds, strconv.Itoa(fd), unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open exec fifo: %w", err)
	}
	unix.Close(fd)
	return os.NewFile(uintptr(wfd), "exec.fifo"), nil
}

// setupConsole makes the container's pty, makes its slave the process's
// stdio (and /dev/console for init), and sends the master to the console
// socket.
func setupConsole(c *initConfig, isInit bool) error {
	if c.ConsoleFd < 0 {
		return fmt.Errorf("process.terminal: no console socket to send the terminal to")
	}
	sock := os.NewFile(uintptr(c.ConsoleFd), "console-socket")
	defer sock.Close()
	master, slave, err := console.NewPty()
	if err != nil {
		return err
	}
	defer master.Close()
	defer slave.Close()
	if cs := c.Spec.Process.ConsoleSize; cs != nil {
		if err := console.SetSize(slave, uint16(cs.Height), uint16(cs.Width)); err != nil {
			return fmt.Errorf("process.consoleSize: %w", err)
		}
	}
	if isInit {
		if err := bindConsole(slave); err != nil {
			return err
		}
	}
	if err := console.SendFd(sock, slave.Name(), master); err != nil {
		return err
	}
	for i := 0; i < 3; i++ {
		if err := unix.Dup3(int(slave.Fd()), i, 0); err != nil {
			return fmt.Errorf("terminal as stdio: %w", err)
		}
	}
	if _, err := unix.Setsid(); err != nil {
		return fmt.Errorf("setsid: %w", err)
	}
	if err := unix.IoctlSetInt(0, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("set controlling terminal: %w", err)
	}
	return nil
}

func writeSysctls(m map[string]string) error {
	for k, v := range m {
		if err := writeSysctl(k, v); err != nil {
			return err
		}
	}
	return nil
}

func writeSysctl(key, value string) error {
	path := "/proc/sys/" + sysctlPath(key)
	if err := os.WriteFile(path, []byte(value), 0); err != nil {
		return fmt.Errorf("linux.sysctl[%q]: %w", key, err)
	}
	return nil
}

func sysctlPath(key string) string {
	b := []byte(key)
	for i := range b {
		if b[i] == '.' {
			b[i] = '/'
		} else if b[i] == '/' {
			b[i] = '.'
		}
	}
	return string(b)
}

// loopbackUp brings up lo in a new network namespace, as runc does.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bring up lo: %w", err)
	}
	return nil
}

// bindConsole makes the pty slave the container's /dev/console, as a bind
// mount over a file created (never followed, if a symlink) in /dev.
func bindConsole(slave *os.File) error {
	var st unix.Stat_t
	if err := unix.Lstat("/dev/console", &st); err != nil || st.Mode&unix.S_IFMT == unix.S_IFLNK {
		unix.Unlink("/dev/console")
		fd, err := unix.Open("/dev/console", unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_RDONLY, 0o600)
		if err != nil {
			return fmt.Errorf("create /dev/console: %w", err)
		}
		unix.Close(fd)
	}
	fd, err := unix.Open("/dev/console", unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open /dev/console: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return fmt.Errorf("/dev/console: replaced by a symlink")
	}
	src := "/proc/self/fd/" + strconv.Itoa(int(slave.Fd()))
	dst := "/proc/self/fd/" + strconv.Itoa(fd)
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind pty to /dev/console: %w", err)
	}
	return nil
}
