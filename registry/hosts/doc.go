// Package hosts decides where and how berth reaches a registry.
//
// It reads a registries.conf in the TOML shape of the containers
// registries.conf version 2:
//
//	unqualified-search-registries = ["docker.io", "quay.io"]
//
//	[[registry]]
//	prefix = "example.com/foo"          # optional, defaults to location
//	location = "internal.mirror:5000/foo"
//	insecure = true
//	blocked = false
//
//	[[registry.mirror]]
//	location = "mirror.local:5000"
//	insecure = true
//
// Only these keys are understood; any other key is an error that names it,
// so that a setting berth would silently ignore is noticed.
//
// # Endpoints
//
// [Config.Endpoints] turns a normalized registry domain and repository path
// into the list of endpoints to try, in order. The [[registry]] entry whose
// prefix is the longest match of "domain/path" (on whole path components)
// applies: its location replaces the prefix, so both the host and the
// repository path may change. A pull tries the entry's mirrors first, in the
// order written, then the location; a push only ever goes to the location.
// A blocked entry refuses both with an error wrapping [ErrBlocked].
//
// docker.io is reached at registry-1.docker.io, as docker does, and
// one-component repositories there live under library/. Hosts on the
// loopback interface (127.0.0.0/8, ::1 and "localhost", with any port) are
// insecure by default, again as docker does; others only when configured.
//
// # Certificates
//
// Each endpoint carries a tls.Config built from docker's certs.d layout: for
// host "h:p", every directory DIR/h:p/ in [Config.CertsDirs] may hold
//
//	*.crt            CA certificates, added to a copy of the system pool
//	NAME.cert        a client certificate, with its key in NAME.key
//
// A certificate without its key, or a key without its certificate, is an
// error that names the file. The tls.Config of a host is built once per
// [Config] and cached there.
//
// # Short names
//
// [Config.Qualify] expands a name without a registry ("busybox",
// "user/app") into the fully qualified candidates from
// unqualified-search-registries, docker.io alone when the list is empty.
package hosts
