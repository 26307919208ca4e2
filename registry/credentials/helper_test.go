package credentials

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeHelper is docker-credential-test: it keeps one JSON file per server
// URL in $FAKE_HELPER_DIR, logs each call, and fails with a message on
// stderr when $FAKE_HELPER_FAIL is set.
const fakeHelper = `#!/bin/sh
set -u
dir="$FAKE_HELPER_DIR"
in=$(cat)
printf '%s %s\n' "$1" "$in" >> "$dir/log"
if [ -n "${FAKE_HELPER_FAIL:-}" ]; then
	echo "keychain is locked" >&2
	exit 3
fi
key() { printf '%s' "$1" | tr '/:' '__'; }
case "$1" in
get)
	f="$dir/$(key "$in").json"
	if [ -f "$f" ]; then cat "$f"; exit 0; fi
	echo "credentials not found in native keychain"
	exit 1 ;;
store)
	url=$(printf '%s' "$in" | sed -n 's/.*"ServerURL":"\([^"]*\)".*/\1/p')
	printf '%s' "$in" > "$dir/$(key "$url").json" ;;
erase)
	f="$dir/$(key "$in").json"
	if [ -f "$f" ]; then rm "$f"; exit 0; fi
	echo "credentials not found in native keychain" >&2
	exit 1 ;;
*)
	echo "unknown action $1" >&2
	exit 2 ;;
esac
`

// installHelper puts docker-credential-test first in PATH and returns its
// state directory.
func installHelper(t *testing.T) string {
	t.Helper()
	bin, state := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "docker-credential-test"), []byte(fakeHelper), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("FAKE_HELPER_DIR", state)
	t.Setenv("FAKE_HELPER_FAIL", "")
	return state
}

func helperLog(t *testing.T, state string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(state, "log"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

func TestHelperStoreGetErase(t *testing.T) {
	for _, tc := range []struct {
		name, config string
	}{
		{"credsStore", `{"credsStore": "test", "auths": {"quay.io": {"auth": "` + b64("file:only") + `"}}}`},
		{"credHelpers", `{"credsStore": "missing-helper", "credHelpers": {"quay.io": "test", "https://index.docker.io/v1/": "test"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			state := installHelper(t)
			p := writeConfig(t, tc.config)
			before, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			s := Open(p)
			ctx := context.Background()

			// Nothing stored yet: anonymous, not an error, and the
			// helper is asked rather than the file.
			if got := mustGet(t, s, "quay.io"); !got.IsZero() {
				t.Fatalf("Get before store = %+v", got)
			}
			if err := s.Put(ctx, "quay.io", Credential{Username: "bob", Password: "pw"}); err != nil {
				t.Fatal(err)
			}
			if err := s.Put(ctx, "index.docker.io", Credential{IdentityToken: "refresh"}); err != nil {
				t.Fatal(err)
			}
			if got := mustGet(t, s, "quay.io"); got != (Credential{Username: "bob", Password: "pw"}) {
				t.Fatalf("Get(quay.io) = %+v", got)
			}
			if got := mustGet(t, s, "docker.io"); got != (Credential{IdentityToken: "refresh"}) {
				t.Fatalf("Get(docker.io) = %+v", got)
			}
			if after, _ := os.ReadFile(p); string(after) != string(before) {
				t.Fatalf("Put through a helper rewrote the file:\n%s", after)
			}

			log := helperLog(t, state)
			for _, want := range []string{
				"get quay.io\n",
				`store {"ServerURL":"quay.io","Username":"bob","Secret":"pw"}` + "\n",
				`store {"ServerURL":"https://index.docker.io/v1/","Username":"\u003ctoken\u003e","Secret":"refresh"}` + "\n",
				"get https://index.docker.io/v1/\n",
			} {
				if !strings.Contains(log, want) {
					t.Errorf("helper log lacks %q:\n%s", want, log)
				}
			}

			if err := s.Erase(ctx, "quay.io"); err != nil {
				t.Fatal(err)
			}
			if got := mustGet(t, s, "quay.io"); !got.IsZero() {
				t.Fatalf("Get after Erase = %+v", got)
			}
			err = s.Erase(ctx, "quay.io")
			if !errors.Is(err, ErrNotLoggedIn) || !strings.Contains(err.Error(), "quay.io") {
				t.Fatalf("second Erase = %v, want ErrNotLoggedIn naming quay.io", err)
			}
		})
	}
}

func TestHelperFailure(t *testing.T) {
	installHelper(t)
	t.Setenv("FAKE_HELPER_FAIL", "1")
	s := Open(writeConfig(t, `{"credHelpers": {"quay.io": "test"}}`))
	ctx := context.Background()
	check := func(op string, err error) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s succeeded with a failing helper", op)
		}
		for _, want := range []string{"docker-credential-test", "keychain is locked", "quay.io"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s error %q does not mention %q", op, err, want)
			}
		}
		if errors.Is(err, ErrNotLoggedIn) {
			t.Errorf("%s: a failure is not ErrNotLoggedIn: %v", op, err)
		}
	}
	_, err := s.Get(ctx, "quay.io")
	check("Get", err)
	check("Put", s.Put(ctx, "quay.io", Credential{Username: "u", Password: "p"}))
	check("Erase", s.Erase(ctx, "quay.io"))
}

func TestHelperMissingExecutable(t *testing.T) {
	installHelper(t)
	s := Open(writeConfig(t, `{"credsStore": "no-such-helper"}`))
	_, err := s.Get(context.Background(), "quay.io")
	if err == nil || !strings.Contains(err.Error(), "docker-credential-no-such-helper") {
		t.Fatalf("Get with a missing helper = %v", err)
	}
}

func TestHelperBadOutput(t *testing.T) {
	state := installHelper(t)
	if err := os.WriteFile(filepath.Join(state, "quay.io.json"), []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(writeConfig(t, `{"credsStore": "test"}`)).Get(context.Background(), "quay.io")
	if err == nil || !strings.Contains(err.Error(), "docker-credential-test") {
		t.Fatalf("Get with bad helper output = %v", err)
	}
}
