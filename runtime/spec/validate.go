package spec

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/runtime/namespaces"
)

// Validate checks what can be checked without touching the system. The
// packages that apply seccomp and capabilities validate their own parts
// (see runtime/container).
func Validate(s *specs.Spec) error {
	if !semver().MatchString(s.Version) {
		return fmt.Errorf("ociVersion: %q is not a SemVer version", s.Version)
	}
	if s.Root == nil || s.Root.Path == "" {
		return fmt.Errorf("root.path: missing")
	}
	if fi, err := os.Stat(s.Root.Path); err != nil {
		return fmt.Errorf("root.path: %w", err)
	} else if !fi.IsDir() {
		return fmt.Errorf("root.path: %s is not a directory", s.Root.Path)
	}
	if s.Process == nil {
		return fmt.Errorf("process: missing")
	}
	if err := ValidateProcess(s.Process); err != nil {
		return err
	}
	for i, m := range s.Mounts {
		if !filepath.IsAbs(m.Destination) && !strings.HasPrefix(m.Destination, "/") {
			return fmt.Errorf("mounts[%d]: destination %q is not absolute", i, m.Destination)
		}
	}
	if s.Linux == nil {
		return fmt.Errorf("linux: missing (berth runs Linux containers only)")
	}
	return validateLinux(s)
}

// ValidateProcess checks a process, as given in config.json or to exec.
func ValidateProcess(p *specs.Process) error {
	if len(p.Args) == 0 && p.CommandLine == "" {
		return fmt.Errorf("process.args: empty")
	}
	if p.Cwd == "" || !filepath.IsAbs(p.Cwd) {
		return fmt.Errorf("process.cwd: %q is not an absolute path", p.Cwd)
	}
	for i, e := range p.Env {
		if !strings.Contains(e, "=") {
			return fmt.Errorf("process.env[%d]: %q is not KEY=VALUE", i, e)
		}
	}
	seen := map[string]bool{}
	for i, r := range p.Rlimits {
		if _, ok := Rlimits[r.Type]; !ok {
			return fmt.Errorf("process.rlimits[%d]: unknown type %q", i, r.Type)
		}
		if seen[r.Type] {
			return fmt.Errorf("process.rlimits[%d]: %s given twice", i, r.Type)
		}
		seen[r.Type] = true
		if r.Soft > r.Hard {
			return fmt.Errorf("process.rlimits[%d]: %s soft limit %d exceeds hard limit %d", i, r.Type, r.Soft, r.Hard)
		}
	}
	if p.OOMScoreAdj != nil && (*p.OOMScoreAdj < -1000 || *p.OOMScoreAdj > 1000) {
		return fmt.Errorf("process.oomScoreAdj: %d is outside -1000..1000", *p.OOMScoreAdj)
	}
	if p.ConsoleSize != nil && !p.Terminal {
		return fmt.Errorf("process.consoleSize: set without process.terminal")
	}
	return nil
}

func validateLinux(s *specs.Spec) error {
	l := s.Linux
	seen := map[specs.LinuxNamespaceType]bool{}
	for i, ns := range l.Namespaces {
		if _, err := namespaces.CloneFlag(ns.Type); err != nil {
			return fmt.Errorf("linux.namespaces[%d]: %w", i, err)
		}
		if seen[ns.Type] {
			return fmt.Errorf("linux.namespaces[%d]: %s namespace given twice", i, ns.Type)
		}
		seen[ns.Type] = true
		if ns.Path != "" {
			if !filepath.IsAbs(ns.Path) {
				return fmt.Errorf("linux.namespaces[%d]: path %q is not absolute", i, ns.Path)
			}
			if _, err := os.Stat(ns.Path); err != nil {
				return fmt.Errorf("linux.namespaces[%d]: %s namespace path: %w", i, ns.Type, err)
			}
		}
	}
	newUser := seen[specs.UserNamespace]
	if (len(l.UIDMappings) > 0 || len(l.GIDMappings) > 0) && !newUser {
		return fmt.Errorf("linux.uidMappings: given without a user namespace")
	}
	for i, ns := range l.Namespaces {
		if ns.Type == specs.UserNamespace && ns.Path == "" && (len(l.UIDMappings) == 0 || len(l.GIDMappings) == 0) {
			return fmt.Errorf("linux.namespaces[%d]: a new user namespace needs linux.uidMappings and linux.gidMappings", i)
		}
	}
	if s.Hostname != "" && !seen[specs.UTSNamespace] {
		return fmt.Errorf("hostname: setting it needs a uts namespace")
	}
	if s.Domainname != "" && !seen[specs.UTSNamespace] {
		return fmt.Errorf("domainname: setting it needs a uts namespace")
	}
	if l.TimeOffsets != nil && !seen[specs.TimeNamespace] {
		return fmt.Errorf("linux.timeOffsets: given without a time namespace")
	}
	for k := range l.Sysctl {
		if err := validateSysctl(k, seen); err != nil {
			return fmt.Errorf("linux.sysctl[%q]: %w", k, err)
		}
	}
	if l.RootfsPropagation != "" {
		switch l.RootfsPropagation {
		case "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable", "runbindable":
		default:
			return fmt.Errorf("linux.rootfsPropagation: unknown value %q", l.RootfsPropagation)
		}
	}
	for i, d := range l.Devices {
		if !strings.HasPrefix(filepath.Clean(d.Path), "/dev/") {
			return fmt.Errorf("linux.devices[%d]: path %q is outside /dev", i, d.Path)
		}
		switch d.Type {
		case "c", "b", "u", "p":
		default:
			return fmt.Errorf("linux.devices[%d]: unknown type %q", i, d.Type)
		}
	}
	if l.IntelRdt != nil {
		return fmt.Errorf("linux.intelRdt: not supported by berth")
	}
	return nil
}

// validateSysctl allows only namespaced sysctls, and only when the
// container has the namespace they belong to: anything else would change
// the host.
func validateSysctl(key string, ns map[specs.LinuxNamespaceType]bool) error {
	ipc := map[string]bool{"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true,
		"kernel.sem": true, "kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true,
		"kernel.shm_rmid_forced": true}
	switch {
	case ipc[key] || strings.HasPrefix(key, "fs.mqueue."):
		if !ns[specs.IPCNamespace] {
			return fmt.Errorf("needs an ipc namespace")
		}
	case strings.HasPrefix(key, "net."):
		if !ns[specs.NetworkNamespace] {
			return fmt.Errorf("needs a network namespace")
		}
	case key == "kernel.hostname" || key == "kernel.domainname":
		return fmt.Errorf("use the hostname and domainname fields")
	case key == "kernel.ping_group_range":
		if !ns[specs.NetworkNamespace] {
			return fmt.Errorf("needs a network namespace")
		}
	default:
		return fmt.Errorf("not a namespaced sysctl: it would change the host")
	}
	return nil
}

// semver is SemVer 2.0's grammar (https://semver.org), compiled on first
// use: every berth process, container inits included, imports this package.
var semver = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)
})

// Rlimits maps the spec's names to resource numbers.
var Rlimits = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE, "RLIMIT_NICE": unix.RLIMIT_NICE,
	"RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC, "RLIMIT_RSS": unix.RLIMIT_RSS,
	"RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME, "RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING,
	"RLIMIT_STACK": unix.RLIMIT_STACK,
}
