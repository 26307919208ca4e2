package hosts

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
	"github.com/berth-project/berth/reference"
)

// DefaultConfigFile is the registries.conf used when $BERTH_REGISTRIES_CONF
// is not set.
const DefaultConfigFile = "/etc/berth/registries.conf"

// ConfigEnv names the environment variable that overrides
// DefaultConfigFile.
const ConfigEnv = "BERTH_REGISTRIES_CONF"

// Config is a parsed registries.conf together with the certs.d directories
// to read certificates from. Use it through a pointer: it caches TLS
// configurations behind a mutex and must not be copied after first use.
type Config struct {
	// UnqualifiedSearch lists the registries tried, in order, for a short
	// name without a registry (unqualified-search-registries).
	UnqualifiedSearch []string
	// Registries are the [[registry]] entries in file order.
	Registries []Registry
	// CertsDirs are the certs.d roots searched for a host's certificates,
	// in order. Load sets them to DefaultCertsDirs.
	CertsDirs []string

	path string // file the config was loaded from, for error messages

	mu  sync.Mutex
	tls map[string]*tls.Config // by host[:port]
}

// Registry is one [[registry]] entry.
type Registry struct {
	// Prefix is the namespace the entry applies to, "host[:port][/path]".
	// It defaults to Location.
	Prefix string
	// Location replaces Prefix in a matching name.
	Location string
	// Insecure allows plain HTTP and unverified TLS at Location.
	Insecure bool
	// Blocked refuses any pull or push under Prefix.
	Blocked bool
	// Mirrors are tried in order before Location when pulling.
	Mirrors []Mirror
}

// Mirror is one [[registry.mirror]] entry.
type Mirror struct {
	// Location replaces the registry's prefix, like Registry.Location.
	Location string
	// Insecure allows plain HTTP and unverified TLS at this mirror.
	Insecure bool
}

// ErrBlocked is wrapped by the error of Endpoints for a blocked registry.
var ErrBlocked = errors.New("blocked")

// DefaultConfigPath returns $BERTH_REGISTRIES_CONF when it is set and
// DefaultConfigFile otherwise.
func DefaultConfigPath() string {
	if p := os.Getenv(ConfigEnv); p != "" {
		return p
	}
	return DefaultConfigFile
}

// DefaultCertsDirs returns the certs.d roots berth reads: its own, then
// those of containers and docker.
func DefaultCertsDirs() []string {
	return []string{"/etc/berth/certs.d", "/etc/containers/certs.d", "/etc/docker/certs.d"}
}

// The file's shape, decoded by toml.
type fileConfig struct {
	UnqualifiedSearch []string       `toml:"unqualified-search-registries"`
	Registries        []fileRegistry `toml:"registry"`
}

type fileRegistry struct {
	Prefix   string       `toml:"prefix"`
	Location string       `toml:"location"`
	Insecure bool         `toml:"insecure"`
	Blocked  bool         `toml:"blocked"`
	Mirrors  []fileMirror `toml:"mirror"`
}

type fileMirror struct {
	Location string `toml:"location"`
	Insecure bool   `toml:"insecure"`
}

// Load reads the registries.conf at path. A missing file is an empty
// configuration, not an error. Syntax errors name the file and line, keys
// berth does not know are errors naming the key, and every prefix and
// location must have the form host[:port][/path] without a scheme.
// CertsDirs is set to DefaultCertsDirs.
func Load(path string) (*Config, error) {
	c := &Config{path: path, CertsDirs: DefaultCertsDirs()}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read registries config: %w", err)
	}

	var fc fileConfig
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&fc)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("parse %s: line %d: %s", path, pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		keys := make([]string, len(undecoded))
		for i, k := range undecoded {
			keys[i] = strconv.Quote(k.String())
		}
		return nil, fmt.Errorf("parse %s: unknown key %s", path, strings.Join(keys, ", "))
	}

	for _, s := range fc.UnqualifiedSearch {
		if err := validateRegistry(s); err != nil {
			return nil, fmt.Errorf("parse %s: unqualified-search-registries: %w", path, err)
		}
	}
	c.UnqualifiedSearch = fc.UnqualifiedSearch

	prefixes := make(map[string]int)
	for i, fr := range fc.Registries {
		where := fmt.Sprintf("registry %d", i+1)
		if fr.Prefix != "" {
			where = fmt.Sprintf("registry %d (prefix %q)", i+1, fr.Prefix)
		} else if fr.Location != "" {
			where = fmt.Sprintf("registry %d (location %q)", i+1, fr.Location)
		}
		r := Registry{
			Prefix:   fr.Prefix,
			Location: fr.Location,
			Insecure: fr.Insecure,
			Blocked:  fr.Blocked,
		}
		switch {
		case r.Prefix == "" && r.Location == "":
			return nil, fmt.Errorf("parse %s: %s: neither prefix nor location is set", path, where)
		case r.Prefix == "":
			r.Prefix = r.Location
		case r.Location == "":
			r.Location = r.Prefix
		}
		if err := validateLocation(r.Prefix); err != nil {
			return nil, fmt.Errorf("parse %s: %s: prefix: %w", path, where, err)
		}
		if err := validateLocation(r.Location); err != nil {
			return nil, fmt.Errorf("parse %s: %s: location: %w", path, where, err)
		}
		if j, dup := prefixes[r.Prefix]; dup {
			return nil, fmt.Errorf("parse %s: %s: prefix %q is also used by registry %d", path, where, r.Prefix, j+1)
		}
		prefixes[r.Prefix] = i
		for j, fm := range fr.Mirrors {
			if err := validateLocation(fm.Location); err != nil {
				return nil, fmt.Errorf("parse %s: %s: mirror %d: location: %w", path, where, j+1, err)
			}
			r.Mirrors = append(r.Mirrors, Mirror{Location: fm.Location, Insecure: fm.Insecure})
		}
		c.Registries = append(c.Registries, r)
	}
	return c, nil
}

// Path returns the file the configuration was loaded from, or "" for a
// Config built in memory.
func (c *Config) Path() string { return c.path }

// validateLocation checks that s has the form host[:port][/path].
func validateLocation(s string) error {
	if s == "" {
		return errors.New("empty")
	}
	if strings.Contains(s, "://") {
		return fmt.Errorf("%q has a scheme; write host[:port][/path]", s)
	}
	host, rest, _ := strings.Cut(s, "/")
	if err := validateHost(host); err != nil {
		return fmt.Errorf("%q: %w", s, err)
	}
	if strings.Contains(s, "/") {
		for _, comp := range strings.Split(rest, "/") {
			if !reference.ValidPathComponent(comp) {
				return fmt.Errorf("%q: invalid path component %q", s, comp)
			}
		}
	}
	return nil
}

// validateRegistry checks that s is host[:port] alone.
func validateRegistry(s string) error {
	if err := validateLocation(s); err != nil {
		return err
	}
	if strings.Contains(s, "/") {
		return fmt.Errorf("%q: a registry has no path", s)
	}
	return nil
}

// validateHost checks host[:port], where host is a DNS name, an IPv4
// address or a bracketed IPv6 address.
func validateHost(hp string) error {
	host, port := hp, ""
	if strings.HasPrefix(hp, "[") {
		end := strings.Index(hp, "]")
		if end < 0 {
			return fmt.Errorf("invalid host %q: missing ]", hp)
		}
		host, port = hp[1:end], hp[end+1:]
		if port != "" {
			if !strings.HasPrefix(port, ":") {
				return fmt.Errorf("invalid host %q", hp)
			}
			port = port[1:]
			if port == "" {
				return fmt.Errorf("invalid host %q: empty port", hp)
			}
		}
		if !strings.Contains(host, ":") {
			return fmt.Errorf("invalid host %q: not an IPv6 address", hp)
		}
		for _, r := range host {
			if !strings.ContainsRune("0123456789abcdefABCDEF:.", r) {
				return fmt.Errorf("invalid host %q: not an IPv6 address", hp)
			}
		}
	} else {
		if i := strings.LastIndex(hp, ":"); i >= 0 {
			host, port = hp[:i], hp[i+1:]
			if port == "" {
				return fmt.Errorf("invalid host %q: empty port", hp)
			}
		}
		if host == "" {
			return fmt.Errorf("invalid host %q: empty", hp)
		}
		for _, label := range strings.Split(host, ".") {
			if !reference.ValidHostLabel(label) {
				return fmt.Errorf("invalid host %q", hp)
			}
		}
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strings.HasPrefix(port, "+") {
			return fmt.Errorf("invalid port %q in %q", port, hp)
		}
	}
	return nil
}
