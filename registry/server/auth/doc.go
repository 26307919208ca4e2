// Package auth authenticates and authorizes the requests of berth's
// registry server (package server): HTTP basic auth against an htpasswd
// file of bcrypt entries, or bearer tokens as docker's token
// specification describes them, issued by a token endpoint of the
// server itself (TokenHandler) and verified on every request.
//
// Package auth imports package server for the seam's types, so package
// server cannot import it: whoever builds the server (berth registry
// serve) wires it, when the configuration has an htpasswd file or a
// token section:
//
//	a, err := auth.New(cfg.Auth, auth.WithLogger(logger))
//	// the Authorizer of every /v2/ endpoint, and in token mode the
//	// token endpoint, served at auth.TokenPath (or the configured
//	// realm's path):
//	authorizer, tokenHandler := server.Authorizer(a), a.TokenHandler()
//
// What a user may do is the union of the access rules (server.AccessRule)
// that match the repository and the user; rules for "anonymous" also
// apply to authenticated users. With no rules every authenticated user
// may do everything and anonymous requests nothing. The catalog
// (registry:catalog:*) is for those who may pull every repository.
//
// The htpasswd file is read again when it changes (looked at once a
// second at most), so users are added and removed without a restart; a
// file that no longer parses leaves the users as they were, logged. A
// token already issued stays valid until it expires (5 minutes unless
// configured), whatever happens to the file; refresh tokens (docker
// login's identity tokens) are void once the user's password changes.
//
// The token signing key is kept in a PEM file, generated (ECDSA P-256)
// when it does not exist, so that tokens outlive a restart of the
// server. Tokens carry the key's ID in libtrust's form in their "kid"
// header, as docker's distribution does.
package auth
