package auth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-project/berth/registry/server"
	"github.com/golang-jwt/jwt/v5"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// tokenSetup is a token-mode Auth over files in a temporary directory.
type tokenSetup struct {
	a        *Auth
	dir      string
	htpasswd string
	key      string
	clock    *fakeClock
	cfg      server.AuthConfig
}

var tokenRules = []server.AccessRule{
	{Repository: "public/*", Users: []string{"anonymous"}, Actions: []string{"pull"}},
	{Repository: "*", Users: []string{"alice"}, Actions: []string{"*"}},
	{Repository: "bob/*", Users: []string{"bob"}, Actions: []string{"pull", "push"}},
}

func newTokenSetup(t testing.TB) *tokenSetup {
	t.Helper()
	dir := t.TempDir()
	s := &tokenSetup{dir: dir, htpasswd: filepath.Join(dir, "htpasswd"), key: filepath.Join(dir, "keys", "token.pem"),
		clock: &fakeClock{t: time.Now().Truncate(time.Second)}}
	writeHtpasswd(t, s.htpasswd, "alice", "alice-pw", "bob", "bob-pw")
	s.cfg = server.AuthConfig{Htpasswd: s.htpasswd, Access: tokenRules, Token: &server.TokenConfig{
		Realm: "https://registry.example/token", Service: "registry.example", Issuer: "berth-test", Key: s.key}}
	s.a = s.newAuth(t, s.cfg)
	return s
}

func (s *tokenSetup) newAuth(t testing.TB, cfg server.AuthConfig) *Auth {
	t.Helper()
	a, err := New(cfg, WithClock(s.clock.now))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// get asks a's token endpoint by GET for scopes, with basic
// credentials unless user and password are empty.
func get(t testing.TB, a *Auth, query url.Values, user, password string) (*httptest.ResponseRecorder, tokenResponse) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/token?"+query.Encode(), nil)
	if user != "" || password != "" {
		r.SetBasicAuth(user, password)
	}
	return serve(t, a, r)
}

func post(t *testing.T, a *Auth, form url.Values) (*httptest.ResponseRecorder, tokenResponse) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return serve(t, a, r)
}

func serve(t testing.TB, a *Auth, r *http.Request) (*httptest.ResponseRecorder, tokenResponse) {
	t.Helper()
	w := httptest.NewRecorder()
	a.TokenHandler().ServeHTTP(w, r)
	var resp tokenResponse
	if w.Code == http.StatusOK {
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
			t.Fatalf("token answer %q: %v", w.Body.String(), err)
		}
	}
	return w, resp
}

func scopes(service string, s ...string) url.Values {
	q := url.Values{"scope": s}
	if service != "" {
		q.Set("service", service)
	}
	return q
}

// verifyWithFile checks tok's signature with the public half of the key
// in the PEM file at path, independently of the package's code, and
// returns its header and claims.
func verifyWithFile(t *testing.T, path, tok string) (map[string]any, *claims) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	c := &claims{}
	parsed, err := jwt.ParseWithClaims(tok, c, func(*jwt.Token) (any, error) { return &k.(*ecdsa.PrivateKey).PublicKey, nil },
		jwt.WithoutClaimsValidation())
	if err != nil {
		t.Fatalf("token does not verify with the key of %s: %v", path, err)
	}
	return parsed.Header, c
}

func TestTokenEndpoint(t *testing.T) {
	s := newTokenSetup(t)
	a := s.a

	// Alice may do everything: she gets what she asks for.
	w, resp := get(t, a, scopes("registry.example", "repository:x/y:pull,push", "registry:catalog:*"), "alice", "alice-pw")
	if w.Code != http.StatusOK {
		t.Fatalf("alice: %d %s", w.Code, w.Body)
	}
	if resp.Token == "" || resp.AccessToken != resp.Token || resp.ExpiresIn != 300 {
		t.Errorf("answer %+v: want token = access_token and expires_in 300", resp)
	}
	if it, err := time.Parse(time.RFC3339, resp.IssuedAt); err != nil || !it.Equal(s.clock.now()) {
		t.Errorf("issued_at %q, want %v", resp.IssuedAt, s.clock.now())
	}
	if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", w.Header())
	}
	hdr, c := verifyWithFile(t, s.key, resp.Token)
	if hdr["alg"] != "ES256" || hdr["kid"] != s.a.token.key.kid {
		t.Errorf("header %v", hdr)
	}
	if c.Issuer != "berth-test" || c.Subject != "alice" || !reflect.DeepEqual([]string(c.Audience), []string{"registry.example"}) ||
		c.ID == "" || !c.ExpiresAt.Equal(s.clock.now().Add(5*time.Minute)) || !c.IssuedAt.Equal(s.clock.now()) || !c.NotBefore.Equal(s.clock.now()) {
		t.Errorf("claims %+v", c.RegisteredClaims)
	}
	want := []resourceActions{{"repository", "x/y", []string{"pull", "push"}}, {"registry", "catalog", []string{"*"}}}
	if !reflect.DeepEqual(c.Access, want) {
		t.Errorf("access %+v, want %+v", c.Access, want)
	}

	// Bob gets the intersection of what he asks and what he may; scopes
	// in one parameter separated by spaces count too; the same resource
	// twice is merged.
	_, resp = get(t, a, scopes("", "repository:bob/a:pull,push,delete repository:public/p:pull,push", "repository:alice/a:pull", "registry:catalog:*", "repository:bob/a:pull"), "bob", "bob-pw")
	_, c = verifyWithFile(t, s.key, resp.Token)
	want = []resourceActions{{"repository", "bob/a", []string{"pull", "push"}}, {"repository", "public/p", []string{"pull"}}}
	if !reflect.DeepEqual(c.Access, want) || c.Subject != "bob" {
		t.Errorf("bob's access %+v, want %+v", c.Access, want)
	}
	if resp.Scope != "repository:bob/a:pull,push repository:public/p:pull" {
		t.Errorf("scope %q", resp.Scope)
	}

	// Anonymous: a token with what anonymous may do, and no subject.
	w, resp = get(t, a, scopes("registry.example", "repository:public/p:pull,push", "repository:bob/a:pull"), "", "")
	if w.Code != http.StatusOK {
		t.Fatalf("anonymous: %d %s", w.Code, w.Body)
	}
	_, c = verifyWithFile(t, s.key, resp.Token)
	if want := []resourceActions{{"repository", "public/p", []string{"pull"}}}; !reflect.DeepEqual(c.Access, want) || c.Subject != "" {
		t.Errorf("anonymous access %+v (subject %q), want %+v", c.Access, c.Subject, want)
	}
	// No scope at all (docker login): a token granting nothing.
	_, resp = get(t, a, scopes("registry.example"), "bob", "bob-pw")
	if _, c = verifyWithFile(t, s.key, resp.Token); len(c.Access) != 0 {
		t.Errorf("no scope asked, got %+v", c.Access)
	}

	// Wrong credentials: 401, a basic challenge, the errors body, no
	// password in it.
	for _, cred := range [][2]string{{"alice", "bob-pw"}, {"eve", "alice-pw"}} {
		w, _ = get(t, a, scopes("registry.example", "repository:x:pull"), cred[0], cred[1])
		if w.Code != http.StatusUnauthorized || w.Header().Get("WWW-Authenticate") != `Basic realm="berth-registry"` {
			t.Errorf("%s: %d %v", cred[0], w.Code, w.Header())
		}
		var body struct {
			Errors []struct{ Code, Message string }
		}
		if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || len(body.Errors) != 1 || body.Errors[0].Code != "UNAUTHORIZED" {
			t.Errorf("%s: body %s", cred[0], w.Body)
		}
		if strings.Contains(w.Body.String(), cred[1]) {
			t.Errorf("the answer shows the password: %s", w.Body)
		}
	}
	// Another service, a bad scope, another method.
	if w, _ = get(t, a, scopes("other", "repository:x:pull"), "alice", "alice-pw"); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "other") {
		t.Errorf("wrong service: %d %s", w.Code, w.Body)
	}
	if w, _ = get(t, a, scopes("", "repository:x"), "alice", "alice-pw"); w.Code != http.StatusBadRequest {
		t.Errorf("bad scope: %d %s", w.Code, w.Body)
	}
	if w, _ = serve(t, a, httptest.NewRequest(http.MethodDelete, "/token", nil)); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("DELETE: %d", w.Code)
	}
}

func TestTokenPOST(t *testing.T) {
	s := newTokenSetup(t)
	a := s.a
	w, resp := post(t, a, url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"bob-pw"},
		"service": {"registry.example"}, "scope": {"repository:bob/a:pull,push repository:x:push"}, "client_id": {"test"}})
	if w.Code != http.StatusOK {
		t.Fatalf("password grant: %d %s", w.Code, w.Body)
	}
	if resp.RefreshToken != "" {
		t.Error("a refresh token without access_type=offline")
	}
	if _, c := verifyWithFile(t, s.key, resp.AccessToken); !reflect.DeepEqual(c.Access, []resourceActions{{"repository", "bob/a", []string{"pull", "push"}}}) {
		t.Errorf("access %+v", c.Access)
	}
	w, _ = post(t, a, url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"alice-pw"}, "service": {"registry.example"}})
	var oerr struct {
		Error            string `json:"error"`
		ErrorDescription string `json:"error_description"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &oerr); err != nil || w.Code != http.StatusUnauthorized ||
		oerr.Error != "invalid_grant" || oerr.ErrorDescription == "" || strings.Contains(w.Body.String(), "alice-pw") {
		t.Errorf("wrong password: %d %s", w.Code, w.Body)
	}
	if w, _ = post(t, a, url.Values{"grant_type": {"client_credentials"}}); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "unsupported_grant_type") {
		t.Errorf("unknown grant: %d %s", w.Code, w.Body)
	}

	// Offline access (docker login): a refresh token, which then gets
	// access tokens by the refresh_token grant, and is no access token
	// itself.
	w, resp = post(t, a, url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {"bob-pw"},
		"service": {"registry.example"}, "access_type": {"offline"}, "client_id": {"test"}})
	if w.Code != http.StatusOK || resp.RefreshToken == "" {
		t.Fatalf("offline: %d %s", w.Code, w.Body)
	}
	refresh := resp.RefreshToken
	_, gresp := get(t, a, url.Values{"service": {"registry.example"}, "offline_token": {"true"}, "client_id": {"test"}}, "bob", "bob-pw")
	if gresp.RefreshToken == "" {
		t.Error("GET with offline_token=true: no refresh token")
	}
	w, resp = post(t, a, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh},
		"service": {"registry.example"}, "scope": {"repository:bob/a:pull"}})
	if w.Code != http.StatusOK {
		t.Fatalf("refresh grant: %d %s", w.Code, w.Body)
	}
	if _, c := verifyWithFile(t, s.key, resp.AccessToken); c.Subject != "bob" || len(c.Access) != 1 {
		t.Errorf("refreshed token: %+v", c)
	}
	r := httptest.NewRequest(http.MethodGet, "/v2/bob/a/manifests/latest", nil)
	r.Header.Set("Authorization", "Bearer "+refresh)
	authErr(t, a.Authorize(r, nil), 401, "UNAUTHORIZED",
		`Bearer realm="https://registry.example/token",service="registry.example",error="invalid_token"`)
	// A forged refresh token (an access token) is refused.
	if w, _ = post(t, a, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {resp.AccessToken}}); w.Code != http.StatusUnauthorized {
		t.Errorf("access token as refresh token: %d %s", w.Code, w.Body)
	}
	// A new password voids the refresh token.
	s.a.users.recheck = 0
	writeHtpasswd(t, s.htpasswd, "alice", "alice-pw", "bob", "new-pw")
	if w, _ = post(t, a, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}); w.Code != http.StatusUnauthorized {
		t.Errorf("refresh token after a password change: %d %s", w.Code, w.Body)
	}
}

// bearer is a request carrying token tok.
func bearer(tok string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/v2/x/manifests/latest", nil)
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return r
}

func token(t testing.TB, a *Auth, user, password string, scope ...string) string {
	t.Helper()
	w, resp := get(t, a, scopes("", scope...), user, password)
	if w.Code != http.StatusOK {
		t.Fatalf("token: %d %s", w.Code, w.Body)
	}
	return resp.Token
}

func TestBearer(t *testing.T) {
	s := newTokenSetup(t)
	a := s.a
	tok := token(t, a, "bob", "bob-pw", "repository:bob/a:pull,push", "repository:public/p:pull")
	unseen := token(t, a, "bob", "bob-pw", "repository:bob/a:pull") // never verified before it expires
	for _, access := range [][]server.Access{
		nil, // the version check: any valid token
		{repo("bob/a", "pull")},
		{repo("bob/a", "push", "pull"), repo("public/p", "pull")},
	} {
		if err := a.Authorize(bearer(tok), access); err != nil {
			t.Errorf("%v: %v", access, err)
		}
	}
	// "*" in the token covers every action.
	if err := a.Authorize(bearer(token(t, a, "alice", "alice-pw", "repository:x:*")), []server.Access{repo("x", "delete", "push")}); err != nil {
		t.Errorf("alice with *: %v", err)
	}

	const base = `Bearer realm="https://registry.example/token",service="registry.example"`
	// No token: the challenge of docker's token specification, with the
	// scope asked for.
	authErr(t, a.Authorize(bearer(""), nil), 401, "UNAUTHORIZED", base)
	authErr(t, a.Authorize(bearer(""), []server.Access{repo("bob/a", "pull", "push")}), 401, "UNAUTHORIZED",
		base+`,scope="repository:bob/a:pull,push"`)
	r := bearer("")
	r.SetBasicAuth("bob", "bob-pw") // basic credentials are not enough in token mode
	authErr(t, a.Authorize(r, []server.Access{repo("bob/a", "pull")}), 401, "UNAUTHORIZED", base+`,scope="repository:bob/a:pull"`)

	// Insufficient scope: 401 with error="insufficient_scope" and every
	// scope the request needs.
	ae := authErr(t, a.Authorize(bearer(tok), []server.Access{repo("bob/a", "pull"), repo("bob/b", "pull")}), 401, "UNAUTHORIZED",
		base+`,scope="repository:bob/a:pull repository:bob/b:pull",error="insufficient_scope"`)
	if !strings.Contains(ae.Message, "repository:bob/b:pull") {
		t.Errorf("message %q", ae.Message)
	}
	authErr(t, a.Authorize(bearer(tok), []server.Access{repo("public/p", "push")}), 401, "UNAUTHORIZED",
		base+`,scope="repository:public/p:push",error="insufficient_scope"`)
	authErr(t, a.Authorize(bearer(tok), []server.Access{catalog}), 401, "UNAUTHORIZED",
		base+`,scope="registry:catalog:*",error="insufficient_scope"`)

	invalid := base + `,scope="repository:bob/a:pull",error="invalid_token"`
	check := func(what, tok string) {
		t.Helper()
		ae := authErr(t, a.Authorize(bearer(tok), []server.Access{repo("bob/a", "pull")}), 401, "UNAUTHORIZED", invalid)
		if tok != "" && strings.Contains(ae.Message, tok) {
			t.Errorf("%s: the message shows the token", what)
		}
	}
	check("garbage", "not.a.token")

	// Expired: valid within the leeway, refused after it.
	s.clock.add(5*time.Minute + Leeway - time.Second)
	if err := a.Authorize(bearer(tok), []server.Access{repo("bob/a", "pull")}); err != nil {
		t.Errorf("token refused within the leeway: %v", err)
	}
	s.clock.add(2 * time.Second)
	check("expired", tok)
	check("expired, never seen", unseen)
	// Not valid yet (issued in the future).
	s.clock.add(-10 * time.Minute)
	s.clock.add(-Leeway)
	check("not yet valid", tok)
	check("not yet valid, never seen", unseen)
	s.clock.add(10*time.Minute + Leeway)
	s.clock.add(-5 * time.Minute)

	// Signed by another key, for another audience, by another issuer.
	otherKey := *s.cfg.Token
	otherKey.Key = filepath.Join(s.dir, "other.pem")
	other := s.newAuth(t, server.AuthConfig{Htpasswd: s.htpasswd, Token: &otherKey})
	check("other key", token(t, other, "bob", "bob-pw", "repository:bob/a:pull"))
	otherService := *s.cfg.Token
	otherService.Service = "elsewhere"
	other = s.newAuth(t, server.AuthConfig{Htpasswd: s.htpasswd, Token: &otherService})
	check("other audience", token(t, other, "bob", "bob-pw", "repository:bob/a:pull"))
	otherIssuer := *s.cfg.Token
	otherIssuer.Issuer = "elsewhere"
	other = s.newAuth(t, server.AuthConfig{Htpasswd: s.htpasswd, Token: &otherIssuer})
	check("other issuer", token(t, other, "bob", "bob-pw", "repository:bob/a:pull"))
	// Unsigned ("alg":"none") and HMAC-signed with the public key: the
	// classic forgeries.
	forged := &claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: "berth-test", Audience: jwt.ClaimStrings{"registry.example"},
		ExpiresAt: jwt.NewNumericDate(s.clock.now().Add(time.Minute)), IssuedAt: jwt.NewNumericDate(s.clock.now())},
		Access: []resourceActions{{"repository", "bob/a", []string{"pull"}}}}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, forged).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	check("alg none", none)
	der, _ := x509.MarshalPKIXPublicKey(a.token.key.key.Public())
	hs, err := jwt.NewWithClaims(jwt.SigningMethodHS256, forged).SignedString(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
	check("HS256 with the public key", hs)
	// Tampered payload: the signature no longer matches.
	parts := strings.Split(tok, ".")
	check("tampered", parts[0]+"."+strings.TrimRight(parts[1], "=")+"x."+parts[2])
}

func TestChallengeRealm(t *testing.T) {
	s := newTokenSetup(t)
	cfg := *s.cfg.Token
	cfg.Realm, cfg.Service = "", ""
	a := s.newAuth(t, server.AuthConfig{Htpasswd: s.htpasswd, Token: &cfg})
	r := httptest.NewRequest(http.MethodGet, "http://127.0.0.1:5000/v2/", nil)
	authErr(t, a.Authorize(r, []server.Access{repo("a/b", "pull")}), 401, "UNAUTHORIZED",
		`Bearer realm="http://127.0.0.1:5000/token",service="berth-registry",scope="repository:a/b:pull"`)
	r = httptest.NewRequest(http.MethodGet, "https://reg.example:443/v2/", nil)
	r.TLS = &tls.ConnectionState{}
	authErr(t, a.Authorize(r, []server.Access{catalog}), 401, "UNAUTHORIZED",
		`Bearer realm="https://reg.example:443/token",service="berth-registry",scope="registry:catalog:*"`)
	if got := quote(`a"b\c`); got != `"a\"b\\c"` {
		t.Errorf("quote = %s", got)
	}
}

var kidForm = regexp.MustCompile(`^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$`)

func TestKey(t *testing.T) {
	s := newTokenSetup(t)
	// Generated where it was missing (in a new directory), 0600, a
	// PKCS#8 ECDSA P-256 key, no temporary file left.
	fi, err := os.Stat(s.key)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v, want 0600", fi.Mode())
	}
	if ents, _ := os.ReadDir(filepath.Dir(s.key)); len(ents) != 1 {
		t.Errorf("key directory holds %d files", len(ents))
	}
	data, _ := os.ReadFile(s.key)
	block, _ := pem.Decode(data)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if ek, ok := k.(*ecdsa.PrivateKey); err != nil || !ok || ek.Curve != elliptic.P256() {
		t.Fatalf("key %T %v", k, err)
	}
	kid := s.a.token.key.kid
	if !kidForm.MatchString(kid) {
		t.Errorf("kid %q is not in libtrust's form", kid)
	}

	// A restarted server keeps the key: its tokens stay valid and the
	// file is unchanged.
	tok := token(t, s.a, "bob", "bob-pw", "repository:bob/a:pull")
	again := s.newAuth(t, s.cfg)
	if err := again.Authorize(bearer(tok), []server.Access{repo("bob/a", "pull")}); err != nil {
		t.Errorf("the restarted server refuses a token: %v", err)
	}
	if again.token.key.kid != kid {
		t.Errorf("kid changed: %s, was %s", again.token.key.kid, kid)
	}
	if data2, _ := os.ReadFile(s.key); string(data2) != string(data) {
		t.Error("the key file changed")
	}

	// Keys given by the operator: SEC 1 ECDSA and PKCS#1 RSA.
	ec, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ec)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	smallRSA, _ := rsa.GenerateKey(rand.Reader, 1024)
	for _, tc := range []struct {
		name  string
		block *pem.Block
		alg   string
		err   string
	}{
		{"ec.pem", &pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}, "ES384", ""},
		{"rsa.pem", &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}, "RS256", ""},
		{"small.pem", &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(smallRSA)}, "", "1024 bits"},
		{"cert.pem", &pem.Block{Type: "CERTIFICATE", Bytes: []byte("x")}, "", `"CERTIFICATE" block`},
		{"garbage.pem", nil, "", "no PEM block"},
	} {
		path := filepath.Join(s.dir, tc.name)
		content := []byte("garbage")
		if tc.block != nil {
			content = pem.EncodeToMemory(tc.block)
		}
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := *s.cfg.Token
		cfg.Key = path
		a, err := New(server.AuthConfig{Htpasswd: s.htpasswd, Token: &cfg, Access: tokenRules})
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), path) {
				t.Errorf("%s: err = %v, want one naming the file and %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		tok := token(t, a, "bob", "bob-pw", "repository:bob/a:pull")
		parsed, _, err := jwt.NewParser().ParseUnverified(tok, &claims{})
		if err != nil || parsed.Header["alg"] != tc.alg || !kidForm.MatchString(parsed.Header["kid"].(string)) {
			t.Errorf("%s: header %v (%v), want alg %s", tc.name, parsed.Header, err, tc.alg)
		}
		if err := a.Authorize(bearer(tok), []server.Access{repo("bob/a", "pull")}); err != nil {
			t.Errorf("%s: own token refused: %v", tc.name, err)
		}
	}

	// No key file configured: a key for this process only.
	cfg := *s.cfg.Token
	cfg.Key = ""
	a := s.newAuth(t, server.AuthConfig{Htpasswd: s.htpasswd, Token: &cfg})
	if err := a.Authorize(bearer(token(t, a, "bob", "bob-pw", "repository:bob/a:pull")), nil); err != nil {
		t.Errorf("ephemeral key: %v", err)
	}
}

func TestKeyID(t *testing.T) {
	// libtrust's key ID: the first 240 bits of the SHA-256 of the DER
	// public key, base32, in groups of four. fixedKID was computed
	// outside Go (openssl pkey -pubout -outform DER | sha256, base32 in
	// Python), so a change of the form is noticed.
	k, err := parseKey([]byte(fixedKey))
	if err != nil {
		t.Fatal(err)
	}
	kid, err := keyID(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	if kid != fixedKID {
		t.Errorf("kid %s, want %s", kid, fixedKID)
	}
}

const fixedKey = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgORzOBvnYwLanrBNC
XVcgXUwhwLQZMJt/6vyg1Wz4p4mhRANCAAQ/bEgdLNZe+oyxGyYO7zC+UNF5VTcO
xrcQ3ZTXFhvRQV/C0I8dLYfMW193xO4c7llP/Kn7MP88EgF3Vx275RDp
-----END PRIVATE KEY-----
`

const fixedKID = "5QA2:DJV4:TY6C:64JI:M73L:PZLH:I6HG:7MMX:VWXL:YXL4:TRJ3:ICBB"

func BenchmarkAuthorizeBearer(b *testing.B) {
	s := newTokenSetup(b)
	tok := token(b, s.a, "bob", "bob-pw", "repository:bob/a:pull")
	r := bearer(tok)
	access := []server.Access{repo("bob/a", "pull")}
	b.ResetTimer()
	for b.Loop() {
		if err := s.a.Authorize(r, access); err != nil {
			b.Fatal(err)
		}
	}
}
