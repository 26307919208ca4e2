package container

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func devRule(typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
	r := specs.LinuxDeviceCgroup{Allow: true, Type: typ, Access: access}
	if major >= 0 {
		r.Major = &major
	}
	if minor >= 0 {
		r.Minor = &minor
	}
	return r
}

// defaultDeviceRules are allowed after the spec's own device cgroup rules,
// as runc does: the default device set the runtime creates, the pty
// devices, and mknod of anything (a node is useless without read or write
// access).
var defaultDeviceRules = []specs.LinuxDeviceCgroup{
	devRule("c", -1, -1, "m"), devRule("b", -1, -1, "m"),
	devRule("c", 1, 3, "rwm"),    // null
	devRule("c", 1, 5, "rwm"),    // zero
	devRule("c", 1, 7, "rwm"),    // full
	devRule("c", 1, 8, "rwm"),    // random
	devRule("c", 1, 9, "rwm"),    // urandom
	devRule("c", 5, 0, "rwm"),    // tty
	devRule("c", 5, 1, "rwm"),    // console
	devRule("c", 5, 2, "rwm"),    // ptmx
	devRule("c", 136, -1, "rwm"), // pts/*
}

// cgroupResources returns the resources to apply at create: the spec's,
// with the default devices and the spec's linux.devices allowed.
func cgroupResources(l *specs.Linux) *specs.LinuxResources {
	var r specs.LinuxResources
	if l.Resources != nil {
		r = *l.Resources
	}
	rules := append([]specs.LinuxDeviceCgroup{}, r.Devices...)
	rules = append(rules, defaultDeviceRules...)
	for _, d := range l.Devices {
		if d.Type == "p" {
			continue
		}
		typ := d.Type
		if typ == "u" {
			typ = "c"
		}
		rules = append(rules, devRule(typ, d.Major, d.Minor, "rwm"))
	}
	r.Devices = rules
	return &r
}
