package events

import (
	"fmt"
	"strings"

	"github.com/moby/moby/api/types/events"
)

// Filter is docker's events --filter: values of one key are alternatives,
// different keys must all match.
type Filter struct {
	by map[string][]string
}

// filterKeys are the keys docker's events accepts that berth can match.
var filterKeys = map[string]bool{"container": true, "image": true, "event": true, "type": true, "label": true, "volume": true}

// ParseFilter reads --filter arguments of the form key=value.
func ParseFilter(args []string) (*Filter, error) {
	f := &Filter{by: make(map[string][]string)}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return nil, fmt.Errorf("bad format of filter (expected name=value): %s", a)
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if !filterKeys[k] {
			return nil, fmt.Errorf("invalid filter '%s'", k)
		}
		f.by[k] = append(f.by[k], v)
	}
	return f, nil
}

// Match reports whether m passes the filter.
func (f *Filter) Match(m events.Message) bool {
	for k, vals := range f.by {
		ok := false
		for _, v := range vals {
			if f.matchOne(k, v, m) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func (f *Filter) matchOne(k, v string, m events.Message) bool {
	attr := m.Actor.Attributes
	switch k {
	case "type":
		return string(m.Type) == v
	case "event":
		// "exec_start: sh -c ..." matches exec_start.
		a := string(m.Action)
		if i := strings.Index(a, ":"); i >= 0 {
			return a == v || a[:i] == v
		}
		return a == v
	case "container":
		return m.Type == events.ContainerEventType && matchIDOrName(m.Actor.ID, attr["name"], v)
	case "volume":
		return m.Type == events.VolumeEventType && m.Actor.ID == v
	case "image":
		if m.Type == events.ImageEventType {
			return m.Actor.ID == v || attr["name"] == v || imageNameMatch(attr["name"], v)
		}
		return m.Type == events.ContainerEventType && (attr["image"] == v || imageNameMatch(attr["image"], v))
	case "label":
		lk, lv, hasValue := strings.Cut(v, "=")
		got, ok := attr[lk]
		return ok && (!hasValue || got == lv)
	}
	return false
}

func matchIDOrName(id, name, v string) bool {
	return id == v || name == v || strings.TrimPrefix(name, "/") == strings.TrimPrefix(v, "/") ||
		(len(v) >= 12 && strings.HasPrefix(id, v))
}

// imageNameMatch lets "busybox" match "busybox:latest" as docker does.
func imageNameMatch(name, v string) bool {
	return name != "" && !strings.Contains(v, ":") && name == v+":latest"
}
