package engine

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// applyChanges applies docker-style --change Dockerfile instructions to
// cfg. An unknown instruction is an error naming it.
func applyChanges(cfg *ocispec.ImageConfig, changes []string) error {
	for _, ch := range changes {
		if err := applyChange(cfg, ch); err != nil {
			return fmt.Errorf("--change %q: %w", ch, err)
		}
	}
	return nil
}

func applyChange(cfg *ocispec.ImageConfig, change string) error {
	change = strings.TrimSpace(change)
	instr, rest, _ := strings.Cut(change, " ")
	if i := strings.IndexByte(change, '\t'); i >= 0 && i < len(instr) {
		instr, rest = change[:i], change[i+1:]
	}
	rest = strings.TrimSpace(rest)
	switch strings.ToUpper(instr) {
	case "CMD":
		cmd, err := commandForm(rest)
		if err != nil {
			return err
		}
		cfg.Cmd = cmd
	case "ENTRYPOINT":
		ep, err := commandForm(rest)
		if err != nil {
			return err
		}
		cfg.Entrypoint = ep
	case "ENV":
		kvs, err := keyValues(rest)
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			cfg.Env = setEnv(cfg.Env, kv[0], kv[1])
		}
	case "LABEL":
		kvs, err := keyValues(rest)
		if err != nil {
			return err
		}
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range kvs {
			cfg.Labels[kv[0]] = kv[1]
		}
	case "WORKDIR":
		if rest == "" {
			return fmt.Errorf("WORKDIR needs a path")
		}
		if !path.IsAbs(rest) {
			rest = path.Join("/", cfg.WorkingDir, rest)
		}
		cfg.WorkingDir = rest
	case "USER":
		if rest == "" {
			return fmt.Errorf("USER needs a user")
		}
		cfg.User = rest
	case "STOPSIGNAL":
		if rest == "" {
			return fmt.Errorf("STOPSIGNAL needs a signal")
		}
		cfg.StopSignal = rest
	case "EXPOSE":
		ports := strings.Fields(rest)
		if len(ports) == 0 {
			return fmt.Errorf("EXPOSE needs a port")
		}
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range ports {
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			cfg.ExposedPorts[p] = struct{}{}
		}
	case "VOLUME":
		vols, err := listForm(rest)
		if err != nil {
			return err
		}
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range vols {
			cfg.Volumes[v] = struct{}{}
		}
	default:
		return fmt.Errorf("unknown instruction %q (supported: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR)", instr)
	}
	return nil
}

// commandForm parses the exec form (a JSON array) or the shell form of
// CMD and ENTRYPOINT.
func commandForm(s string) ([]string, error) {
	if strings.HasPrefix(s, "[") {
		var argv []string
		if err := json.Unmarshal([]byte(s), &argv); err != nil {
			return nil, fmt.Errorf("exec form is not a JSON array of strings: %w", err)
		}
		return argv, nil
	}
	if s == "" {
		return nil, fmt.Errorf("missing command")
	}
	return []string{"/bin/sh", "-c", s}, nil
}

func listForm(s string) ([]string, error) {
	if strings.HasPrefix(s, "[") {
		var l []string
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			return nil, fmt.Errorf("not a JSON array of strings: %w", err)
		}
		return l, nil
	}
	l := strings.Fields(s)
	if len(l) == 0 {
		return nil, fmt.Errorf("missing argument")
	}
	return l, nil
}

// keyValues parses "KEY=VALUE KEY2=\"VALUE 2\"" or the legacy
// "KEY VALUE WITH SPACES" form of ENV and LABEL.
func keyValues(s string) ([][2]string, error) {
	words, err := splitWords(s)
	if err != nil {
		return nil, err
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("missing KEY=VALUE")
	}
	if !strings.Contains(words[0], "=") {
		key, val, _ := strings.Cut(s, " ")
		key, err := unquoteWord(key)
		if err != nil {
			return nil, err
		}
		return [][2]string{{key, strings.TrimSpace(val)}}, nil
	}
	var kvs [][2]string
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not KEY=VALUE", w)
		}
		kvs = append(kvs, [2]string{k, v})
	}
	return kvs, nil
}

// splitWords splits s on unquoted blanks, removing the quotes ('…', "…")
// and backslash escapes.
func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	escaped := false
	for _, r := range s {
		switch {
		case escaped:
			cur.WriteRune(r)
			escaped = false
		case r == '\\' && quote != '\'':
			escaped, inWord = true, true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote")
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

func unquoteWord(s string) (string, error) {
	w, err := splitWords(s)
	if err != nil || len(w) != 1 {
		return "", fmt.Errorf("bad key %q", s)
	}
	return w[0], nil
}

func setEnv(env []string, key, val string) []string {
	for i, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == key {
			env[i] = key + "=" + val
			return env
		}
	}
	return append(env, key+"="+val)
}
