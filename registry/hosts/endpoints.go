package hosts

import (
	"crypto/tls"
	"fmt"
	"net"
	"strings"
)

// Docker Hub's names: the one users write and the host serving its API.
const (
	dockerHubDomain = "docker.io"
	dockerHubHost   = "registry-1.docker.io"
)

// Endpoint is one place to pull from or push to.
type Endpoint struct {
	// Host is the host[:port] to dial, e.g. "registry-1.docker.io" for
	// docker.io.
	Host string
	// Path is the repository path at this endpoint after prefix
	// rewriting, e.g. "library/busybox".
	Path string
	// Mirror is true for a [[registry.mirror]] entry.
	Mirror bool
	// Insecure allows plain HTTP (after HTTPS fails) and disables TLS
	// verification.
	Insecure bool
	// TLS holds the root CAs (system pool plus certs.d) and client
	// certificates for Host; InsecureSkipVerify is set when Insecure.
	TLS *tls.Config
}

// Endpoints returns the endpoints to try, in order, for the repository path
// on the normalized registry domain ("docker.io", "localhost:5000"). For a
// pull (push false) the mirrors of the matching [[registry]] come first, in
// order, then its location; a push only goes to the location. Without a
// matching entry the domain itself is the only endpoint. A blocked entry is
// an error wrapping ErrBlocked.
func (c *Config) Endpoints(domain, path string, push bool) ([]Endpoint, error) {
	if domain == "" {
		return nil, fmt.Errorf("resolve endpoints for %q: empty registry", path)
	}
	name := domain
	if path != "" {
		name = domain + "/" + path
	}

	reg := c.match(name)
	if reg == nil {
		ep, err := c.endpoint(domain, path, false, false)
		if err != nil {
			return nil, err
		}
		return []Endpoint{ep}, nil
	}
	if reg.Blocked {
		where := c.path
		if where == "" {
			where = "the registries configuration"
		}
		return nil, fmt.Errorf("registry %s is %w by %s", reg.prefix(), ErrBlocked, where)
	}

	prefix := reg.prefix()
	rest := name[len(prefix):] // "" or "/..."
	var eps []Endpoint
	if !push {
		for _, m := range reg.Mirrors {
			ep, err := c.rewrite(name, prefix, m.Location, rest, true, m.Insecure)
			if err != nil {
				return nil, err
			}
			eps = append(eps, ep)
		}
	}
	ep, err := c.rewrite(name, prefix, reg.location(), rest, false, reg.Insecure)
	if err != nil {
		return nil, err
	}
	return append(eps, ep), nil
}

// match returns the registry whose prefix is the longest match of name on
// whole path components, or nil.
func (c *Config) match(name string) *Registry {
	var best *Registry
	for i := range c.Registries {
		r := &c.Registries[i]
		p := r.prefix()
		if p == "" || (name != p && !strings.HasPrefix(name, p+"/")) {
			continue
		}
		if best == nil || len(p) > len(best.prefix()) {
			best = r
		}
	}
	return best
}

// prefix returns the namespace r applies to; Prefix defaults to Location.
func (r *Registry) prefix() string {
	if r.Prefix == "" {
		return r.Location
	}
	return r.Prefix
}

// location returns where r's names go; Location defaults to Prefix.
func (r *Registry) location() string {
	if r.Location == "" {
		return r.Prefix
	}
	return r.Location
}

// rewrite replaces the prefix of name by location and returns the endpoint.
func (c *Config) rewrite(name, prefix, location, rest string, mirror, insecure bool) (Endpoint, error) {
	host, path, _ := strings.Cut(location+rest, "/")
	if path == "" && strings.Contains(name, "/") {
		return Endpoint{}, fmt.Errorf("rewrite %s by prefix %s to %s: no repository path left", name, prefix, location)
	}
	return c.endpoint(host, path, mirror, insecure)
}

// endpoint builds the endpoint for a registry host and repository path.
func (c *Config) endpoint(host, path string, mirror, insecure bool) (Endpoint, error) {
	certsHosts := []string{host}
	if host == dockerHubDomain {
		host = dockerHubHost
		certsHosts = []string{dockerHubDomain, dockerHubHost}
		if path != "" && !strings.Contains(path, "/") {
			path = "library/" + path
		}
	}
	insecure = insecure || IsLoopback(host)
	base, err := c.tlsConfig(host, certsHosts)
	if err != nil {
		return Endpoint{}, err
	}
	tc := base.Clone()
	if insecure {
		tc.InsecureSkipVerify = true
	}
	return Endpoint{Host: host, Path: path, Mirror: mirror, Insecure: insecure, TLS: tc}, nil
}

// IsLoopback reports whether host[:port] names the loopback interface:
// "localhost", an address in 127.0.0.0/8 or ::1.
func IsLoopback(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
