// Package testregistry starts real OCI distribution registries on
// 127.0.0.1 for berth's pull and push tests, and a fault-injecting proxy
// to put in front of them.
//
// A registry is Debian's docker-registry (distribution 2.8,
// /usr/bin/docker-registry) serving from a filesystem store under the
// test's temporary directory, started by [Start] on a free port and
// killed in t.Cleanup. Tests fail, not skip, when the binary is missing:
// install Debian's docker-registry (and skopeo, which [Registry.Seed] and
// [Registry.ManifestDigest] use).
//
// [Options] picks what the registry asks of a client:
//
//   - nothing: plain HTTP, anonymous pull and push.
//   - TLS: HTTPS with a certificate for 127.0.0.1 and localhost, signed by
//     a throwaway ECDSA P-256 CA. [Registry.CAFile] is that CA's PEM and
//     [Registry.CertsDir] a docker certs.d-style directory holding it as
//     CertsDir/Host/ca.crt.
//   - Basic: htpasswd basic auth for [Registry.Username] ("berth") with a
//     random [Registry.Password].
//   - Token: the bearer token flow. The registry's challenge names a token
//     endpoint served by this package (HTTPS under the same CA when TLS is
//     set, plain HTTP otherwise) that checks the same basic credentials and
//     hands out ES256 JWTs carrying the requested repository scopes, with
//     an x5c header whose certificate the registry trusts through its
//     rootcertbundle. Tokens say they expire after Options.TokenTTL; note
//     that distribution accepts a token for 60s past its exp (clock-skew
//     leeway), so an expired token is not refused at once: a client must
//     refresh from expires_in, not wait for a 401. What the endpoint was
//     asked is in [Registry.TokenRequests].
//
// [StartProxy] puts a plain-HTTP reverse proxy in front of a plain-HTTP
// registry that can cut blob downloads short, answer them with an error
// status (for retry and Retry-After tests) or corrupt them (for digest
// verification), and records every request it saw, Range header included,
// so a test can check that a client resumed.
package testregistry
