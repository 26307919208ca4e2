package server

import (
	"net/http"
	"time"
)

// Access is one item of a request's scope in docker's token
// specification: the resource ("repository", or "registry" for the
// catalog), its name and the actions asked for ("pull", "push",
// "delete", "*").
type Access struct {
	Type    string
	Name    string
	Actions []string
}

// Authorizer decides whether a request may perform the actions in
// access. The server calls it before every /v2/ endpoint with the scope
// the endpoint needs; a nil Authorizer lets every request through.
type Authorizer interface {
	// Authorize returns nil to let the request through, or an
	// *AuthError that the server writes as the spec's JSON error with
	// the error's status and WWW-Authenticate challenge.
	Authorize(r *http.Request, access []Access) error
}

// AuthError is a refused request: 401 with a challenge when the client
// has no valid credentials (code UNAUTHORIZED), 403 when it has but may
// not do this (code DENIED).
type AuthError struct {
	Status    int    // http.StatusUnauthorized or http.StatusForbidden
	Challenge string // the WWW-Authenticate header value, for a 401
	Code      string // the distribution spec's error code
	Message   string
}

func (e *AuthError) Error() string { return e.Message }

// AuthConfig is the auth section of the server's config file. With
// neither Htpasswd nor Token set, the server asks for no credentials.
type AuthConfig struct {
	// Htpasswd is an htpasswd file of bcrypt entries: HTTP basic auth.
	Htpasswd string `toml:"htpasswd"`
	// Token, when set, makes the server ask for bearer tokens (docker's
	// token specification) issued by its own token endpoint, which
	// checks the client's credentials against Htpasswd.
	Token *TokenConfig `toml:"token"`
	// Access rules say who may do what on which repositories; with no
	// rules every authenticated user may pull, push and delete everywhere.
	Access []AccessRule `toml:"access"`
}

// TokenConfig configures the bearer-token issuer served by berth.
type TokenConfig struct {
	Realm      string        `toml:"realm"`      // the token endpoint's URL as clients reach it
	Service    string        `toml:"service"`    // the service name in challenges and tokens
	Issuer     string        `toml:"issuer"`     // the tokens' iss claim
	Key        string        `toml:"key"`        // PEM private key signing the tokens (generated and kept when the file is missing)
	Expiration time.Duration `toml:"expiration"` // token lifetime; 5 minutes when 0
}

// AccessRule grants Actions on the repositories matching Repository (a
// path.Match pattern, "*" for all) to Users ("*" for any authenticated
// user, "anonymous" for requests without credentials).
type AccessRule struct {
	Repository string   `toml:"repository"`
	Users      []string `toml:"users"`
	Actions    []string `toml:"actions"`
}
