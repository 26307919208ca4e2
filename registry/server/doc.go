// Package server is berth's registry server: the OCI distribution
// specification v1.1 over berth's content-store format.
//
// New opens a Server (an http.Handler) on a storage root; Serve runs it on
// a listener with timeouts against slow clients and a graceful shutdown;
// LoadConfigFile reads the TOML config of `berth registry serve`; GC
// deletes unreferenced blobs.
//
// # Endpoints
//
// Every endpoint of the spec: GET /v2/; manifests GET, HEAD, PUT, DELETE
// by tag and digest (Docker schema2 and OCI manifests and indexes; schema1
// refused; subject and OCI-Subject; ?tag= on a push by digest); blobs
// GET and HEAD with Range, DELETE; uploads POST (session, single POST with
// ?digest=, cross-repository mount with fallback to a session), PATCH
// chunks with Content-Range (416 out of order), GET status, PUT ?digest=,
// DELETE; tags list and /v2/_catalog with n, last and Link; referrers with
// the artifactType filter. /metrics serves Prometheus text, /token the
// configured token handler. Every 4xx carries the spec's JSON error body.
//
// # Storage
//
//	ROOT/content/                   berth's content store (package content):
//	                                every blob and manifest, and the ingests
//	                                of uploads in progress
//	ROOT/repositories/<name>/
//	    _layers/<alg>/<hex>         blobs of the repository (empty files)
//	    _manifests/revisions/<alg>/<hex>
//	                                manifests of the repository (the file
//	                                holds the media type)
//	    _manifests/tags/<tag>       tags (the file holds the digest)
//	    _referrers/<alg>/<hex>/<alg>-<hex>
//	                                descriptors (JSON) of the manifests whose
//	                                subject is <alg>:<hex>
//	ROOT/uploads/<id>.json          upload sessions (repository, start); the
//	                                bytes are the ingest registry-upload-<id>
//
// Blobs become visible only through the content store's verified, atomic
// commit; link, tag and referrer files are written to a temporary file and
// renamed. An upload's bytes are a content-store ingest, so a server
// restarted on the same root continues it. Reads take no lock shared
// between requests; an upload session is locked by the request using it.
//
// # Pull-through cache (mirror)
//
// With Config.Mirror ([mirror] upstream = URL, or `registry serve
// --mirror URL`) the server is a read-only cache of one upstream
// registry, as distribution's proxy mode and docker's registry mirrors
// (a docker client's mirror for docker.io asks for library/busybox;
// names are kept as given). GET and HEAD of a manifest or blob are
// answered from the store when it holds them; otherwise berth's registry
// client (bearer or basic auth from the upstream's challenge, retries,
// Range resume) fetches them, the digest is verified and the content
// committed to the store, linked into the repository (and tagged) and
// served. A blob goes to the client that asked for it while it is written
// to the store; the last bytes wait for the digest's verification, and a
// mismatch cuts the connection, so no client gets a complete unverified
// blob and nothing unverified is stored. Concurrent requests for one
// missing blob share one download (keyed by digest); a client that leaves
// does not stop it; a broken download's bytes stay in its ingest
// (registry-mirror-<digest>) and the next request resumes it.
//
// Digests never change, so a stored manifest or blob is never asked for
// again. A tag is trusted for MirrorConfig.TTL after it was fetched or
// revalidated (the tag file's modification time records when); then a
// HEAD asks the upstream, and the manifest is fetched only when the tag
// moved. When the upstream cannot answer, a cached tag is served stale
// with a warning; when it says the tag is gone, the cache drops it.
// Upstream errors map to the spec's: 404 to MANIFEST_UNKNOWN or
// BLOB_UNKNOWN, a refused login to 401 UNAUTHORIZED, 429 to
// TOOMANYREQUESTS, an unreachable upstream to 503 and a failing one (5xx,
// content that does not match its digest) to 502, code UNAVAILABLE, the
// message naming the upstream.
//
// Pushes and deletes get 405 UNSUPPORTED. The tags list, the catalog and
// the referrers API show what is cached, not the upstream's full lists.
// GC works on the cache as on any root: cached manifests keep their
// blobs; blobs fetched on their own are deleted after the grace period.
package server
