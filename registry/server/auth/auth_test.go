package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/berth-project/berth/registry/server"
)

func repo(name string, actions ...string) server.Access {
	return server.Access{Type: "repository", Name: name, Actions: actions}
}

var catalog = server.Access{Type: "registry", Name: "catalog", Actions: []string{"*"}}

func TestParseScope(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want server.Access
		bad  bool
	}{
		{in: "repository:library/busybox:pull,push", want: repo("library/busybox", "pull", "push")},
		{in: "repository:x:pull,pull", want: repo("x", "pull")},
		{in: "repository:localhost:5000/x:pull", want: repo("localhost:5000/x", "pull")},
		{in: "repository(plugin):x/y:pull", want: repo("x/y", "pull")},
		{in: "registry:catalog:*", want: catalog},
		{in: "repository:x", bad: true},
		{in: "repository::pull", bad: true},
		{in: ":x:pull", bad: true},
		{in: "repository:x:", bad: true},
	} {
		got, err := parseScope(tc.in)
		if tc.bad {
			if err == nil || !strings.Contains(err.Error(), tc.in) {
				t.Errorf("parseScope(%q) = %v, %v; want an error naming it", tc.in, got, err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseScope(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
		if err == nil && strings.Contains(tc.in, "repository:") && !strings.Contains(tc.in, "(") && !strings.Contains(tc.in, "pull,pull") && scopeString(got) != tc.in {
			t.Errorf("scopeString(%+v) = %q, want %q back", got, scopeString(got), tc.in)
		}
	}
}

func TestRules(t *testing.T) {
	r, err := newRules([]server.AccessRule{
		{Repository: "*", Users: []string{"anonymous"}, Actions: []string{"pull"}},
		{Repository: "team/*", Users: []string{"alice", "bob"}, Actions: []string{"pull", "push"}},
		{Repository: "team/private", Users: []string{"alice"}, Actions: []string{"delete"}},
		{Repository: "*", Users: []string{"admin"}, Actions: []string{"*"}},
		{Repository: "ci/*", Users: []string{"*"}, Actions: []string{"push"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user  string
		asked server.Access
		want  []string
	}{
		{"", repo("x", "pull", "push"), []string{"pull"}},
		{"", repo("team/a", "push"), nil},
		{"", repo("ci/a", "push"), nil}, // "*" is authenticated users only
		{"carol", repo("ci/a", "pull", "push"), []string{"pull", "push"}},
		{"alice", repo("team/a", "pull", "push", "delete"), []string{"pull", "push"}},
		{"alice", repo("team/private", "delete", "push"), []string{"delete", "push"}},
		{"bob", repo("team/private", "delete"), nil},
		{"bob", repo("team/a/b", "push"), nil}, // path.Match: * stops at /
		{"admin", repo("any/thing", "pull", "push", "delete", "*"), []string{"pull", "push", "delete", "*"}},
		{"alice", repo("team/a", "*"), nil},
		{"admin", catalog, []string{"*"}},
		{"", catalog, []string{"*"}}, // anonymous may pull everything
		{"alice", server.Access{Type: "registry", Name: "other", Actions: []string{"*"}}, nil},
		{"admin", server.Access{Type: "plugin", Name: "x", Actions: []string{"pull"}}, nil},
	} {
		if got := r.grant(tc.user, tc.asked); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("grant(%q, %s) = %v, want %v", tc.user, scopeString(tc.asked), got, tc.want)
		}
	}
	if !r.allows("alice", []server.Access{repo("team/a", "pull"), repo("x", "pull")}) {
		t.Error("alice may not pull team/a and x")
	}
	if r.allows("alice", []server.Access{repo("team/a", "pull"), repo("y", "push")}) {
		t.Error("alice may push y")
	}

	// Without rules, authenticated users may do everything and anonymous
	// ones nothing.
	open, err := newRules(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := open.grant("alice", repo("x", "pull", "push", "delete")); len(got) != 3 {
		t.Errorf("without rules alice gets %v", got)
	}
	if got := open.grant("alice", catalog); len(got) != 1 {
		t.Errorf("without rules alice gets %v of the catalog", got)
	}
	if got := open.grant("", repo("x", "pull")); got != nil {
		t.Errorf("without rules anonymous gets %v", got)
	}

	// The catalog needs pull on every repository.
	r2, _ := newRules([]server.AccessRule{{Repository: "team/*", Users: []string{"*"}, Actions: []string{"*"}}})
	if got := r2.grant("alice", catalog); got != nil {
		t.Errorf("pull on team/* gives the catalog: %v", got)
	}
}

func TestRulesValidation(t *testing.T) {
	for _, tc := range []struct {
		rule server.AccessRule
		want string
	}{
		{server.AccessRule{Users: []string{"a"}, Actions: []string{"pull"}}, "access rule 1: no repository pattern"},
		{server.AccessRule{Repository: "[", Users: []string{"a"}, Actions: []string{"pull"}}, `access rule 1: repository pattern "["`},
		{server.AccessRule{Repository: "x", Actions: []string{"pull"}}, "access rule 1 (x): no users"},
		{server.AccessRule{Repository: "x", Users: []string{"a"}}, "access rule 1 (x): no actions"},
		{server.AccessRule{Repository: "x", Users: []string{"a"}, Actions: []string{"pull", "write"}}, `access rule 1 (x): unknown action "write"`},
	} {
		_, err := newRules([]server.AccessRule{tc.rule})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("newRules(%+v) = %v, want %q", tc.rule, err, tc.want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(server.AuthConfig{}); err == nil {
		t.Error("New of an empty configuration succeeded")
	}
	if _, err := New(server.AuthConfig{Token: &server.TokenConfig{}}); err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Errorf("token auth without users or rules: %v", err)
	}
	if _, err := New(server.AuthConfig{Token: &server.TokenConfig{Realm: "ftp://x"}, Access: []server.AccessRule{
		{Repository: "*", Users: []string{"anonymous"}, Actions: []string{"pull"}}}}); err == nil || !strings.Contains(err.Error(), "ftp://x") {
		t.Errorf("bad realm: %v", err)
	}
}

// authErr checks that err is an *server.AuthError of status, code and
// challenge (when challenge is not "").
func authErr(t *testing.T, err error, status int, code, challenge string) *server.AuthError {
	t.Helper()
	var ae *server.AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v (%T), want an *AuthError %d", err, err, status)
	}
	if ae.Status != status || ae.Code != code {
		t.Fatalf("AuthError = %d %s (%s), want %d %s", ae.Status, ae.Code, ae.Message, status, code)
	}
	if challenge != "" && ae.Challenge != challenge {
		t.Fatalf("challenge = %s\nwant        %s", ae.Challenge, challenge)
	}
	return ae
}

func basicRequest(user, password string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/v2/x/manifests/latest", nil)
	if user != "" || password != "" {
		r.SetBasicAuth(user, password)
	}
	return r
}

func TestBasic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	writeHtpasswd(t, path, "alice", "alice-pw", "bob", "bob-pw")
	a, err := New(server.AuthConfig{Htpasswd: path, Access: []server.AccessRule{
		{Repository: "public/*", Users: []string{"anonymous"}, Actions: []string{"pull"}},
		{Repository: "*", Users: []string{"alice"}, Actions: []string{"*"}},
		{Repository: "bob/*", Users: []string{"bob"}, Actions: []string{"pull", "push"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if a.TokenHandler() != nil {
		t.Error("basic mode has a token handler")
	}
	const challenge = `Basic realm="berth-registry"`

	ok := func(r *http.Request, access ...server.Access) {
		t.Helper()
		if err := a.Authorize(r, access); err != nil {
			t.Errorf("refused: %v", err)
		}
	}
	ok(basicRequest("alice", "alice-pw"), repo("x", "pull", "push", "delete"))
	ok(basicRequest("alice", "alice-pw"), catalog)
	ok(basicRequest("alice", "alice-pw")) // the version check
	ok(basicRequest("bob", "bob-pw"), repo("bob/x", "pull", "push"))
	ok(basicRequest("bob", "bob-pw"), repo("public/x", "pull"))
	ok(basicRequest("", ""), repo("public/x", "pull")) // anonymous, as the rules allow

	// No credentials where anonymous may not, or for the version check:
	// a challenge.
	authErr(t, a.Authorize(basicRequest("", ""), []server.Access{repo("bob/x", "pull")}), 401, "UNAUTHORIZED", challenge)
	authErr(t, a.Authorize(basicRequest("", ""), nil), 401, "UNAUTHORIZED", challenge)
	// Wrong password, unknown user, empty user: a challenge, without the
	// password in the message.
	for _, c := range [][2]string{{"alice", "bob-pw"}, {"carol", "alice-pw"}, {"", "alice-pw"}} {
		ae := authErr(t, a.Authorize(basicRequest(c[0], c[1]), []server.Access{repo("public/x", "pull")}), 401, "UNAUTHORIZED", challenge)
		if strings.Contains(ae.Message, c[1]) {
			t.Errorf("message %q shows the password", ae.Message)
		}
	}
	// A bearer token in basic mode is no credential.
	r := basicRequest("", "")
	r.Header.Set("Authorization", "Bearer abc")
	authErr(t, a.Authorize(r, []server.Access{repo("x", "pull")}), 401, "UNAUTHORIZED", challenge)
	// Authenticated but not allowed: 403 DENIED.
	ae := authErr(t, a.Authorize(basicRequest("bob", "bob-pw"), []server.Access{repo("bob/x", "delete")}), 403, "DENIED", "")
	if !strings.Contains(ae.Message, `"bob"`) || !strings.Contains(ae.Message, "bob/x") {
		t.Errorf("message %q does not say who and what", ae.Message)
	}
	authErr(t, a.Authorize(basicRequest("bob", "bob-pw"), []server.Access{catalog}), 403, "DENIED", "")
	authErr(t, a.Authorize(basicRequest("bob", "bob-pw"), []server.Access{repo("bob/x", "pull"), repo("alice/x", "pull")}), 403, "DENIED", "")
}

func TestBasicNoRules(t *testing.T) {
	path := filepath.Join(t.TempDir(), "htpasswd")
	writeHtpasswd(t, path, "alice", "alice-pw")
	a, err := New(server.AuthConfig{Htpasswd: path})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Authorize(basicRequest("alice", "alice-pw"), []server.Access{repo("x", "pull", "push", "delete"), catalog}); err != nil {
		t.Errorf("alice refused without rules: %v", err)
	}
	authErr(t, a.Authorize(basicRequest("", ""), []server.Access{repo("x", "pull")}), 401, "UNAUTHORIZED", "")
}
