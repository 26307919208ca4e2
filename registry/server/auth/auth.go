package auth

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/berth-project/berth/registry/server"
)

// BasicRealm is the realm of the basic auth challenge.
const BasicRealm = "berth-registry"

// TokenPath is where the server serves TokenHandler; the token realm in
// challenges is this path on the host the request came to unless the
// configuration names a realm.
const TokenPath = "/token"

// Defaults of the token configuration.
const (
	DefaultService    = "berth-registry"
	DefaultIssuer     = "berth-registry"
	DefaultExpiration = 5 * time.Minute
	// RefreshExpiration is the lifetime of the refresh tokens given to
	// clients that ask for offline access (docker login).
	RefreshExpiration = 90 * 24 * time.Hour
	// Leeway is the clock skew allowed when checking a token's times.
	Leeway = 30 * time.Second
)

// Auth authenticates and authorizes registry requests: a
// server.Authorizer.
type Auth struct {
	users *htpasswd // nil without an htpasswd file
	rules *rules
	now   func() time.Time
	log   *slog.Logger

	// Token mode: token is nil in basic mode.
	token *tokenIssuer
}

var _ server.Authorizer = (*Auth)(nil)

// Option changes how New sets up an Auth.
type Option func(*Auth)

// WithClock makes the Auth take the time from now (for tests).
func WithClock(now func() time.Time) Option {
	return func(a *Auth) { a.now = now }
}

// WithLogger makes the Auth log what an operator should know (an
// htpasswd file that no longer parses) to l. It never logs passwords
// or tokens.
func WithLogger(l *slog.Logger) Option {
	return func(a *Auth) { a.log = l }
}

// New returns the Auth cfg describes: basic auth when cfg has only an
// htpasswd file, bearer tokens when it has a token section. A
// configuration with neither is an error: the server needs no Authorizer
// then.
func New(cfg server.AuthConfig, opts ...Option) (*Auth, error) {
	a := &Auth{now: time.Now}
	for _, o := range opts {
		o(a)
	}
	if cfg.Htpasswd == "" && cfg.Token == nil {
		return nil, fmt.Errorf("auth: neither an htpasswd file nor a token section is configured")
	}
	var err error
	if a.rules, err = newRules(cfg.Access); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	if cfg.Htpasswd != "" {
		if a.users, err = newHtpasswd(cfg.Htpasswd, a.logf); err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
	} else if a.rules.open {
		return nil, fmt.Errorf("auth: token auth without an htpasswd file and without access rules lets nobody do anything")
	}
	if cfg.Token != nil {
		if a.token, err = newTokenIssuer(*cfg.Token); err != nil {
			return nil, fmt.Errorf("auth: %w", err)
		}
	}
	return a, nil
}

func (a *Auth) logf(format string, args ...any) {
	if a.log != nil {
		a.log.Warn(fmt.Sprintf(format, args...))
	}
}

// Authorize implements server.Authorizer: it returns nil when r may
// perform access, an *server.AuthError otherwise. An empty access (the
// /v2/ version check) needs valid credentials, so that clients learn
// which scheme to use; requests without credentials are otherwise let
// through in basic mode when the rules let anonymous users do what they
// ask.
func (a *Auth) Authorize(r *http.Request, access []server.Access) error {
	if a.token != nil {
		return a.authorizeBearer(r, access)
	}
	return a.authorizeBasic(r, access)
}

func (a *Auth) authorizeBasic(r *http.Request, access []server.Access) error {
	user, password, ok := r.BasicAuth()
	if !ok {
		if len(access) > 0 && a.rules.allows("", access) {
			return nil
		}
		return unauthorized(basicChallenge(), "authentication required")
	}
	if user == "" || !a.users.verify(user, password) {
		return unauthorized(basicChallenge(), "invalid username or password")
	}
	if !a.rules.allows(user, access) {
		return &server.AuthError{
			Status:  http.StatusForbidden,
			Code:    "DENIED",
			Message: fmt.Sprintf("user %q may not %s", user, describe(access)),
		}
	}
	return nil
}

func (a *Auth) authorizeBearer(r *http.Request, access []server.Access) error {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "bearer") || tok == "" {
		return unauthorized(a.bearerChallenge(r, access, ""), "authentication required")
	}
	c, err := a.token.verify(tok, a.now())
	if err != nil {
		return unauthorized(a.bearerChallenge(r, access, "invalid_token"), "invalid token: "+err.Error())
	}
	for _, want := range access {
		if !c.covers(want) {
			return unauthorized(a.bearerChallenge(r, access, "insufficient_scope"),
				fmt.Sprintf("insufficient scope: the token does not grant %s", scopeString(want)))
		}
	}
	return nil
}

func unauthorized(challenge, msg string) *server.AuthError {
	return &server.AuthError{Status: http.StatusUnauthorized, Challenge: challenge, Code: "UNAUTHORIZED", Message: msg}
}

func basicChallenge() string { return `Basic realm="` + BasicRealm + `"` }

// bearerChallenge is the WWW-Authenticate challenge of docker's token
// specification: Bearer realm="...",service="...",scope="..." with the
// scopes of access separated by spaces, and error="..." when the client
// sent a token that was refused.
func (a *Auth) bearerChallenge(r *http.Request, access []server.Access, errCode string) string {
	var b strings.Builder
	b.WriteString(`Bearer realm=`)
	b.WriteString(quote(a.token.realmFor(r)))
	b.WriteString(`,service=`)
	b.WriteString(quote(a.token.service))
	if len(access) > 0 {
		scopes := make([]string, len(access))
		for i, acc := range access {
			scopes[i] = scopeString(acc)
		}
		b.WriteString(`,scope=`)
		b.WriteString(quote(strings.Join(scopes, " ")))
	}
	if errCode != "" {
		b.WriteString(`,error=`)
		b.WriteString(quote(errCode))
	}
	return b.String()
}

// quote is s as an RFC 7230 quoted string.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

// describe is access in words, for messages.
func describe(access []server.Access) string {
	if len(access) == 0 {
		return "use the registry"
	}
	parts := make([]string, len(access))
	for i, acc := range access {
		parts[i] = strings.Join(acc.Actions, ",") + " " + acc.Type + " " + acc.Name
	}
	return strings.Join(parts, " and ")
}
