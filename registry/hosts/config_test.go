package hosts

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// writeConf writes a registries.conf into a temporary directory and
// returns its path.
func writeConf(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "registries.conf")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// loadConf writes and loads a registries.conf without certs.d directories.
func loadConf(t *testing.T, text string) *Config {
	t.Helper()
	c, err := Load(writeConf(t, text))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	c.CertsDirs = nil
	return c
}

func TestLoadMissingFileIsEmpty(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope", "registries.conf")
	c, err := Load(p)
	if err != nil {
		t.Fatalf("Load(%s): %v", p, err)
	}
	if len(c.Registries) != 0 || len(c.UnqualifiedSearch) != 0 {
		t.Fatalf("missing file gave %+v", c)
	}
	if !reflect.DeepEqual(c.CertsDirs, DefaultCertsDirs()) {
		t.Fatalf("CertsDirs = %v, want %v", c.CertsDirs, DefaultCertsDirs())
	}
	if c.Path() != p {
		t.Fatalf("Path() = %q, want %q", c.Path(), p)
	}
}

func TestLoadGood(t *testing.T) {
	c := loadConf(t, `
unqualified-search-registries = ["docker.io", "quay.io"]

[[registry]]
prefix = "example.com/foo"
location = "internal.mirror:5000/foo"
insecure = true
blocked = false

[[registry.mirror]]
location = "mirror.local:5000"
insecure = true

[[registry.mirror]]
location = "[::1]:6000/cache"

[[registry]]
location = "quay.io"
blocked = true
`)
	want := []Registry{
		{
			Prefix: "example.com/foo", Location: "internal.mirror:5000/foo", Insecure: true,
			Mirrors: []Mirror{{Location: "mirror.local:5000", Insecure: true}, {Location: "[::1]:6000/cache"}},
		},
		{Prefix: "quay.io", Location: "quay.io", Blocked: true},
	}
	if !reflect.DeepEqual(c.Registries, want) {
		t.Fatalf("Registries =\n%+v\nwant\n%+v", c.Registries, want)
	}
	if !reflect.DeepEqual(c.UnqualifiedSearch, []string{"docker.io", "quay.io"}) {
		t.Fatalf("UnqualifiedSearch = %v", c.UnqualifiedSearch)
	}
}

func TestLoadErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		text  string
		wants []string // substrings of the error besides the file name
	}{
		{"syntax", "unqualified-search-registries = [\"docker.io\"]\n\n[[registry]]\nlocation = = \"x\"\n", []string{"line 4"}},
		{"unterminated string", "[[registry]]\nlocation = \"example.com\n", []string{"line 2"}},
		{"wrong type", "[[registry]]\nlocation = \"example.com\"\ninsecure = \"yes\"\n", []string{"insecure"}},
		{"unknown top-level key", "short-name-mode = \"enforcing\"\n", []string{`unknown key "short-name-mode"`}},
		{"unknown registry key", "[[registry]]\nlocation = \"example.com\"\nmirror-by-digest-only = true\n", []string{`"registry.mirror-by-digest-only"`}},
		{"unknown mirror key", "[[registry]]\nlocation = \"example.com\"\n[[registry.mirror]]\nlocation = \"m.example.com\"\npull-from-mirror = \"all\"\n", []string{`"registry.mirror.pull-from-mirror"`}},
		{"scheme", "[[registry]]\nlocation = \"https://example.com\"\n", []string{"https://example.com", "scheme"}},
		{"bad port", "[[registry]]\nlocation = \"example.com:http\"\n", []string{"example.com:http", "port"}},
		{"port out of range", "[[registry]]\nlocation = \"example.com:70000\"\n", []string{"70000"}},
		{"upper-case path", "[[registry]]\nlocation = \"example.com/Foo\"\n", []string{`"Foo"`}},
		{"empty path component", "[[registry]]\nlocation = \"example.com//foo\"\n", []string{"example.com//foo"}},
		{"bad host", "[[registry]]\nlocation = \"exa mple.com\"\n", []string{"exa mple.com"}},
		{"bad prefix", "[[registry]]\nprefix = \"*.example.com\"\nlocation = \"example.com\"\n", []string{"prefix", "*.example.com"}},
		{"bad mirror", "[[registry]]\nlocation = \"example.com\"\n[[registry.mirror]]\nlocation = \"http://m\"\n", []string{"mirror 1", "http://m"}},
		{"neither", "[[registry]]\ninsecure = true\n", []string{"registry 1", "neither prefix nor location"}},
		{"duplicate prefix", "[[registry]]\nlocation = \"a.example\"\n[[registry]]\nprefix = \"a.example\"\nlocation = \"b.example\"\n", []string{"registry 2", `"a.example"`, "registry 1"}},
		{"search with path", "unqualified-search-registries = [\"docker.io/library\"]\n", []string{"unqualified-search-registries", "docker.io/library"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeConf(t, tc.text)
			c, err := Load(p)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", c)
			}
			for _, w := range append([]string{p}, tc.wants...) {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestLoadUnreadable(t *testing.T) {
	dir := t.TempDir() // a directory cannot be read as a file
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("Load(dir) = %v, want an error naming %s", err, dir)
	}
}

func TestDefaultConfigPath(t *testing.T) {
	t.Setenv(ConfigEnv, "")
	if got := DefaultConfigPath(); got != "/etc/berth/registries.conf" {
		t.Fatalf("DefaultConfigPath() = %q without %s", got, ConfigEnv)
	}
	t.Setenv(ConfigEnv, "/tmp/x.conf")
	if got := DefaultConfigPath(); got != "/tmp/x.conf" {
		t.Fatalf("DefaultConfigPath() = %q with %s=/tmp/x.conf", got, ConfigEnv)
	}
}

func TestValidateLocation(t *testing.T) {
	for _, ok := range []string{"example.com", "localhost", "localhost:5000", "127.0.0.1:5000", "[::1]", "[::1]:5000", "a.b.c/d/e-f_g.h", "REG.example.com:443/x"} {
		if err := validateLocation(ok); err != nil {
			t.Errorf("validateLocation(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "/x", "example.com/", "example.com:", ":5000", "-a.com", "a..com", "[::1", "[::1]x", "[zz]", "a.com:0", "a.com:+5", "a.com/x y", "a.com/-x"} {
		if err := validateLocation(bad); err == nil {
			t.Errorf("validateLocation(%q) succeeded", bad)
		}
	}
}

func TestBlockedIsSentinel(t *testing.T) {
	p := writeConf(t, "[[registry]]\nprefix = \"example.com/secret\"\nblocked = true\n")
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, push := range []bool{false, true} {
		_, err = c.Endpoints("example.com", "secret/app", push)
		if !errors.Is(err, ErrBlocked) {
			t.Fatalf("push=%v: err = %v, want ErrBlocked", push, err)
		}
		want := "registry example.com/secret is blocked by " + p
		if err.Error() != want {
			t.Fatalf("push=%v: err = %q, want %q", push, err, want)
		}
	}
	// A sibling outside the blocked namespace is reachable.
	if _, err := c.Endpoints("example.com", "secretive/app", false); err != nil {
		t.Fatalf("example.com/secretive/app: %v", err)
	}
}
