// Package events is berth's event journal: the record of what happened to
// containers, images and volumes, as docker's `events` reports it.
//
// berth has no daemon to broadcast events, so each berth process that
// makes a change appends the event to a journal file shared by every
// process on the store (podman's "file" events backend works the same
// way). An event is one JSON line (docker's events.Message) written with a
// single write on a file opened O_APPEND, so lines of concurrent writers
// never interleave. When the file grows past a size cap it is rotated,
// under an exclusive flock that appenders hold shared, to one previous
// generation.
package events
