// Package registry is berth's client of the OCI distribution protocol
// (the Docker registry v2 API): manifests and blobs by tag and digest,
// pull with resumable blob downloads, and push with existence checks,
// cross-repository mounts and monolithic or chunked uploads.
//
// A Client holds what is shared by all requests: where each registry is
// reached (Endpoints: mirrors, insecure registries and TLS settings come
// from the registries configuration), the user's credentials, and the
// bearer tokens obtained so far. A Repository is one repository of one
// registry, reached through one or more endpoints (mirrors first when
// pulling).
//
// Authentication follows the registry's challenge: a request is sent as
// it is; on 401 the WWW-Authenticate header says Basic (the credentials
// are sent) or Bearer (a token for the request's scope is fetched from
// the realm, with the credentials if there are any, and cached until it
// expires). Tokens are sent up front on later requests of the same scope.
//
// Transient failures are retried with exponential backoff, honouring
// Retry-After: connection errors, 408, 429, 500, 502, 503, 504. A blob
// download that breaks midway continues with an HTTP Range request from
// the byte where it broke, so the bytes a caller has consumed stay valid.
//
// Every manifest is read with a size cap and checked against the digest
// it was asked by (or the Docker-Content-Digest the registry sent); blobs
// are verified by the caller as they are stored (content.Writer).
package registry
