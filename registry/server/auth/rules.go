package auth

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/berth-project/berth/registry/server"
)

// Anonymous is the user name access rules give to requests without
// credentials.
const Anonymous = "anonymous"

// knownActions are the actions access rules may grant.
var knownActions = []string{"pull", "push", "delete", "*"}

// rules are the access rules of a configuration.
type rules struct {
	list []server.AccessRule
	// open: no rules, so authenticated users may do everything.
	open bool
}

func newRules(list []server.AccessRule) (*rules, error) {
	for i, r := range list {
		if r.Repository == "" {
			return nil, fmt.Errorf("access rule %d: no repository pattern", i+1)
		}
		if _, err := path.Match(r.Repository, ""); err != nil {
			return nil, fmt.Errorf("access rule %d: repository pattern %q: %w", i+1, r.Repository, err)
		}
		if len(r.Users) == 0 {
			return nil, fmt.Errorf("access rule %d (%s): no users", i+1, r.Repository)
		}
		if len(r.Actions) == 0 {
			return nil, fmt.Errorf("access rule %d (%s): no actions", i+1, r.Repository)
		}
		for _, a := range r.Actions {
			if !slices.Contains(knownActions, a) {
				return nil, fmt.Errorf("access rule %d (%s): unknown action %q (pull, push, delete or *)", i+1, r.Repository, a)
			}
		}
	}
	return &rules{list: list, open: len(list) == 0}, nil
}

// matches reports whether a repository name matches a rule's pattern:
// "*" matches every name, other patterns as path.Match says (a "*" in
// them does not cross a "/").
func matches(pattern, name string) bool {
	if pattern == "*" {
		return true
	}
	ok, _ := path.Match(pattern, name)
	return ok
}

// applies reports whether rule r is for user ("" for anonymous).
func (r *rules) applies(rule server.AccessRule, user string) bool {
	for _, u := range rule.Users {
		switch {
		case u == Anonymous:
			return true // what anonymous may do, everyone may
		case u == "*" && user != "":
			return true
		case u == user && user != "":
			return true
		}
	}
	return false
}

// grant returns the actions of asked that user ("" for anonymous) may
// perform, in the order asked; nil when none.
func (r *rules) grant(user string, asked server.Access) []string {
	var allowed []string // what the rules allow on the resource
	all := false
	switch asked.Type {
	case "repository":
		if r.open {
			all = user != ""
			break
		}
		for _, rule := range r.list {
			if matches(rule.Repository, asked.Name) && r.applies(rule, user) {
				allowed = append(allowed, rule.Actions...)
			}
		}
		all = slices.Contains(allowed, "*")
	case "registry":
		// The catalog lists every repository: it is for those who
		// may pull every repository.
		if asked.Name != "catalog" {
			return nil
		}
		if r.open {
			all = user != ""
			break
		}
		for _, rule := range r.list {
			if rule.Repository == "*" && r.applies(rule, user) &&
				(slices.Contains(rule.Actions, "pull") || slices.Contains(rule.Actions, "*")) {
				all = true
			}
		}
	default:
		return nil
	}
	var out []string
	for _, a := range asked.Actions {
		if (all || slices.Contains(allowed, a)) && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

// allows reports whether user ("" for anonymous) may perform every
// action in access.
func (r *rules) allows(user string, access []server.Access) bool {
	for _, a := range access {
		if len(r.grant(user, a)) != len(uniq(a.Actions)) {
			return false
		}
	}
	return true
}

func uniq(s []string) []string {
	var out []string
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// parseScope parses one scope of docker's token specification,
// type[(class)]:name:actions, where the name may itself contain colons
// (a registry host's port).
func parseScope(s string) (server.Access, error) {
	i := strings.IndexByte(s, ':')
	j := strings.LastIndexByte(s, ':')
	if i <= 0 || j == i || j == len(s)-1 {
		return server.Access{}, fmt.Errorf("bad scope %q: not type:name:actions", s)
	}
	typ, name, actions := s[:i], s[i+1:j], s[j+1:]
	if k := strings.IndexByte(typ, '('); k > 0 && strings.HasSuffix(typ, ")") {
		typ = typ[:k] // a resource class: repository(plugin)
	}
	if name == "" {
		return server.Access{}, fmt.Errorf("bad scope %q: no name", s)
	}
	a := server.Access{Type: typ, Name: name}
	for _, act := range strings.Split(actions, ",") {
		if act != "" && !slices.Contains(a.Actions, act) {
			a.Actions = append(a.Actions, act)
		}
	}
	return a, nil
}

// scopeString is access as a scope of docker's token specification.
func scopeString(a server.Access) string {
	return a.Type + ":" + a.Name + ":" + strings.Join(a.Actions, ",")
}
