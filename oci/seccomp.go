package oci

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// defaultSeccomp is docker's default profile, as data; see
// seccomp/default.json for the format.
//
//go:embed seccomp/default.json
var defaultSeccomp []byte

// seccompProfile is a seccomp profile in the OCI linux.seccomp form with
// docker's extensions: archMap (architectures by native architecture)
// and per-rule includes/excludes conditions.
type seccompProfile struct {
	Comment          string                   `json:"comment,omitempty"`
	DefaultAction    specs.LinuxSeccompAction `json:"defaultAction"`
	DefaultErrnoRet  *uint                    `json:"defaultErrnoRet,omitempty"`
	Architectures    []specs.Arch             `json:"architectures,omitempty"`
	ArchMap          []seccompArchMap         `json:"archMap,omitempty"`
	Flags            []specs.LinuxSeccompFlag `json:"flags,omitempty"`
	ListenerPath     string                   `json:"listenerPath,omitempty"`
	ListenerMetadata string                   `json:"listenerMetadata,omitempty"`
	Syscalls         []seccompRule            `json:"syscalls,omitempty"`
}

type seccompArchMap struct {
	Arch    specs.Arch   `json:"architecture"`
	SubArch []specs.Arch `json:"subArchitectures"`
}

type seccompRule struct {
	specs.LinuxSyscall
	Comment  string         `json:"comment,omitempty"`
	Name     string         `json:"name,omitempty"` // docker's old single-name form
	Includes *seccompFilter `json:"includes,omitempty"`
	Excludes *seccompFilter `json:"excludes,omitempty"`
}

// seccompFilter is a rule's condition: all of Caps held, native GOARCH
// among Arches, kernel at least MinKernel ("major.minor").
type seccompFilter struct {
	Caps      []string `json:"caps,omitempty"`
	Arches    []string `json:"arches,omitempty"`
	MinKernel string   `json:"minKernel,omitempty"`
}

// nativeSeccompArch maps GOARCH to libseccomp's architecture name.
var nativeSeccompArch = map[string]specs.Arch{
	"amd64":    specs.ArchX86_64,
	"386":      specs.ArchX86,
	"arm64":    specs.ArchAARCH64,
	"arm":      specs.ArchARM,
	"ppc64le":  specs.ArchPPC64LE,
	"s390x":    specs.ArchS390X,
	"riscv64":  specs.ArchRISCV64,
	"loong64":  specs.ArchLOONGARCH64,
	"mips64le": specs.ArchMIPSEL64,
}

// DefaultSeccomp returns docker's default profile for a container with
// the capability set caps, on this host's architecture and kernel.
//
// The profile is decoded once per process (about 1 ms of decoding, on
// every container's create otherwise) and resolved anew for each call;
// the result shares nothing with it.
func DefaultSeccomp(caps []string) (*specs.LinuxSeccomp, error) {
	p, err := defaultProfile()
	if err == nil {
		var s *specs.LinuxSeccomp
		if s, err = p.resolve(caps); err == nil {
			return s, nil
		}
	}
	return nil, fmt.Errorf("berth's default seccomp profile: %w", err)
}

// defaultProfile is defaultSeccomp decoded, once.
var defaultProfile = sync.OnceValues(func() (*seccompProfile, error) { return parseSeccomp(defaultSeccomp) })

// seccompFromJSON parses a profile, in the OCI linux.seccomp form or in
// docker's profile form, and resolves its conditions for caps, this host's
// architecture and its kernel.
func seccompFromJSON(b []byte, caps []string) (*specs.LinuxSeccomp, error) {
	p, err := parseSeccomp(b)
	if err != nil {
		return nil, err
	}
	return p.resolve(caps)
}

// parseSeccomp decodes a profile, in the OCI linux.seccomp form or in
// docker's profile form.
func parseSeccomp(b []byte) (*seccompProfile, error) {
	var p seccompProfile
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("decode seccomp profile (want the OCI linux.seccomp form or docker's profile form): %w", err)
	}
	if p.DefaultAction == "" {
		return nil, fmt.Errorf("seccomp profile has no defaultAction")
	}
	return &p, nil
}

// resolve is the profile's linux.seccomp for caps, this host's
// architecture and its kernel. It leaves p as it was, and what it returns
// shares no memory with p.
func (p *seccompProfile) resolve(caps []string) (*specs.LinuxSeccomp, error) {
	kernel, err := kernelVersion()
	if err != nil {
		return nil, err
	}
	s := &specs.LinuxSeccomp{
		DefaultAction:    p.DefaultAction,
		Architectures:    slices.Clone(p.Architectures),
		Flags:            slices.Clone(p.Flags),
		ListenerPath:     p.ListenerPath,
		ListenerMetadata: p.ListenerMetadata,
	}
	if p.DefaultErrnoRet != nil {
		ret := *p.DefaultErrnoRet
		s.DefaultErrnoRet = &ret
	}
	if len(p.ArchMap) > 0 {
		if len(p.Architectures) > 0 {
			return nil, fmt.Errorf("seccomp profile has both architectures and archMap")
		}
		native := nativeSeccompArch[runtime.GOARCH]
		for _, m := range p.ArchMap {
			if m.Arch == native {
				s.Architectures = append([]specs.Arch{m.Arch}, m.SubArch...)
			}
		}
	}
	for i, r := range p.Syscalls {
		if r.Name != "" {
			if len(r.Names) > 0 {
				return nil, fmt.Errorf("seccomp profile syscalls[%d]: both name and names", i)
			}
			r.Names = []string{r.Name}
		}
		if len(r.Names) == 0 {
			return nil, fmt.Errorf("seccomp profile syscalls[%d]: no syscall names", i)
		}
		ok, err := r.applies(caps, kernel)
		if err != nil {
			return nil, fmt.Errorf("seccomp profile syscalls[%d]: %w", i, err)
		}
		if ok {
			sc := r.LinuxSyscall
			sc.Names, sc.Args = slices.Clone(sc.Names), slices.Clone(sc.Args)
			if sc.ErrnoRet != nil {
				ret := *sc.ErrnoRet
				sc.ErrnoRet = &ret
			}
			s.Syscalls = append(s.Syscalls, sc)
		}
	}
	return s, nil
}

func (r *seccompRule) applies(caps []string, kernel [2]int) (bool, error) {
	if in := r.Includes; in != nil {
		for _, c := range in.Caps {
			if !slices.Contains(caps, normalizeCap(c)) {
				return false, nil
			}
		}
		if len(in.Arches) > 0 && !slices.Contains(in.Arches, runtime.GOARCH) {
			return false, nil
		}
		if in.MinKernel != "" {
			min, err := parseKernelVersion(in.MinKernel)
			if err != nil {
				return false, fmt.Errorf("includes.minKernel: %w", err)
			}
			if kernel[0] < min[0] || (kernel[0] == min[0] && kernel[1] < min[1]) {
				return false, nil
			}
		}
	}
	if ex := r.Excludes; ex != nil {
		for _, c := range ex.Caps {
			if slices.Contains(caps, normalizeCap(c)) {
				return false, nil
			}
		}
		if slices.Contains(ex.Arches, runtime.GOARCH) {
			return false, nil
		}
		if ex.MinKernel != "" {
			return false, fmt.Errorf("excludes.minKernel is not supported")
		}
	}
	return true, nil
}

// parseKernelVersion reads "major.minor[.anything]".
func parseKernelVersion(v string) ([2]int, error) {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return [2]int{}, fmt.Errorf("bad kernel version %q, want major.minor", v)
	}
	major, err1 := strconv.Atoi(parts[0])
	minorStr := parts[1]
	if i := strings.IndexFunc(minorStr, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		minorStr = minorStr[:i]
	}
	minor, err2 := strconv.Atoi(minorStr)
	if err1 != nil || err2 != nil {
		return [2]int{}, fmt.Errorf("bad kernel version %q, want major.minor", v)
	}
	return [2]int{major, minor}, nil
}

func kernelVersion() ([2]int, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return [2]int{}, fmt.Errorf("uname: %w", err)
	}
	return parseKernelVersion(unix.ByteSliceToString(u.Release[:]))
}
