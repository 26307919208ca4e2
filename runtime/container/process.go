package container

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/runtime/caps"
	"github.com/berth-project/berth/runtime/seccomp"
	"github.com/berth-project/berth/runtime/spec"
)

// preparedProcess is the user's program, checked and ready to exec.
type preparedProcess struct {
	p       *specs.Process
	linux   *specs.Linux
	seccomp *seccomp.Program
	path    string // resolved executable
	env     []string
}

// prepareProcess runs inside the container's root before `start`, so a
// missing executable or a bad rlimit fails `create`, not `start`.
func prepareProcess(p *specs.Process, l *specs.Linux, sc *seccomp.Program) (*preparedProcess, error) {
	env := append([]string{}, p.Env...)
	if lookupEnv(env, "HOME") == "" {
		env = append(env, "HOME="+homeDir(int(p.User.UID)))
	}
	path, err := lookPath(p.Args[0], lookupEnv(env, "PATH"))
	if err != nil {
		return nil, err
	}
	return &preparedProcess{p: p, linux: l, seccomp: sc, path: path, env: env}, nil
}

// exec becomes the user's program: privileges are dropped in the order
// the kernel requires, every descriptor berth holds is closed, and the
// working directory is checked to be inside the container
// (CVE-2024-21626) before execve.
func (pp *preparedProcess) exec(preserveFds int) error {
	p := pp.p
	sc := pp.seccomp
	if p.NoNewPrivileges {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("process.noNewPrivileges: %w", err)
		}
	}
	if err := os.Chdir(p.Cwd); err != nil {
		return fmt.Errorf("process.cwd: %w", err)
	}
	if err := checkCwd(p.Cwd); err != nil {
		return err
	}
	// Before any filter: a profile may not allow what this needs.
	if err := closeExtraFds(3 + preserveFds); err != nil {
		return err
	}
	// Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it
	// before the capabilities go.
	if sc != nil && !p.NoNewPrivileges {
		if err := loadSeccomp(sc, pp.linux.Seccomp); err != nil {
			return err
		}
	}
	// Late, so berth itself never runs under them (RLIMIT_AS, NOFILE),
	// and before the capabilities go (raising a hard limit needs one).
	for i, r := range p.Rlimits {
		// syscall.Setrlimit, not prlimit: Go's exec restores the NOFILE
		// soft limit it saw at startup unless it was set through here.
		lim := syscall.Rlimit{Cur: r.Soft, Max: r.Hard}
		if err := syscall.Setrlimit(spec.Rlimits[r.Type], &lim); err != nil {
			return fmt.Errorf("process.rlimits[%d]: set %s to %d/%d: %w%s", i, r.Type, r.Soft, r.Hard, err, capHint(err, "raising a hard limit"))
		}
	}
	if err := caps.DropBounding(p.Capabilities); err != nil {
		return err
	}
	if err := setUser(p.User); err != nil {
		return err
	}
	if err := caps.Apply(p.Capabilities); err != nil {
		return err
	}
	if p.User.Umask != nil {
		unix.Umask(int(*p.User.Umask))
	}
	if sc != nil && p.NoNewPrivileges {
		if err := loadSeccomp(sc, pp.linux.Seccomp); err != nil {
			return err
		}
	}
	err := unix.Exec(pp.path, p.Args, pp.env)
	return fmt.Errorf("exec %s: %w", p.Args[0], err)
}

// closeExtraFds marks every descriptor from first on close-on-exec, so
// nothing berth holds (the sync socket, the runtime's own files) reaches
// the user's program.
func closeExtraFds(first int) error {
	if err := unix.CloseRange(uint(first), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return nil
	}
	// Kernels before 5.11 lack CLOSE_RANGE_CLOEXEC.
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return fmt.Errorf("close inherited files: %w", err)
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= first {
			unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
		}
	}
	return nil
}

func loadSeccomp(prog *seccomp.Program, sc *specs.LinuxSeccomp) error {
	fd, err := prog.Load()
	if err != nil {
		return fmt.Errorf("linux.seccomp: %w", err)
	}
	if fd >= 0 {
		state, _ := json.Marshal(specs.ContainerProcessState{Version: specs.Version,
			Fds: []string{specs.SeccompFdName}, Pid: os.Getpid(), Metadata: sc.ListenerMetadata})
		err := seccomp.SendListener(sc.ListenerPath, fd, state)
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("linux.seccomp.listenerPath: %w", err)
		}
	}
	return nil
}

// checkCwd makes sure the working directory is reachable from the
// container's root: a cwd that resolves through a leaked host descriptor
// (/proc/self/fd/N) would be outside it.
func checkCwd(want string) error {
	wd, err := unix.Getwd()
	if err != nil || !strings.HasPrefix(wd, "/") {
		return fmt.Errorf("process.cwd %q: resolves outside the container's root", want)
	}
	return nil
}

func setUser(u specs.User) error {
	if err := unix.Prctl(unix.PR_SET_KEEPCAPS, 1, 0, 0, 0); err != nil {
		return err
	}
	gids := make([]int, len(u.AdditionalGids))
	for i, g := range u.AdditionalGids {
		gids[i] = int(g)
	}
	// setgroups is refused in a user namespace whose setgroups is
	// "deny" (rootless): only then an empty list is not an error.
	if err := unix.Setgroups(gids); err != nil && (len(gids) > 0 || !errors.Is(err, unix.EPERM)) {
		return fmt.Errorf("process.user.additionalGids: %w", err)
	}
	// For this thread only, as setgroups above, the capabilities and the
	// seccomp filter are: init execs from it (its credentials are the
	// program's; execve ends the runtime's other threads). Go's
	// Setresuid and Setresgid change every thread of the process, which
	// stops them all for each call.
	if _, _, e := unix.RawSyscall(sysSetresgid, uintptr(u.GID), uintptr(u.GID), uintptr(u.GID)); e != 0 {
		return fmt.Errorf("process.user.gid %d: %w", u.GID, e)
	}
	if _, _, e := unix.RawSyscall(sysSetresuid, uintptr(u.UID), uintptr(u.UID), uintptr(u.UID)); e != 0 {
		return fmt.Errorf("process.user.uid %d: %w", u.UID, e)
	}
	return unix.Prctl(unix.PR_SET_KEEPCAPS, 0, 0, 0, 0)
}

func lookupEnv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}

// lookPath finds the program in the container's PATH, as execvp would.
func lookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		if err := isExecutable(name); err != nil {
			return "", fmt.Errorf("exec: %q: %w", name, err)
		}
		return name, nil
	}
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if isExecutable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH", name)
}

func isExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("is a directory")
	}
	if fi.Mode()&0o111 == 0 {
		return fmt.Errorf("permission denied")
	}
	return nil
}

// homeDir looks uid up in the container's /etc/passwd.
func homeDir(uid int) string {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return "/"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 6 && fields[2] == strconv.Itoa(uid) {
			return fields[5]
		}
	}
	return "/"
}
