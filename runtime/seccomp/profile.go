package seccomp

import (
	"errors"
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// maxErrno is the largest errno the kernel returns for SECCOMP_RET_ERRNO
// (MAX_ERRNO in include/linux/err.h); larger values are clamped by it.
const maxErrno = 4095

// maxArgIndex is the index of a syscall's last argument.
const maxArgIndex = 5

var actions = map[specs.LinuxSeccompAction]libseccomp.ScmpAction{
	specs.ActKill:        libseccomp.ActKillThread,
	specs.ActKillThread:  libseccomp.ActKillThread,
	specs.ActKillProcess: libseccomp.ActKillProcess,
	specs.ActTrap:        libseccomp.ActTrap,
	specs.ActErrno:       libseccomp.ActErrno,
	specs.ActTrace:       libseccomp.ActTrace,
	specs.ActAllow:       libseccomp.ActAllow,
	specs.ActLog:         libseccomp.ActLog,
	specs.ActNotify:      libseccomp.ActNotify,
}

var arches = map[specs.Arch]libseccomp.ScmpArch{
	specs.ArchX86:         libseccomp.ArchX86,
	specs.ArchX86_64:      libseccomp.ArchAMD64,
	specs.ArchX32:         libseccomp.ArchX32,
	specs.ArchARM:         libseccomp.ArchARM,
	specs.ArchAARCH64:     libseccomp.ArchARM64,
	specs.ArchMIPS:        libseccomp.ArchMIPS,
	specs.ArchMIPS64:      libseccomp.ArchMIPS64,
	specs.ArchMIPS64N32:   libseccomp.ArchMIPS64N32,
	specs.ArchMIPSEL:      libseccomp.ArchMIPSEL,
	specs.ArchMIPSEL64:    libseccomp.ArchMIPSEL64,
	specs.ArchMIPSEL64N32: libseccomp.ArchMIPSEL64N32,
	specs.ArchPPC:         libseccomp.ArchPPC,
	specs.ArchPPC64:       libseccomp.ArchPPC64,
	specs.ArchPPC64LE:     libseccomp.ArchPPC64LE,
	specs.ArchS390:        libseccomp.ArchS390,
	specs.ArchS390X:       libseccomp.ArchS390X,
	specs.ArchPARISC:      libseccomp.ArchPARISC,
	specs.ArchPARISC64:    libseccomp.ArchPARISC64,
	specs.ArchRISCV64:     libseccomp.ArchRISCV64,
	specs.ArchLOONGARCH64: libseccomp.ArchLOONGARCH64,
	specs.ArchM68K:        libseccomp.ArchM68K,
	specs.ArchSH:          libseccomp.ArchSH,
	specs.ArchSHEB:        libseccomp.ArchSHEB,
}

var operators = map[specs.LinuxSeccompOperator]libseccomp.ScmpCompareOp{
	specs.OpNotEqual:     libseccomp.CompareNotEqual,
	specs.OpLessThan:     libseccomp.CompareLess,
	specs.OpLessEqual:    libseccomp.CompareLessOrEqual,
	specs.OpEqualTo:      libseccomp.CompareEqual,
	specs.OpGreaterEqual: libseccomp.CompareGreaterEqual,
	specs.OpGreaterThan:  libseccomp.CompareGreater,
	specs.OpMaskedEqual:  libseccomp.CompareMaskedEqual,
}

// flagTSYNC is accepted although specs-go has no constant for it: the
// runtime-spec lists it, and the filter is always loaded with TSYNC anyway.
const flagTSYNC specs.LinuxSeccompFlag = "SECCOMP_FILTER_FLAG_TSYNC"

// profile is a parsed and checked linux.seccomp section.
type profile struct {
	defaultAction libseccomp.ScmpAction
	arches        []archRef
	log           bool // SECCOMP_FILTER_FLAG_LOG
	specAllow     bool // SECCOMP_FILTER_FLAG_SPEC_ALLOW
	waitKill      bool // SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
	rules         []rule
	usesNotify    bool
}

type archRef struct {
	field string
	arch  libseccomp.ScmpArch
}

// rule is one linux.seccomp.syscalls[] entry.
type rule struct {
	field  string // "linux.seccomp.syscalls[i]"
	names  []nameRef
	action libseccomp.ScmpAction
	conds  []libseccomp.ScmpCondition
	// split is set when two conditions compare the same argument:
	// libseccomp refuses that within one rule, so each condition becomes
	// a rule of its own (the conditions are then OR-ed, not AND-ed).
	split bool
}

type nameRef struct {
	field string
	name  string
	// native is false when libseccomp knows the name on some of the
	// filter's architectures but cannot resolve it for the native one.
	native bool
	call   libseccomp.ScmpSyscall
}

// parse checks s field by field and resolves its names to libseccomp values.
func parse(s *specs.LinuxSeccomp) (*profile, error) {
	const base = "linux.seccomp"
	p := &profile{}

	if s.DefaultAction == "" {
		return nil, errors.New(base + ".defaultAction: missing")
	}
	if s.DefaultAction == specs.ActNotify {
		return nil, fmt.Errorf("%s.defaultAction: %s cannot be the default action: the runtime itself would block before it could pass the listener fd on", base, specs.ActNotify)
	}
	act, err := action(base+".defaultAction", s.DefaultAction, base+".defaultErrnoRet", s.DefaultErrnoRet)
	if err != nil {
		return nil, err
	}
	p.defaultAction = act

	native, err := libseccomp.GetNativeArch()
	if err != nil {
		return nil, fmt.Errorf("%s: get native architecture from libseccomp: %w", base, err)
	}
	allArches := []libseccomp.ScmpArch{native}
	for i, a := range s.Architectures {
		field := fmt.Sprintf("%s.architectures[%d]", base, i)
		arch, ok := arches[a]
		if !ok {
			return nil, fmt.Errorf("%s: unknown architecture %q", field, a)
		}
		p.arches = append(p.arches, archRef{field: field, arch: arch})
		allArches = append(allArches, arch)
	}

	for i, fl := range s.Flags {
		field := fmt.Sprintf("%s.flags[%d]", base, i)
		switch fl {
		case flagTSYNC:
			// Always on: see Load.
		case specs.LinuxSeccompFlagLog:
			p.log = true
		case specs.LinuxSeccompFlagSpecAllow:
			p.specAllow = true
		case specs.LinuxSeccompFlagWaitKillableRecv:
			if major, minor, _ := libseccomp.GetLibraryVersion(); major < 2 || major == 2 && minor < 6 {
				return nil, fmt.Errorf("%s: %s needs libseccomp 2.6.0 or newer, this runtime uses libseccomp %s", field, fl, libseccompVersion())
			}
			p.waitKill = true
		default:
			return nil, fmt.Errorf("%s: unknown flag %q", field, fl)
		}
	}

	for i, sc := range s.Syscalls {
		r, err := parseRule(fmt.Sprintf("%s.syscalls[%d]", base, i), sc, allArches)
		if err != nil {
			return nil, err
		}
		if sc.Action == specs.ActNotify {
			p.usesNotify = true
		}
		p.rules = append(p.rules, r)
	}

	if p.usesNotify && s.ListenerPath == "" {
		return nil, fmt.Errorf("%s.listenerPath: required when %s is used", base, specs.ActNotify)
	}
	if s.ListenerMetadata != "" && s.ListenerPath == "" {
		return nil, fmt.Errorf("%s.listenerMetadata: must not be set without listenerPath", base)
	}
	return p, nil
}

func parseRule(field string, sc specs.LinuxSyscall, allArches []libseccomp.ScmpArch) (rule, error) {
	r := rule{field: field}
	if len(sc.Names) == 0 {
		return r, fmt.Errorf("%s.names: no syscall names", field)
	}
	for j, name := range sc.Names {
		nf := fmt.Sprintf("%s.names[%d]", field, j)
		ref, err := resolve(nf, name, allArches)
		if err != nil {
			return r, err
		}
		r.names = append(r.names, ref)
	}

	if sc.Action == "" {
		return r, fmt.Errorf("%s.action: missing", field)
	}
	act, err := action(field+".action", sc.Action, field+".errnoRet", sc.ErrnoRet)
	if err != nil {
		return r, err
	}
	r.action = act

	seen := make(map[uint]bool)
	for k, a := range sc.Args {
		af := fmt.Sprintf("%s.args[%d]", field, k)
		if a.Index > maxArgIndex {
			return r, fmt.Errorf("%s.index: %d out of range, a syscall has arguments 0 to %d", af, a.Index, maxArgIndex)
		}
		if a.Op == "" {
			return r, fmt.Errorf("%s.op: missing", af)
		}
		op, ok := operators[a.Op]
		if !ok {
			return r, fmt.Errorf("%s.op: unknown operator %q", af, a.Op)
		}
		var cond libseccomp.ScmpCondition
		if op == libseccomp.CompareMaskedEqual {
			// value is the mask, valueTwo the value the masked
			// argument must equal.
			cond, err = libseccomp.MakeCondition(a.Index, op, a.Value, a.ValueTwo)
		} else {
			cond, err = libseccomp.MakeCondition(a.Index, op, a.Value)
		}
		if err != nil {
			return r, fmt.Errorf("%s: %w", af, err)
		}
		if seen[a.Index] {
			r.split = true
		}
		seen[a.Index] = true
		r.conds = append(r.conds, cond)
	}
	return r, nil
}

// action converts an action name, with its optional errno, to a libseccomp
// action. ERRNO and TRACE default to EPERM.
func action(field string, a specs.LinuxSeccompAction, errnoField string, errnoRet *uint) (libseccomp.ScmpAction, error) {
	act, ok := actions[a]
	if !ok {
		return libseccomp.ActInvalid, fmt.Errorf("%s: unknown action %q", field, a)
	}
	switch act {
	case libseccomp.ActErrno, libseccomp.ActTrace:
		code := uint(unix.EPERM)
		if errnoRet != nil {
			code = *errnoRet
		}
		limit := uint(0xffff)
		if act == libseccomp.ActErrno {
			limit = maxErrno
		}
		if code > limit {
			return libseccomp.ActInvalid, fmt.Errorf("%s: %d out of range 0 to %d for %s", errnoField, code, limit, a)
		}
		return act.SetReturnCode(int16(code)), nil
	default:
		if errnoRet != nil {
			return libseccomp.ActInvalid, fmt.Errorf("%s: only valid with %s or %s, not %s", errnoField, specs.ActErrno, specs.ActTrace, a)
		}
		return act, nil
	}
}

// resolve looks name up for the native architecture and, failing that, for
// the other architectures of the filter. A name no architecture knows is an
// error.
func resolve(field, name string, allArches []libseccomp.ScmpArch) (nameRef, error) {
	ref := nameRef{field: field, name: name}
	if name == "" {
		return ref, fmt.Errorf("%s: empty syscall name", field)
	}
	if call, err := libseccomp.GetSyscallFromName(name); err == nil {
		ref.native = true
		ref.call = call
		return ref, nil
	}
	for _, arch := range allArches[1:] {
		if _, err := libseccomp.GetSyscallFromNameByArch(name, arch); err == nil {
			return ref, nil
		}
	}
	// Real syscalls newer than the libseccomp berth is built with: current
	// Docker and containerd profiles list them. They are left to the
	// default action, as an older kernel without them would do.
	if newerSyscalls[name] {
		return ref, nil
	}
	return ref, fmt.Errorf("%s: unknown syscall %q (libseccomp %s knows no such syscall)", field, name, libseccompVersion())
}

// newerSyscalls are Linux system calls that libseccomp 2.5 does not know.
var newerSyscalls = map[string]bool{
	"cachestat": true, "fchmodat2": true, "map_shadow_stack": true, "futex_wake": true,
	"futex_wait": true, "futex_requeue": true, "statmount": true, "listmount": true,
	"lsm_get_self_attr": true, "lsm_set_self_attr": true, "lsm_list_modules": true,
	"mseal": true, "setxattrat": true, "getxattrat": true, "listxattrat": true,
	"removexattrat": true, "uretprobe": true, "open_tree_attr": true,
	"file_getattr": true, "file_setattr": true,
}
