package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/internal/testimage"
	"github.com/berth-project/berth/internal/testregistry"
)

// TestLoginPullPushLogout drives the registry commands as a user would,
// against a TLS registry with basic auth: login checks the password and
// keeps the login in docker's config; pull and push use it; logout drops
// it and the next pull is refused.
func TestLoginPullPushLogout(t *testing.T) {
	reg := testregistry.Start(t, testregistry.Options{TLS: true, Basic: true})
	layouts := testimage.Build(t, "busybox")
	reg.Seed(t, filepath.Join(layouts, "busybox"), "busybox:1")
	want := reg.ManifestDigest(t, "busybox:1")
	auth := filepath.Join(t.TempDir(), "docker", "config.json")
	root := t.TempDir()
	flags := []string{"--authfile", auth, "--cert-dir", reg.CertsDir}
	berth := func(stdin string, args ...string) (string, error) {
		t.Helper()
		return run(t, []byte(stdin), append([]string{"--root", root}, args...)...)
	}

	out, err := berth("", append([]string{"pull", "-q", reg.Host + "/busybox:1"}, flags...)...)
	if err == nil || !strings.Contains(err.Error(), "berth login "+reg.Host) {
		t.Fatalf("pull without login: %v\n%s", err, out)
	}
	out, err = berth("wrong\n", append([]string{"login", "-u", reg.Username, "--password-stdin", reg.Host}, flags...)...)
	if err == nil || !strings.Contains(err.Error(), "login to "+reg.Host) {
		t.Fatalf("login with a wrong password: %v\n%s", err, out)
	}
	if _, err := os.Stat(auth); err == nil {
		t.Error("a failed login wrote the auth file")
	}
	out, err = berth(reg.Password+"\n", append([]string{"login", "-u", reg.Username, "--password-stdin", reg.Host}, flags...)...)
	if err != nil || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("login: %v\n%s", err, out)
	}
	var cfg struct {
		Auths map[string]struct{ Auth string } `json:"auths"`
	}
	data, err := os.ReadFile(auth)
	if err != nil || json.Unmarshal(data, &cfg) != nil || cfg.Auths[reg.Host].Auth == "" {
		t.Fatalf("auth file after login: %v %s", err, data)
	}
	out, err = berth("", append([]string{"pull", reg.Host + "/busybox:1"}, flags...)...)
	if err != nil {
		t.Fatalf("pull: %v\n%s", err, out)
	}
	for _, w := range []string{"Pull complete", "Digest: " + want.String(), reg.Host + "/busybox:1"} {
		if !strings.Contains(out, w) {
			t.Errorf("pull output lacks %q:\n%s", w, out)
		}
	}
	out, err = berth("", append([]string{"push", "-q", reg.Host + "/busybox:1", reg.Host + "/mine/busybox:2"}, flags...)...)
	if err != nil || strings.TrimSpace(out) != want.String() {
		t.Fatalf("push: %v\n%s", err, out)
	}
	if got := reg.ManifestDigest(t, "mine/busybox:2"); got != want {
		t.Errorf("pushed image reads back as %s, want %s", got, want)
	}
	out = mustRun(t, "--root", root, "image", "inspect", "--remote", "--raw", "--authfile", auth, "--cert-dir", reg.CertsDir, reg.Host+"/mine/busybox:2")
	if d := digest.FromString(out); d != want {
		t.Errorf("inspect --remote --raw gives content with digest %s, want %s", d, want)
	}
	out, err = berth("", "logout", "--authfile", auth, reg.Host)
	if err != nil || !strings.Contains(out, "Removing login credentials for "+reg.Host) {
		t.Fatalf("logout: %v\n%s", err, out)
	}
	if _, err := berth("", "logout", "--authfile", auth, reg.Host); err == nil || !strings.Contains(err.Error(), "not logged in") {
		t.Errorf("second logout: %v", err)
	}
	if _, err := berth("", append([]string{"pull", "-q", reg.Host + "/busybox:1"}, flags...)...); err == nil || !strings.Contains(err.Error(), "berth login "+reg.Host) {
		t.Errorf("pull after logout: %v", err)
	}
}
