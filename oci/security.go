package oci

import (
	"fmt"
	"os"
	"strings"
)

// securityOpts is what berth makes of HostConfig.SecurityOpt.
type securityOpts struct {
	noNewPrivileges   bool
	seccompUnconfined bool
	seccompBuiltin    bool   // seccomp=builtin: the default even when privileged
	seccompProfile    []byte // explicit profile (JSON), nil for the default
	seccompSource     string // where the profile came from, for errors
	unmaskAll         bool
	unmask            []string
	mask              []string
}

// parseSecurityOpts reads docker's --security-opt values, "key=value" or
// "key:value": no-new-privileges[=bool],
// seccomp=unconfined|builtin|<file>|<JSON>,
// systempaths=unconfined, unmask=ALL|path:path..., mask=path:path...;
// label and apparmor options are accepted and ignored (berth has neither
// SELinux nor AppArmor support). Anything else is an error naming it.
func parseSecurityOpts(opts []string) (securityOpts, error) {
	var so securityOpts
	for _, opt := range opts {
		key, val, ok := strings.Cut(opt, "=")
		if !ok {
			key, val, ok = strings.Cut(opt, ":")
		}
		switch key {
		case "no-new-privileges":
			switch {
			case !ok || val == "true":
				so.noNewPrivileges = true
			case val == "false":
				so.noNewPrivileges = false
			default:
				return so, fmt.Errorf("security-opt %q: no-new-privileges takes true or false", opt)
			}
		case "seccomp":
			if !ok || val == "" {
				return so, fmt.Errorf("security-opt %q: seccomp needs unconfined, a profile file or a JSON profile", opt)
			}
			so.seccompUnconfined, so.seccompBuiltin, so.seccompProfile = false, false, nil
			switch val {
			case "unconfined":
				so.seccompUnconfined = true
				continue
			case "builtin":
				so.seccompBuiltin = true
				continue
			}
			if strings.HasPrefix(strings.TrimSpace(val), "{") {
				so.seccompProfile, so.seccompSource = []byte(val), "the JSON profile of --security-opt seccomp"
				continue
			}
			b, err := os.ReadFile(val)
			if err != nil {
				return so, fmt.Errorf("security-opt seccomp: read profile: %w", err)
			}
			so.seccompProfile, so.seccompSource = b, val
		case "systempaths":
			if val != "unconfined" {
				return so, fmt.Errorf("security-opt %q: systempaths takes only unconfined", opt)
			}
			so.unmaskAll = true
		case "unmask":
			if val == "ALL" {
				so.unmaskAll = true
				continue
			}
			for p := range strings.SplitSeq(val, ":") {
				if !strings.HasPrefix(p, "/") {
					return so, fmt.Errorf("security-opt %q: %q is not an absolute path", opt, p)
				}
				so.unmask = append(so.unmask, p)
			}
		case "mask":
			for p := range strings.SplitSeq(val, ":") {
				if !strings.HasPrefix(p, "/") {
					return so, fmt.Errorf("security-opt %q: %q is not an absolute path", opt, p)
				}
				so.mask = append(so.mask, p)
			}
		case "label", "apparmor":
			// Accepted for docker compatibility; berth applies neither.
		default:
			return so, fmt.Errorf("unknown security-opt %q", opt)
		}
	}
	return so, nil
}
