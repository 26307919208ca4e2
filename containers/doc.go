// Package containers holds the engine's record of a container: what the
// user asked for, in docker's own types (container.Config and
// container.HostConfig of github.com/moby/moby/api, so that inspect and
// the Docker API speak docker's shape without conversion), and the state
// berth keeps about it. The records live in the store's database
// (metadata); this package has no I/O of its own.
package containers
