// Package snapshot implements berth's snapshotters, in the manner of
// containerd's snapshots API: a snapshot is a directory tree; image layers
// are committed snapshots named by their chain ID (a layer shared by many
// images is stored once); a container's root is an active (writable)
// snapshot prepared on its image's top layer.
//
// Snapshotters only describe mounts, as runtime-spec Mount values (type,
// source, options; Destination unused): Prepare, View and Mounts never
// mount anything. MountAll performs them on a target directory.
//
// # Layout
//
// Under a snapshotter's root:
//
//	lock                    flock(2)ed by every operation
//	last-id                 the last snapshot id allocated
//	overlay-supported       overlay only: the test mount worked here
//	snapshots/<id>/fs       the snapshot's tree (overlay: its changes only)
//	snapshots/<id>/work     overlay work directory of an active snapshot
//	snapshots/<id>/info.json  the snapshot's record (key, kind, parent, ...)
//	snapshots/<id>/volatile.json  or, unsynced, that of a snapshot prepared
//	                        WithVolatileRecord (a --rm container's layer)
//
// Ids are decimal numbers never reused, which keeps overlay's lowerdir
// lists short; only a volatile snapshot's id, never recorded in last-id,
// may be given again once that snapshot is removed.
//
// # Concurrency
//
// berth is daemonless: many processes may use one root at once. Prepare,
// View, Commit and Remove hold an exclusive flock on root/lock for their
// whole duration (ids are allocated under it); Stat, Walk, Mounts and Usage
// hold it shared. Records live behind a small internal interface
// (metaStore) so that they can move to the engine's database.
//
// # Crash safety
//
// Every record is written atomically (temporary file, fsync, rename,
// fsync of the directory), but for a volatile one (temporary file and
// rename, nothing synced: a crash of the host may tear it, and its
// snapshot is then an orphan). Prepare creates the snapshot directory, then
// writes the record: the record is what makes the snapshot exist. Commit
// keeps the snapshot's id and directory and replaces its record in one
// rename, so after a crash either the active snapshot or the committed
// one exists, never neither or both. Remove deletes the record, then the
// files. Directories without a record, left by a crash in Prepare or
// Remove, are removed when a snapshotter is next opened on the root.
package snapshot
