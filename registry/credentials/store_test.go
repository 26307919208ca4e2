package credentials

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// writeConfig writes a config.json into a fresh directory.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustGet(t *testing.T, s *Store, host string) Credential {
	t.Helper()
	c, err := s.Get(context.Background(), host)
	if err != nil {
		t.Fatalf("Get(%q): %v", host, err)
	}
	return c
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s is not JSON after writing: %v\n%s", path, err, data)
	}
	return m
}

func TestDefaultPath(t *testing.T) {
	t.Setenv("HOME", "/home/u")
	t.Setenv(AuthFileEnv, "")
	t.Setenv(DockerConfigEnv, "")
	if got := DefaultPath(); got != "/home/u/.docker/config.json" {
		t.Errorf("DefaultPath() = %q with HOME only", got)
	}
	t.Setenv(DockerConfigEnv, "/etc/dc")
	if got := DefaultPath(); got != "/etc/dc/config.json" {
		t.Errorf("DefaultPath() = %q with DOCKER_CONFIG", got)
	}
	t.Setenv(AuthFileEnv, "/run/auth.json")
	if got := DefaultPath(); got != "/run/auth.json" {
		t.Errorf("DefaultPath() = %q with REGISTRY_AUTH_FILE", got)
	}
}

func TestGetFromAuths(t *testing.T) {
	s := Open(writeConfig(t, `{
	"auths": {
		"localhost:5000": {"auth": "`+b64("alice:s3cr:et")+`"},
		"quay.io": {"username": "bob", "password": "hunter2"},
		"https://ghcr.io": {"auth": "`+b64("carol:pw")+`"},
		"registry.example.com/v2/": {"auth": "`+b64("dave:pw2")+`"},
		"token.example.com": {"auth": "`+b64("erin:")+`", "identitytoken": "refresh-me"},
		"empty.example.com": {}
	},
	"HttpHeaders": {"User-Agent": "x"}
}`))
	for _, tc := range []struct {
		host string
		want Credential
	}{
		{"localhost:5000", Credential{Username: "alice", Password: "s3cr:et"}},
		{"quay.io", Credential{Username: "bob", Password: "hunter2"}},
		{"https://quay.io/", Credential{Username: "bob", Password: "hunter2"}},
		{"ghcr.io", Credential{Username: "carol", Password: "pw"}},
		{"registry.example.com", Credential{Username: "dave", Password: "pw2"}},
		{"token.example.com", Credential{Username: "erin", IdentityToken: "refresh-me"}},
		{"empty.example.com", Credential{}},
		{"unknown.example.com", Credential{}},
		{"localhost:5001", Credential{}},
		{"docker.io", Credential{}},
	} {
		if got := mustGet(t, s, tc.host); got != tc.want {
			t.Errorf("Get(%q) = %+v, want %+v", tc.host, got, tc.want)
		}
	}
}

func TestGetDockerHubAliases(t *testing.T) {
	for _, key := range []string{"docker.io", "https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io", "https://registry-1.docker.io/v2/"} {
		t.Run(key, func(t *testing.T) {
			s := Open(writeConfig(t, `{"auths": {"`+key+`": {"auth": "`+b64("hubuser:hubpass")+`"}}}`))
			want := Credential{Username: "hubuser", Password: "hubpass"}
			for _, host := range []string{"docker.io", "index.docker.io", "registry-1.docker.io"} {
				if got := mustGet(t, s, host); got != want {
					t.Errorf("key %q: Get(%q) = %+v, want %+v", key, host, got, want)
				}
			}
			if got := mustGet(t, s, "quay.io"); !got.IsZero() {
				t.Errorf("key %q: Get(quay.io) = %+v", key, got)
			}
		})
	}
}

func TestGetMissingFileIsAnonymous(t *testing.T) {
	s := Open(filepath.Join(t.TempDir(), "none", "config.json"))
	if got := mustGet(t, s, "docker.io"); !got.IsZero() {
		t.Fatalf("Get without a file = %+v", got)
	}
}

func TestGetBrokenFile(t *testing.T) {
	for name, text := range map[string]string{
		"syntax":      `{"auths": {`,
		"auths type":  `{"auths": []}`,
		"entry type":  `{"auths": {"quay.io": "x"}}`,
		"bad base64":  `{"auths": {"quay.io": {"auth": "!!!"}}}`,
		"no colon":    `{"auths": {"quay.io": {"auth": "` + b64("nocolon") + `"}}}`,
		"helper type": `{"credHelpers": {"quay.io": 1}}`,
	} {
		t.Run(name, func(t *testing.T) {
			p := writeConfig(t, text)
			_, err := Open(p).Get(context.Background(), "quay.io")
			if err == nil || !strings.Contains(err.Error(), p) {
				t.Fatalf("Get = %v, want an error naming %s", err, p)
			}
		})
	}
}

func TestPutKeepsOtherFields(t *testing.T) {
	p := writeConfig(t, `{
	"auths": {
		"quay.io": {"auth": "`+b64("bob:old")+`", "email": "bob@example.com"},
		"index.docker.io": {"auth": "`+b64("stale:stale")+`"}
	},
	"HttpHeaders": {"User-Agent": "custom/1.0"},
	"detachKeys": "ctrl-x",
	"plugins": {"scout": {"enabled": "false"}},
	"currentContext": "remote"
}`)
	before := readJSON(t, p)
	s := Open(p)
	ctx := context.Background()
	if err := s.Put(ctx, "localhost:5000", Credential{Username: "alice", Password: "pw"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "docker.io", Credential{Username: "hub", Password: "new"}); err != nil {
		t.Fatal(err)
	}

	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after Put = %v, want 0600", fi.Mode().Perm())
	}
	after := readJSON(t, p)
	for k, v := range before {
		if k == "auths" {
			continue
		}
		if !reflect.DeepEqual(after[k], v) {
			t.Errorf("field %q changed: %v -> %v", k, v, after[k])
		}
	}
	auths := after["auths"].(map[string]any)
	wantAuths := map[string]any{
		"quay.io":                     map[string]any{"auth": b64("bob:old"), "email": "bob@example.com"},
		"localhost:5000":              map[string]any{"auth": b64("alice:pw")},
		"https://index.docker.io/v1/": map[string]any{"auth": b64("hub:new")},
	}
	if !reflect.DeepEqual(auths, wantAuths) {
		t.Errorf("auths after Put =\n%v\nwant\n%v", auths, wantAuths)
	}
	if got := mustGet(t, s, "docker.io"); got != (Credential{Username: "hub", Password: "new"}) {
		t.Errorf("Get(docker.io) after Put = %+v", got)
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after Put, want only config.json", len(entries))
	}
}

func TestPutCreatesDirectoryAndFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", ".docker")
	p := filepath.Join(dir, "config.json")
	s := Open(p)
	if err := s.Put(context.Background(), "quay.io", Credential{IdentityToken: "tok"}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("new directory mode = %v, want 0700", fi.Mode().Perm())
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("new file: %v, %v", fi, err)
	}
	if got := mustGet(t, s, "quay.io"); got != (Credential{IdentityToken: "tok"}) {
		t.Errorf("Get after Put of an identity token = %+v", got)
	}
	if err := s.Put(context.Background(), "quay.io", Credential{}); err == nil {
		t.Error("Put of an empty credential succeeded")
	}
}

func TestPutThroughSymlink(t *testing.T) {
	real := writeConfig(t, `{"auths": {}}`)
	link := filepath.Join(t.TempDir(), "config.json")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	if err := Open(link).Put(context.Background(), "quay.io", Credential{Username: "u", Password: "p"}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the symlink was replaced: %v %v", fi, err)
	}
	if got := mustGet(t, Open(real), "quay.io"); got.Username != "u" {
		t.Fatalf("target not updated: %+v", got)
	}
}

func TestErase(t *testing.T) {
	p := writeConfig(t, `{
	"auths": {
		"https://index.docker.io/v1/": {"auth": "`+b64("a:b")+`"},
		"index.docker.io": {"auth": "`+b64("c:d")+`"},
		"quay.io": {"auth": "`+b64("e:f")+`"}
	},
	"detachKeys": "ctrl-x"
}`)
	s := Open(p)
	ctx := context.Background()
	if err := s.Erase(ctx, "docker.io"); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, "docker.io"); !got.IsZero() {
		t.Fatalf("docker.io still logged in after Erase: %+v", got)
	}
	if got := mustGet(t, s, "quay.io"); got.Username != "e" {
		t.Fatalf("Erase(docker.io) touched quay.io: %+v", got)
	}
	if m := readJSON(t, p); m["detachKeys"] != "ctrl-x" {
		t.Fatalf("Erase dropped detachKeys: %v", m)
	}
	err := s.Erase(ctx, "docker.io")
	if !errors.Is(err, ErrNotLoggedIn) || !strings.Contains(err.Error(), "docker.io") {
		t.Fatalf("second Erase = %v, want ErrNotLoggedIn naming docker.io", err)
	}
	err = Open(filepath.Join(t.TempDir(), "none.json")).Erase(ctx, "localhost:5000")
	if !errors.Is(err, ErrNotLoggedIn) || !strings.Contains(err.Error(), "localhost:5000") {
		t.Fatalf("Erase without a file = %v, want ErrNotLoggedIn naming localhost:5000", err)
	}
}

func TestNormalizeHost(t *testing.T) {
	for in, want := range map[string]string{
		"quay.io":                     "quay.io",
		"https://quay.io":             "quay.io",
		"http://localhost:5000/v2/":   "localhost:5000",
		"https://index.docker.io/v1/": "docker.io",
		"index.docker.io":             "docker.io",
		"registry-1.docker.io":        "docker.io",
		"example.com/v1":              "example.com",
	} {
		if got := NormalizeHost(in); got != want {
			t.Errorf("NormalizeHost(%q) = %q, want %q", in, got, want)
		}
	}
}
