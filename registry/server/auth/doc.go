// Package auth authenticates and authorizes the requests of berth's
// registry server (package server): HTTP basic auth against an htpasswd
// file of bcrypt entries, or bearer tokens as docker's token
// specification describes them, issued by a token endpoint of the
// server itself (TokenHandler) and verified on every request.
//
// What a user may do is the union of the access rules (server.AccessRule)
// that match the repository and the user; rules for "anonymous" also
// apply to authenticated users. With no rules every authenticated user
// may do everything and anonymous requests nothing.
//
// The htpasswd file is read again when it changes, so users are added
// and removed without a restart. The token signing key is kept in a PEM
// file, generated (ECDSA P-256) when it does not exist, so that tokens
// outlive a restart of the server.
package auth
