package hosts

import (
	"strings"
	"testing"
)

// epSummary is the comparable part of an Endpoint.
type epSummary struct {
	Host     string
	Path     string
	Mirror   bool
	Insecure bool
}

func summarize(t *testing.T, eps []Endpoint) []epSummary {
	t.Helper()
	out := make([]epSummary, len(eps))
	for i, ep := range eps {
		if ep.TLS == nil {
			t.Fatalf("endpoint %d (%s) has no TLS config", i, ep.Host)
		}
		if ep.TLS.InsecureSkipVerify != ep.Insecure {
			t.Errorf("endpoint %d (%s): InsecureSkipVerify = %v, Insecure = %v", i, ep.Host, ep.TLS.InsecureSkipVerify, ep.Insecure)
		}
		out[i] = epSummary{ep.Host, ep.Path, ep.Mirror, ep.Insecure}
	}
	return out
}

func checkEndpoints(t *testing.T, c *Config, domain, path string, push bool, want ...epSummary) {
	t.Helper()
	eps, err := c.Endpoints(domain, path, push)
	if err != nil {
		t.Fatalf("Endpoints(%q, %q, push=%v): %v", domain, path, push, err)
	}
	got := summarize(t, eps)
	if len(got) != len(want) {
		t.Fatalf("Endpoints(%q, %q, push=%v) =\n%+v\nwant\n%+v", domain, path, push, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("Endpoints(%q, %q, push=%v)[%d] = %+v, want %+v\nall: %+v", domain, path, push, i, got[i], want[i], got)
		}
	}
}

const matchConf = `
[[registry]]
location = "example.com"
insecure = true

[[registry]]
prefix = "example.com/foo"
location = "internal.mirror:5000/bar"

[[registry]]
prefix = "example.com/foo/deep"
location = "deep.example.net"

[[registry]]
prefix = "docker.io/library"
location = "hub-cache.example.net/lib"

[[registry]]
prefix = "example.org/hub"
location = "docker.io/library"
`

func TestEndpointsPrefixMatchingAndRewriting(t *testing.T) {
	c := loadConf(t, matchConf)
	for _, tc := range []struct {
		domain, path string
		want         epSummary
	}{
		// No entry matches: the domain itself, secure.
		{"quay.io", "org/app", epSummary{Host: "quay.io", Path: "org/app"}},
		// The whole-registry entry.
		{"example.com", "other/app", epSummary{Host: "example.com", Path: "other/app", Insecure: true}},
		// "example.com/foo" matches on whole components only.
		{"example.com", "foobar/app", epSummary{Host: "example.com", Path: "foobar/app", Insecure: true}},
		// Prefix replaced by a location on another host and path; the
		// entry's insecure flag (false) applies, not the parent's.
		{"example.com", "foo/app", epSummary{Host: "internal.mirror:5000", Path: "bar/app"}},
		{"example.com", "foo/a/b/c", epSummary{Host: "internal.mirror:5000", Path: "bar/a/b/c"}},
		// The longest prefix wins, whatever the file order.
		{"example.com", "foo/deep/app", epSummary{Host: "deep.example.net", Path: "app"}},
		{"example.com", "foo/deeper/app", epSummary{Host: "internal.mirror:5000", Path: "bar/deeper/app"}},
		// docker.io: the API host, library/ for official images.
		{"docker.io", "user/app", epSummary{Host: "registry-1.docker.io", Path: "user/app"}},
		{"docker.io", "library/busybox", epSummary{Host: "hub-cache.example.net", Path: "lib/busybox"}},
		// A location of docker.io is dialed at registry-1.docker.io.
		{"example.org", "hub/alpine", epSummary{Host: "registry-1.docker.io", Path: "library/alpine"}},
	} {
		checkEndpoints(t, c, tc.domain, tc.path, false, tc.want)
		checkEndpoints(t, c, tc.domain, tc.path, true, tc.want)
	}
}

func TestEndpointsExactPrefixNeedsPath(t *testing.T) {
	c := loadConf(t, "[[registry]]\nprefix = \"example.com/app\"\nlocation = \"other.example\"\n")
	_, err := c.Endpoints("example.com", "app", false)
	if err == nil || !strings.Contains(err.Error(), "example.com/app") {
		t.Fatalf("rewriting example.com/app to a bare host: err = %v, want an error naming it", err)
	}
}

func TestEndpointsMirrors(t *testing.T) {
	c := loadConf(t, `
[[registry]]
prefix = "docker.io"
location = "docker.io"

[[registry.mirror]]
location = "mirror-a.local:5000"
insecure = true

[[registry.mirror]]
location = "mirror-b.local/hub"

[[registry.mirror]]
location = "localhost:5001"
`)
	// Pull: mirrors in file order, each with its own insecure flag (and
	// loopback's default), then the location.
	checkEndpoints(t, c, "docker.io", "library/busybox", false,
		epSummary{Host: "mirror-a.local:5000", Path: "library/busybox", Mirror: true, Insecure: true},
		epSummary{Host: "mirror-b.local", Path: "hub/library/busybox", Mirror: true},
		epSummary{Host: "localhost:5001", Path: "library/busybox", Mirror: true, Insecure: true},
		epSummary{Host: "registry-1.docker.io", Path: "library/busybox"},
	)
	// Push: never a mirror.
	checkEndpoints(t, c, "docker.io", "library/busybox", true,
		epSummary{Host: "registry-1.docker.io", Path: "library/busybox"},
	)
}

func TestEndpointsLoopbackInsecureByDefault(t *testing.T) {
	c := &Config{}
	for _, tc := range []struct {
		domain   string
		insecure bool
	}{
		{"localhost", true},
		{"localhost:5000", true},
		{"127.0.0.1:5000", true},
		{"127.1.2.3", true},
		{"[::1]:5000", true},
		{"localhost.example.com:5000", false},
		{"128.0.0.1:5000", false},
		{"10.0.0.1:5000", false},
		{"example.com", false},
	} {
		checkEndpoints(t, c, tc.domain, "x/y", false, epSummary{Host: tc.domain, Path: "x/y", Insecure: tc.insecure})
	}
}

func TestEndpointsTLSCacheDoesNotLeakInsecure(t *testing.T) {
	c := loadConf(t, `
[[registry]]
prefix = "a.example/insecure"
insecure = true
`)
	eps, err := c.Endpoints("a.example", "insecure/app", false)
	if err != nil {
		t.Fatal(err)
	}
	if !eps[0].Insecure || !eps[0].TLS.InsecureSkipVerify {
		t.Fatalf("a.example/insecure: %+v", eps[0])
	}
	// Changing one endpoint's TLS config must not change the cached one.
	eps[0].TLS.ServerName = "changed"
	eps2, err := c.Endpoints("a.example", "secure/app", false)
	if err != nil {
		t.Fatal(err)
	}
	if eps2[0].Insecure || eps2[0].TLS.InsecureSkipVerify || eps2[0].TLS.ServerName != "" {
		t.Fatalf("a.example/secure after an insecure lookup on the same host: %+v, TLS %+v", eps2[0], eps2[0].TLS)
	}
}

func TestEndpointsEmptyDomain(t *testing.T) {
	if _, err := (&Config{}).Endpoints("", "x", false); err == nil {
		t.Fatal("empty domain accepted")
	}
}

func TestQualify(t *testing.T) {
	withSearch := &Config{UnqualifiedSearch: []string{"docker.io", "quay.io"}}
	empty := &Config{}
	for _, tc := range []struct {
		c    *Config
		name string
		want []string
	}{
		{withSearch, "busybox", []string{"docker.io/library/busybox", "quay.io/busybox"}},
		{withSearch, "busybox:1.36", []string{"docker.io/library/busybox:1.36", "quay.io/busybox:1.36"}},
		{withSearch, "user/app", []string{"docker.io/user/app", "quay.io/user/app"}},
		{empty, "busybox", []string{"docker.io/library/busybox"}},
		{empty, "user/app:v1", []string{"docker.io/user/app:v1"}},
		{withSearch, "localhost/x", []string{"localhost/x"}},
		{withSearch, "localhost:5000/x", []string{"localhost:5000/x"}},
		{withSearch, "a.b/x", []string{"a.b/x"}},
		{withSearch, "docker.io/library/busybox", []string{"docker.io/library/busybox"}},
		{&Config{UnqualifiedSearch: []string{"registry.local:5000"}}, "busybox", []string{"registry.local:5000/busybox"}},
	} {
		got := tc.c.Qualify(tc.name)
		if strings.Join(got, " ") != strings.Join(tc.want, " ") || len(got) != len(tc.want) {
			t.Errorf("Qualify(%q) with search %v = %q, want %q", tc.name, tc.c.UnqualifiedSearch, got, tc.want)
		}
	}
}
