package testregistry

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"
)

// tokenService and tokenIssuer are what the registry's auth.token config
// and the token server's JWTs agree on.
const (
	tokenService = "berth-testregistry"
	tokenIssuer  = "berth-testregistry-issuer"
)

// TokenRequest is one request the token endpoint answered.
type TokenRequest struct {
	// Method is GET, or POST for an OAuth2 password grant.
	Method string
	// Scopes are the scope parameters, as sent
	// ("repository:busybox:pull,push").
	Scopes []string
	// Service and Account are the service and account parameters.
	Service, Account string
	// BasicAuth says whether the request carried basic credentials, and
	// User is their user name (or the OAuth2 username).
	BasicAuth bool
	User      string
	// Status is the HTTP status of the answer: 200 with a token, 401 for
	// missing or wrong credentials, 400 for a malformed request.
	Status int
	// Granted lists the access the token carries, one
	// "type:name:action,action" per resource.
	Granted []string
}

// access is one entry of a token's access claim.
type access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// tokenServer is the token endpoint of a registry started with
// Options.Token.
type tokenServer struct {
	srv           *httptest.Server
	signer        *leaf
	user, pass    string
	ttl           time.Duration
	anonymousPull bool

	mu       sync.Mutex
	requests []TokenRequest
}

// startTokenServer serves the token endpoint at /token on 127.0.0.1,
// over HTTPS with the serving certificate when it is non-nil.
func startTokenServer(signer *leaf, serving *leaf, user, pass string, ttl time.Duration, anonymousPull bool) *tokenServer {
	ts := &tokenServer{signer: signer, user: user, pass: pass, ttl: ttl, anonymousPull: anonymousPull}
	mux := http.NewServeMux()
	mux.HandleFunc("/token", ts.serve)
	ts.srv = httptest.NewUnstartedServer(mux)
	if serving != nil {
		ts.srv.TLS = &tls.Config{Certificates: []tls.Certificate{serving.tlsCertificate()}}
		ts.srv.StartTLS()
	} else {
		ts.srv.Start()
	}
	return ts
}

// realm is the URL the registry's challenge sends clients to.
func (ts *tokenServer) realm() string { return ts.srv.URL + "/token" }

func (ts *tokenServer) close() { ts.srv.Close() }

func (ts *tokenServer) log() []TokenRequest {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return slices.Clone(ts.requests)
}

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	rec := TokenRequest{Method: r.Method}
	defer func() {
		ts.mu.Lock()
		ts.requests = append(ts.requests, rec)
		ts.mu.Unlock()
	}()
	fail := func(status int, msg string) {
		rec.Status = status
		if status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="berth-testregistry"`)
		}
		http.Error(w, msg, status)
	}

	var user, pass string
	var hasCreds bool
	switch r.Method {
	case http.MethodGet:
		q := r.URL.Query()
		rec.Scopes, rec.Service, rec.Account = q["scope"], q.Get("service"), q.Get("account")
		user, pass, hasCreds = r.BasicAuth()
		rec.BasicAuth = hasCreds
	case http.MethodPost:
		// OAuth2 password grant, as docker's client sends with
		// credentials; refresh tokens are not supported.
		if err := r.ParseForm(); err != nil {
			fail(http.StatusBadRequest, fmt.Sprintf("parse form: %v", err))
			return
		}
		rec.Service = r.PostForm.Get("service")
		rec.Scopes = strings.Fields(r.PostForm.Get("scope"))
		if g := r.PostForm.Get("grant_type"); g != "password" {
			fail(http.StatusBadRequest, fmt.Sprintf("unsupported grant_type %q", g))
			return
		}
		user, pass, hasCreds = r.PostForm.Get("username"), r.PostForm.Get("password"), true
	default:
		fail(http.StatusMethodNotAllowed, "GET or POST")
		return
	}
	rec.User = user

	if rec.Service != tokenService {
		fail(http.StatusBadRequest, fmt.Sprintf("service %q, want %q", rec.Service, tokenService))
		return
	}
	allowed := []string{"pull", "push"}
	switch {
	case hasCreds:
		if subtle.ConstantTimeCompare([]byte(user), []byte(ts.user)) != 1 ||
			subtle.ConstantTimeCompare([]byte(pass), []byte(ts.pass)) != 1 {
			fail(http.StatusUnauthorized, "wrong user name or password")
			return
		}
	case ts.anonymousPull:
		allowed = []string{"pull"}
	default:
		fail(http.StatusUnauthorized, "credentials required")
		return
	}

	grants, err := grant(rec.Scopes, allowed)
	if err != nil {
		fail(http.StatusBadRequest, err.Error())
		return
	}
	for _, g := range grants {
		rec.Granted = append(rec.Granted, g.Type+":"+g.Name+":"+strings.Join(g.Actions, ","))
	}
	now := time.Now()
	token, err := ts.sign(user, grants, now)
	if err != nil {
		fail(http.StatusInternalServerError, err.Error())
		return
	}
	body, err := json.Marshal(map[string]any{
		"token":        token,
		"access_token": token,
		"expires_in":   int(ts.ttl / time.Second),
		"issued_at":    now.UTC().Format(time.RFC3339),
	})
	if err != nil {
		fail(http.StatusInternalServerError, err.Error())
		return
	}
	rec.Status = http.StatusOK
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

// grant returns the access for scopes, each "repository:NAME:ACTIONS",
// keeping the requested actions found in allowed. Other resource types
// (registry:catalog:*) get no access.
func grant(scopes []string, allowed []string) ([]access, error) {
	var out []access
	for _, s := range scopes {
		// The type ends at the first colon and the actions start after
		// the last, so the name is everything in between.
		typ, rest, ok1 := strings.Cut(s, ":")
		i := strings.LastIndex(rest, ":")
		if !ok1 || i < 0 || typ == "" || rest[:i] == "" {
			return nil, fmt.Errorf("malformed scope %q", s)
		}
		name, actions := rest[:i], strings.Split(rest[i+1:], ",")
		if typ != "repository" {
			continue
		}
		a := access{Type: typ, Name: name, Actions: []string{}}
		for _, act := range actions {
			if slices.Contains(allowed, act) && !slices.Contains(a.Actions, act) {
				a.Actions = append(a.Actions, act)
			}
		}
		out = append(out, a)
	}
	return out, nil
}

// sign makes an ES256 JWT for subject with the given access, valid from
// now for ts.ttl, with the signing certificate in its x5c header.
func (ts *tokenServer) sign(subject string, grants []access, now time.Time) (string, error) {
	jti := make([]byte, 16)
	rand.Read(jti)
	header := map[string]any{
		"typ": "JWT",
		"alg": "ES256",
		"x5c": []string{base64.StdEncoding.EncodeToString(ts.signer.cert.Raw)},
	}
	if grants == nil {
		grants = []access{}
	}
	claims := map[string]any{
		"iss":    tokenIssuer,
		"sub":    subject,
		"aud":    tokenService,
		"exp":    now.Add(ts.ttl).Unix(),
		"nbf":    now.Unix(),
		"iat":    now.Unix(),
		"jti":    hex.EncodeToString(jti),
		"access": grants,
	}
	h, err := json.Marshal(header)
	if err != nil {
		return "", fmt.Errorf("marshal token header: %w", err)
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("marshal token claims: %w", err)
	}
	enc := base64.RawURLEncoding
	signed := enc.EncodeToString(h) + "." + enc.EncodeToString(c)
	sum := sha256.Sum256([]byte(signed))
	r, s, err := ecdsa.Sign(rand.Reader, ts.signer.key, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	// JWS ES256 signatures are R and S as 32-byte big-endian integers.
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signed + "." + enc.EncodeToString(sig), nil
}
