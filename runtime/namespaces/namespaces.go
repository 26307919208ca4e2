// Package namespaces maps the OCI namespace types to the kernel's clone
// flags and /proc/PID/ns names.
package namespaces

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

type info struct {
	flag int
	proc string // name under /proc/PID/ns
}

var table = map[specs.LinuxNamespaceType]info{
	specs.PIDNamespace:     {unix.CLONE_NEWPID, "pid"},
	specs.NetworkNamespace: {unix.CLONE_NEWNET, "net"},
	specs.MountNamespace:   {unix.CLONE_NEWNS, "mnt"},
	specs.IPCNamespace:     {unix.CLONE_NEWIPC, "ipc"},
	specs.UTSNamespace:     {unix.CLONE_NEWUTS, "uts"},
	specs.UserNamespace:    {unix.CLONE_NEWUSER, "user"},
	specs.CgroupNamespace:  {unix.CLONE_NEWCGROUP, "cgroup"},
	specs.TimeNamespace:    {unix.CLONE_NEWTIME, "time"},
}

// All lists every namespace type, the user namespace first.
var All = []specs.LinuxNamespaceType{
	specs.UserNamespace, specs.IPCNamespace, specs.UTSNamespace, specs.NetworkNamespace,
	specs.PIDNamespace, specs.CgroupNamespace, specs.TimeNamespace, specs.MountNamespace,
}

// CloneFlag returns the CLONE_NEW* flag for t.
func CloneFlag(t specs.LinuxNamespaceType) (int, error) {
	i, ok := table[t]
	if !ok {
		return 0, fmt.Errorf("unknown namespace type %q", t)
	}
	return i.flag, nil
}

// ProcName returns t's name under /proc/PID/ns ("net" for network).
func ProcName(t specs.LinuxNamespaceType) string { return table[t].proc }

// Has reports whether the spec asks for a namespace of type t (new or joined).
func Has(l *specs.Linux, t specs.LinuxNamespaceType) bool {
	if l == nil {
		return false
	}
	for _, ns := range l.Namespaces {
		if ns.Type == t {
			return true
		}
	}
	return false
}

// Path returns the namespace of type t in the spec: its path ("" for a new
// one) and whether the spec has it at all.
func Path(l *specs.Linux, t specs.LinuxNamespaceType) (string, bool) {
	if l == nil {
		return "", false
	}
	for _, ns := range l.Namespaces {
		if ns.Type == t {
			return ns.Path, true
		}
	}
	return "", false
}
