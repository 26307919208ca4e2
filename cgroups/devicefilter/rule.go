// Package devicefilter turns OCI linux.resources.devices rules into a
// cgroup v2 BPF_PROG_TYPE_CGROUP_DEVICE program and attaches it to a
// cgroup, replacing the program attached before. It also parses and
// formats the rules for the cgroup v1 devices controller.
package devicefilter

import (
	"fmt"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Any is the Major or Minor of a Rule that matches every number.
const Any = -1

// Rule is a validated device cgroup rule.
type Rule struct {
	Allow bool
	// Type is 'a' (all devices), 'b' (block) or 'c' (character).
	Type byte
	// Major and Minor are device numbers, or Any.
	Major, Minor int64
	// Access is a non-empty subset of "rwm" in that order.
	Access string
}

// ParseRule validates an OCI device rule and fills its defaults: an empty
// type means all devices, a missing or -1 number any number, an empty
// access "rwm".
func ParseRule(d specs.LinuxDeviceCgroup) (Rule, error) {
	r := Rule{Allow: d.Allow, Major: Any, Minor: Any}
	switch d.Type {
	case "", "a":
		r.Type = 'a'
	case "b", "c":
		r.Type = d.Type[0]
	default:
		return Rule{}, fmt.Errorf("invalid device type %q (want a, b or c)", d.Type)
	}
	for _, n := range []struct {
		name string
		p    *int64
		dst  *int64
	}{{"major", d.Major, &r.Major}, {"minor", d.Minor, &r.Minor}} {
		if n.p == nil || *n.p == Any {
			continue
		}
		if *n.p < 0 || *n.p > 0xffffffff {
			return Rule{}, fmt.Errorf("invalid device %s number %d", n.name, *n.p)
		}
		*n.dst = *n.p
	}
	access := d.Access
	if access == "" {
		access = "rwm"
	}
	var seen [3]bool
	for _, c := range access {
		i := strings.IndexRune("rwm", c)
		if i < 0 || seen[i] {
			return Rule{}, fmt.Errorf("invalid device access %q (want a subset of rwm)", d.Access)
		}
		seen[i] = true
	}
	for i, c := range "rwm" {
		if seen[i] {
			r.Access += string(c)
		}
	}
	return r, nil
}

// V1String formats the rule for devices.allow or devices.deny, e.g.
// "c 1:3 rwm" or "a *:* rwm".
func (r Rule) V1String() string {
	num := func(n int64) string {
		if n == Any {
			return "*"
		}
		return strconv.FormatInt(n, 10)
	}
	return fmt.Sprintf("%c %s:%s %s", r.Type, num(r.Major), num(r.Minor), r.Access)
}
