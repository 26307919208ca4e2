package caps

import (
	"fmt"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// capSet is one parsed capability set: its bit mask and, for error
// messages, which config entry asked for which capability.
type capSet struct {
	bits    uint64
	entries []entry
}

type entry struct {
	field  string // "process.capabilities.ambient[1]"
	capNum int
}

func (s capSet) has(capNum int) bool { return s.bits&(1<<capNum) != 0 }

// sets is a parsed process.capabilities.
type sets struct {
	bounding, effective, inheritable, permitted, ambient capSet
}

// parse resolves the names of c. Capabilities above last, the kernel's
// last one, are left out. A nil c gives empty sets.
func parse(c *specs.LinuxCapabilities, last int) (*sets, error) {
	s := &sets{}
	if c == nil {
		return s, nil
	}
	for _, l := range []struct {
		field string
		names []string
		set   *capSet
	}{
		{"bounding", c.Bounding, &s.bounding},
		{"effective", c.Effective, &s.effective},
		{"inheritable", c.Inheritable, &s.inheritable},
		{"permitted", c.Permitted, &s.permitted},
		{"ambient", c.Ambient, &s.ambient},
	} {
		for i, n := range l.names {
			field := fmt.Sprintf("process.capabilities.%s[%d]", l.field, i)
			capNum, ok := known[n]
			if !ok {
				return nil, fmt.Errorf("%s: unknown capability %q", field, n)
			}
			if capNum > last {
				continue // newer than the running kernel
			}
			l.set.bits |= 1 << capNum
			l.set.entries = append(l.set.entries, entry{field: field, capNum: capNum})
		}
	}
	for _, e := range s.effective.entries {
		if !s.permitted.has(e.capNum) {
			return nil, fmt.Errorf("%s: %s is not in process.capabilities.permitted", e.field, name(e.capNum))
		}
	}
	// The kernel raises an ambient capability only when it is permitted
	// and inheritable too. runc's own default config lists ambient
	// capabilities that are not inheritable, and runc skips them: so does
	// berth, so that such configs run unchanged.
	var ambient []entry
	for _, e := range s.ambient.entries {
		if s.permitted.has(e.capNum) && s.inheritable.has(e.capNum) {
			ambient = append(ambient, e)
		} else {
			s.ambient.bits &^= 1 << e.capNum
		}
	}
	s.ambient.entries = ambient
	return s, nil
}
