package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "registry.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The TOML config file sets every server setting, including auth.
func TestLoadConfigFile(t *testing.T) {
	p := writeConfig(t, `
addr = "127.0.0.1:5001"
root = "/srv/registry"
read_only = true
sync = true
delete_tags = true
max_manifest_size = 1024
allow_missing_references = true
body_idle_timeout = "30s"
shutdown_timeout = "5s"
[tls]
cert = "c.pem"
key = "k.pem"
[auth]
htpasswd = "/etc/htpasswd"
[auth.token]
realm = "https://r/token"
service = "r"
expiration = "10m"
[[auth.access]]
repository = "team/*"
users = ["alice"]
actions = ["pull", "push"]
`)
	fc, err := LoadConfigFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if fc.Addr != "127.0.0.1:5001" || fc.Root != "/srv/registry" || !fc.ReadOnly || !fc.DeleteTags || fc.MaxManifestSize != 1024 ||
		!fc.AllowMissingReferences || time.Duration(fc.BodyIdleTimeout) != 30*time.Second || time.Duration(fc.ShutdownTimeout) != 5*time.Second ||
		fc.TLS.Cert != "c.pem" || fc.TLS.Key != "k.pem" {
		t.Fatalf("config %+v", fc)
	}
	if fc.Auth.Htpasswd != "/etc/htpasswd" || fc.Auth.Token == nil || fc.Auth.Token.Realm != "https://r/token" || fc.Auth.Token.Expiration != 10*time.Minute ||
		len(fc.Auth.Access) != 1 || fc.Auth.Access[0].Users[0] != "alice" {
		t.Fatalf("auth config %+v", fc.Auth)
	}
	cfg := fc.ServerConfig()
	if !cfg.ReadOnly || !cfg.Sync || !cfg.DeleteTags || cfg.MaxManifestSize != 1024 || cfg.Root != "/srv/registry" || cfg.BodyIdleTimeout != 30*time.Second {
		t.Fatalf("server config %+v", cfg)
	}
}

// Unknown keys, half a TLS pair and bad syntax are errors naming the file.
func TestLoadConfigFileErrors(t *testing.T) {
	for text, want := range map[string]string{
		`raed_only = true`:                   "raed_only",
		"[tls]\ncert = \"c\"":                "both cert and key",
		`addr = `:                            "registry.toml",
		`body_idle_timeout = "soon"`:         "registry.toml",
		`max_manifest_size = -1`:             "negative",
		"[auth]\nhtpasswdd = \"/x\"":         "auth.htpasswdd",
		"[auth.token]\nrealm = \"r\"\nx = 1": "auth.token.x",
	} {
		_, err := LoadConfigFile(writeConfig(t, text))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %q: error %v, want one mentioning %q", text, err, want)
		}
	}
	if _, err := LoadConfigFile(filepath.Join(t.TempDir(), "missing.toml")); err == nil {
		t.Error("a missing config file loaded")
	}
}
