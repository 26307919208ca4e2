package oci

import (
	"fmt"
	"slices"
	"strings"

	"github.com/moby/sys/capability"
)

// DefaultCapabilities is docker's default capability set.
var DefaultCapabilities = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FSETID",
	"CAP_FOWNER",
	"CAP_MKNOD",
	"CAP_NET_RAW",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETFCAP",
	"CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT",
	"CAP_KILL",
	"CAP_AUDIT_WRITE",
}

// hostCapabilities returns the names of all capabilities the running
// kernel knows (up to /proc/sys/kernel/cap_last_cap), in number order.
func hostCapabilities() ([]string, error) {
	last, err := capability.LastCap()
	if err != nil {
		return nil, fmt.Errorf("read the kernel's last capability: %w", err)
	}
	var out []string
	for _, c := range capability.ListKnown() {
		if c <= last {
			out = append(out, "CAP_"+strings.ToUpper(c.String()))
		}
	}
	return out, nil
}

// PrivilegedCapabilities returns the capabilities of the running kernel
// that berth's own bounding set holds: what --privileged and --cap-add
// ALL give, and exec --privileged. A capability outside the bounding set cannot be granted (the
// runtime's capset fails), so asking for it, as on a host without
// CAP_SYS_RESOURCE, would make every privileged container fail to start.
func PrivilegedCapabilities() ([]string, error) {
	last, err := capability.LastCap()
	if err != nil {
		return nil, fmt.Errorf("read the kernel's last capability: %w", err)
	}
	var out []string
	for _, c := range capability.ListKnown() {
		if c > last {
			continue
		}
		in, err := capability.GetBound(c)
		if err != nil {
			return nil, fmt.Errorf("read the bounding set for %s: %w", c, err)
		}
		if in {
			out = append(out, "CAP_"+strings.ToUpper(c.String()))
		}
	}
	return out, nil
}

// normalizeCap returns "CAP_X" for "x", "X", "cap_x" or "CAP_X", and
// "ALL" for any case of "all".
func normalizeCap(c string) string {
	c = strings.ToUpper(strings.TrimSpace(c))
	if c == "ALL" {
		return c
	}
	if !strings.HasPrefix(c, "CAP_") {
		c = "CAP_" + c
	}
	return c
}

// Capabilities applies docker's --cap-add and --cap-drop to the base set
// (docker's defaults, or all of the host's for a privileged container).
// "ALL" adds every capability berth itself may grant (its bounding set)
// or drops every capability of the host; names are
// case-insensitive, with or without the CAP_ prefix; a name the host's
// kernel does not know is an error naming it. As in docker: --cap-add
// ALL gives all but the dropped ones; --cap-drop ALL keeps only the
// explicit adds; otherwise an explicit add wins over a drop.
func Capabilities(base, add, drop []string) ([]string, error) {
	known, err := hostCapabilities()
	if err != nil {
		return nil, err
	}
	check := func(list []string, what string) ([]string, bool, error) {
		var out []string
		all := false
		for _, c := range list {
			n := normalizeCap(c)
			if n == "ALL" {
				all = true
				continue
			}
			if !slices.Contains(known, n) {
				return nil, false, fmt.Errorf("%s: unknown capability %q", what, c)
			}
			out = append(out, n)
		}
		return out, all, nil
	}
	adds, addAll, err := check(add, "cap-add")
	if err != nil {
		return nil, err
	}
	drops, dropAll, err := check(drop, "cap-drop")
	if err != nil {
		return nil, err
	}
	set := map[string]bool{}
	if addAll {
		grantable, err := PrivilegedCapabilities()
		if err != nil {
			return nil, err
		}
		for _, c := range grantable {
			set[c] = !slices.Contains(drops, c)
		}
	} else if !dropAll {
		for _, c := range base {
			set[normalizeCap(c)] = true
		}
		for _, c := range drops {
			if !slices.Contains(adds, c) {
				delete(set, c)
			}
		}
	}
	for _, c := range adds {
		set[c] = true
	}
	// Keep the kernel's order: stable output, easy to compare.
	var out []string
	for _, c := range known {
		if set[c] {
			out = append(out, c)
		}
	}
	return out, nil
}
