package hosts

import "strings"

// Qualify returns the fully qualified candidates for name, in the order to
// try them. A name whose first component is a registry (it contains "." or
// ":", or is "localhost") is returned alone. Otherwise name is prefixed by
// each of UnqualifiedSearch, docker.io alone when that list is empty; on
// docker.io a one-component name lives under library/.
func (c *Config) Qualify(name string) []string {
	if HasRegistry(name) {
		return []string{name}
	}
	search := c.UnqualifiedSearch
	if len(search) == 0 {
		search = []string{dockerHubDomain}
	}
	out := make([]string, 0, len(search))
	for _, reg := range search {
		if reg == dockerHubDomain && !strings.Contains(name, "/") {
			out = append(out, reg+"/library/"+name)
			continue
		}
		out = append(out, reg+"/"+name)
	}
	return out
}

// HasRegistry reports whether name starts with a registry, using docker's
// rule: the name has a "/" and the component before it contains "." or
// ":" or is "localhost".
func HasRegistry(name string) bool {
	first, _, ok := strings.Cut(name, "/")
	if !ok {
		return false
	}
	return strings.ContainsAny(first, ".:") || first == "localhost"
}
