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
package server
