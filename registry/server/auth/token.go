package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berth-project/berth/registry/server"
	"github.com/golang-jwt/jwt/v5"
)

// tokenIssuer issues and verifies the tokens of docker's token
// specification.
type tokenIssuer struct {
	realm      string // "" for TokenPath on the request's host
	service    string
	issuer     string
	expiration time.Duration
	key        *signer

	// verified are access tokens whose signature and claims were
	// checked, by token: checking an ES256 signature costs more than
	// serving a small manifest, and clients send the same token with
	// every request. Only the times are checked again.
	mu       sync.Mutex
	verified map[string]*claims
}

// maxVerified bounds the verified tokens kept; when full, they are
// forgotten all at once.
const maxVerified = 4096

func newTokenIssuer(cfg server.TokenConfig) (*tokenIssuer, error) {
	t := &tokenIssuer{realm: cfg.Realm, service: cfg.Service, issuer: cfg.Issuer, expiration: cfg.Expiration,
		verified: map[string]*claims{}}
	if t.realm != "" {
		u, err := url.Parse(t.realm)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("token realm %q is not an http(s) URL", t.realm)
		}
	}
	if t.service == "" {
		t.service = DefaultService
	}
	if t.issuer == "" {
		t.issuer = DefaultIssuer
	}
	if t.expiration == 0 {
		t.expiration = DefaultExpiration
	}
	if t.expiration < 0 {
		return nil, fmt.Errorf("token expiration %v is negative", t.expiration)
	}
	var err error
	if t.key, err = loadKey(cfg.Key); err != nil {
		return nil, err
	}
	return t, nil
}

// realmFor is the token realm told to the client of r.
func (t *tokenIssuer) realmFor(r *http.Request) string {
	if t.realm != "" {
		return t.realm
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + TokenPath
}

// resourceActions is one entry of a token's access claim.
type resourceActions struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// claims are a token's claims: the registered ones and the granted
// access (an access token), or the fingerprint of the user's password
// hash (a refresh token, which grants nothing by itself and is void once
// the password changes).
type claims struct {
	jwt.RegisteredClaims
	Access  []resourceActions `json:"access,omitempty"`
	Refresh string            `json:"berth_refresh,omitempty"`
}

// covers reports whether the access token grants every action of want.
func (c *claims) covers(want server.Access) bool {
	for _, act := range want.Actions {
		ok := false
		for _, ra := range c.Access {
			if ra.Type == want.Type && ra.Name == want.Name &&
				(slices.Contains(ra.Actions, act) || slices.Contains(ra.Actions, "*")) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func (t *tokenIssuer) sign(c *claims) (string, error) {
	tok := jwt.NewWithClaims(t.key.method, c)
	tok.Header["kid"] = t.key.kid
	return tok.SignedString(t.key.key)
}

func newJTI() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// issue returns an access token for user ("" anonymous) granting access.
func (t *tokenIssuer) issue(user string, access []resourceActions, now time.Time) (string, error) {
	return t.sign(&claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.issuer,
			Subject:   user,
			Audience:  jwt.ClaimStrings{t.service},
			ExpiresAt: jwt.NewNumericDate(now.Add(t.expiration)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        newJTI(),
		},
		Access: access,
	})
}

// issueRefresh returns a refresh token for user, whose password hash is
// hash.
func (t *tokenIssuer) issueRefresh(user string, hash []byte, now time.Time) (string, error) {
	return t.sign(&claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    t.issuer,
			Subject:   user,
			Audience:  jwt.ClaimStrings{t.service},
			ExpiresAt: jwt.NewNumericDate(now.Add(RefreshExpiration)),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        newJTI(),
		},
		Refresh: fingerprint(hash),
	})
}

// fingerprint identifies a password hash without revealing it.
func fingerprint(hash []byte) string {
	sum := sha256.Sum256(hash)
	return hex.EncodeToString(sum[:12])
}

// parse checks tok's signature, times, issuer and audience.
func (t *tokenIssuer) parse(tok string, now time.Time) (*claims, error) {
	c := &claims{}
	_, err := jwt.ParseWithClaims(tok, c, func(*jwt.Token) (any, error) { return t.key.key.Public(), nil },
		jwt.WithValidMethods([]string{t.key.method.Alg()}),
		jwt.WithLeeway(Leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithIssuer(t.issuer),
		jwt.WithAudience(t.service),
	)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// verify checks an access token.
func (t *tokenIssuer) verify(tok string, now time.Time) (*claims, error) {
	t.mu.Lock()
	c, ok := t.verified[tok]
	t.mu.Unlock()
	if ok {
		// Signature, issuer and audience were checked; the times are
		// checked again, as parse does.
		if now.After(c.ExpiresAt.Add(Leeway)) {
			return nil, jwt.ErrTokenExpired
		}
		if c.NotBefore != nil && now.Before(c.NotBefore.Add(-Leeway)) {
			return nil, jwt.ErrTokenNotValidYet
		}
		if c.IssuedAt != nil && now.Before(c.IssuedAt.Add(-Leeway)) {
			return nil, jwt.ErrTokenUsedBeforeIssued
		}
		return c, nil
	}
	c, err := t.parse(tok, now)
	if err != nil {
		return nil, err
	}
	if c.Refresh != "" {
		return nil, errors.New("a refresh token is not an access token")
	}
	t.mu.Lock()
	if len(t.verified) >= maxVerified {
		clear(t.verified)
	}
	t.verified[tok] = c
	t.mu.Unlock()
	return c, nil
}

// tokenResponse is the token endpoint's answer: docker's token
// specification's fields and OAuth2's.
type tokenResponse struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	ExpiresIn    int    `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
	Scope        string `json:"scope,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// TokenHandler returns the token endpoint of docker's token
// specification, to be served at TokenPath (or the configured realm):
// GET with service, scope (repeated) and optional offline_token and
// client_id, with the user's basic credentials or anonymously; and POST
// of an OAuth2 form with grant_type password or refresh_token. It is nil
// without a token section in the configuration.
func (a *Auth) TokenHandler() http.Handler {
	if a.token == nil {
		return nil
	}
	return http.HandlerFunc(a.serveToken)
}

// tokenRequest is what a client asked the token endpoint for.
type tokenRequest struct {
	service string
	scopes  []string
	offline bool
	oauth   bool // POST: answer OAuth2 errors

	// The credentials: none (anonymous), a password or a refresh token.
	user, password string
	hasPassword    bool
	refresh        string
}

// tokenError is a refusal of the token endpoint.
type tokenError struct {
	status    int
	code      string // the distribution spec's error code
	oauthCode string // OAuth2's error code
	msg       string
}

func (a *Auth) serveToken(w http.ResponseWriter, r *http.Request) {
	req, terr := readTokenRequest(w, r)
	if terr == nil {
		var resp *tokenResponse
		resp, terr = a.grantToken(req)
		if terr == nil {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			json.NewEncoder(w).Encode(resp)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if terr.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", basicChallenge())
	}
	w.WriteHeader(terr.status)
	if req != nil && req.oauth {
		json.NewEncoder(w).Encode(map[string]string{"error": terr.oauthCode, "error_description": terr.msg})
		return
	}
	type errJSON struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	json.NewEncoder(w).Encode(map[string][]errJSON{"errors": {{Code: terr.code, Message: terr.msg}}})
}

func badRequest(msg string) *tokenError {
	return &tokenError{status: http.StatusBadRequest, code: "UNSUPPORTED", oauthCode: "invalid_request", msg: msg}
}

func readTokenRequest(w http.ResponseWriter, r *http.Request) (*tokenRequest, *tokenError) {
	req := &tokenRequest{}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		q := r.URL.Query()
		req.service = q.Get("service")
		for _, s := range q["scope"] {
			req.scopes = append(req.scopes, strings.Fields(s)...)
		}
		req.offline = q.Get("offline_token") == "true"
		req.user, req.password, req.hasPassword = r.BasicAuth()
	case http.MethodPost:
		req.oauth = true
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
		if err := r.ParseForm(); err != nil {
			return req, badRequest("bad form: " + err.Error())
		}
		f := r.PostForm
		req.service = f.Get("service")
		req.scopes = strings.Fields(f.Get("scope"))
		req.offline = f.Get("access_type") == "offline"
		switch f.Get("grant_type") {
		case "password":
			req.user, req.password, req.hasPassword = f.Get("username"), f.Get("password"), true
		case "refresh_token":
			req.refresh = f.Get("refresh_token")
			if req.refresh == "" {
				return req, badRequest("no refresh_token")
			}
		default:
			return req, &tokenError{status: http.StatusBadRequest, code: "UNSUPPORTED", oauthCode: "unsupported_grant_type",
				msg: fmt.Sprintf("grant_type %q is not password or refresh_token", f.Get("grant_type"))}
		}
	default:
		return req, &tokenError{status: http.StatusMethodNotAllowed, code: "UNSUPPORTED", oauthCode: "invalid_request",
			msg: "the token endpoint takes GET and POST"}
	}
	return req, nil
}

// grantToken authenticates req and issues a token granting what it asks
// for and the access rules allow.
func (a *Auth) grantToken(req *tokenRequest) (*tokenResponse, *tokenError) {
	t := a.token
	if req.service != "" && req.service != t.service {
		return nil, badRequest(fmt.Sprintf("unknown service %q (this is %q)", req.service, t.service))
	}
	now := a.now()
	refused := &tokenError{status: http.StatusUnauthorized, code: "UNAUTHORIZED", oauthCode: "invalid_grant",
		msg: "invalid username or password"}
	user := ""
	switch {
	case req.refresh != "":
		c, err := t.parse(req.refresh, now)
		if err != nil || c.Refresh == "" || c.Subject == "" || a.users == nil {
			refused.msg = "invalid refresh token"
			return nil, refused
		}
		hash := a.users.hash(c.Subject)
		if hash == nil || fingerprint(hash) != c.Refresh {
			refused.msg = "invalid refresh token: the user or the password changed"
			return nil, refused
		}
		user = c.Subject
	case req.hasPassword:
		if req.user == "" || a.users == nil || !a.users.verify(req.user, req.password) {
			return nil, refused
		}
		user = req.user
	}

	var access []resourceActions
	var granted []string
	for _, s := range req.scopes {
		asked, err := parseScope(s)
		if err != nil {
			return nil, badRequest(err.Error())
		}
		acts := a.rules.grant(user, asked)
		if len(acts) == 0 {
			continue
		}
		// Scopes asking for the same resource twice are merged.
		i := slices.IndexFunc(access, func(ra resourceActions) bool { return ra.Type == asked.Type && ra.Name == asked.Name })
		if i < 0 {
			access = append(access, resourceActions{Type: asked.Type, Name: asked.Name})
			i = len(access) - 1
		}
		for _, act := range acts {
			if !slices.Contains(access[i].Actions, act) {
				access[i].Actions = append(access[i].Actions, act)
			}
		}
	}
	for _, ra := range access {
		granted = append(granted, scopeString(server.Access{Type: ra.Type, Name: ra.Name, Actions: ra.Actions}))
	}
	tok, err := t.issue(user, access, now)
	if err != nil {
		return nil, &tokenError{status: http.StatusInternalServerError, code: "UNKNOWN", oauthCode: "server_error",
			msg: "sign token: " + err.Error()}
	}
	resp := &tokenResponse{
		Token:       tok,
		AccessToken: tok,
		ExpiresIn:   int(t.expiration / time.Second),
		IssuedAt:    now.UTC().Format(time.RFC3339),
		Scope:       strings.Join(granted, " "),
	}
	if req.offline && user != "" && req.refresh == "" {
		if resp.RefreshToken, err = t.issueRefresh(user, a.users.hash(user), now); err != nil {
			return nil, &tokenError{status: http.StatusInternalServerError, code: "UNKNOWN", oauthCode: "server_error",
				msg: "sign token: " + err.Error()}
		}
	}
	return resp, nil
}
