// Package content is berth's content-addressed blob store on disk.
//
// Every blob is addressed by its digest and verified (size and digest)
// before it becomes visible. The layout under the store's root is:
//
//	blobs/<alg>/<hex>        committed blobs, read-only (0444) files
//	ingest/<sha256(ref)>/    one in-progress write per caller ref:
//	    data                 the bytes written so far
//	    status.json          ref, expected digest and size, offset, times
//	ingest/.new-*, .del-*    staging and removal of ingest directories
//
// Only sha256 and sha512 digests are accepted; any other algorithm, and any
// malformed digest, is refused with an error wrapping ErrInvalidDigest that
// names the digest.
//
// # Visibility and atomicity
//
// A blob appears under blobs/ only through an atomic rename (renameat2 with
// RENAME_NOREPLACE, or link(2) where the file system lacks it) of a fully
// written, verified and fsynced ingest file, so a reader never sees a
// partial blob: until Commit returns, Info and ReaderAt report ErrNotFound.
//
// An ingest directory is created fully formed (status.json and an empty
// data file in a staging directory, then renamed into place) and removed
// by first renaming it out of the way, so a directory named after a ref is
// always complete. A Writer holds an exclusive flock(2) on its ingest
// directory; a second Writer, Abort or Commit for the same ref, in this or
// another process, gets ErrLocked. The lock dies with the process, so after
// a crash the ingest is reported by ListIngests as not locked and can be
// resumed (Writer with the same ref) or removed (Abort).
//
// # Races
//
// Two writers committing the same content (under different refs)
// concurrently both succeed: the first rename wins, the second finds the
// blob present and Commit returns nil after dropping its ingest. Commit
// returns nil whenever, at the moment it returns, a blob with the verified
// digest is present, whether this writer or another put it there. Writer,
// by contrast, returns ErrAlreadyExists when the expected blob is already
// committed, so callers can skip a download; Ingest treats that as success.
//
// Delete unlinks the blob: readers that already hold it open keep reading
// the full, intact content (Linux keeps the inode until the last close).
// Delete is not ordered against a concurrent Commit of the same digest: if
// the Commit's rename lands first, Delete removes the new blob and the
// committer's nil result is already stale; if Delete runs first, the Commit
// re-creates the blob. Either way the blob is whole or absent, never
// partial. Deciding what may be deleted (garbage collection, leases) is the
// job of the metadata layer above this package, which must serialize
// Delete against commits it cares about.
package content
