// Package metadata is berth's metadata database: the names of images and
// the leases that protect work in progress, and the garbage collection that
// deletes the content and snapshots nothing references any more, in the
// manner of containerd's metadata package.
//
// # Database
//
// The metadata lives in one SQLite database file (with its -wal and -shm
// files beside it) in WAL mode, shared by every berth process using the
// store: berth is daemonless. Readers never wait for a writer and see a
// consistent snapshot; writers take the database's write lock at the start
// of their transaction (BEGIN IMMEDIATE) and, while another process holds
// it, wait up to 10 s in SQLite's busy handler rather than fail with
// SQLITE_BUSY. Within one process writes go through a single connection and
// queue in database/sql. Transactions are atomic and durable
// (synchronous=FULL): a process killed in the middle of one leaves the
// database as it was before it. Closing does not checkpoint the log into
// the file (SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE): the log stays, and a commit
// that finds it past 128 pages checkpoints it, so a short berth command
// does not pay a checkpoint's fsyncs at its exit and the next one's first
// connection has at most that much log to read.
//
// The schema is versioned (table schema_version); Open applies the missing
// migrations in one transaction and refuses a database whose version is
// newer than this berth knows (ErrSchemaTooNew). Open holds an exclusive
// flock(2) on <db>.open-lock while it connects and checks the schema: SQLite
// fails at once with "database is locked", without its busy handler, when
// processes race to create a new file and switch it to WAL. A current
// schema costs Open one read, never the write lock.
//
// # Leases and garbage collection
//
// CollectGarbage keeps what an image references (from each image's target:
// index, manifests, configs, layers, and the committed snapshots named by
// the layers' chain IDs), what a live lease names, the active and view
// snapshots (but those labelled with a dead lease, below), and the parents
// of kept snapshots; it deletes the rest. Something being built is not
// referenced by an image yet, so a process that builds an image (pull,
// import, unpack) follows this protocol:
//
//  1. CreateLease, with a ttl longer than the operation will take, and
//     WithOwner when the lease should die with the process (a command
//     line's load or import: if it is killed, the next collection frees
//     its work at once rather than after the ttl).
//  2. AddLeaseResource for each blob (by digest), snapshot (by key: the
//     chain ID it will be committed as) and ingest (by ref) it is going to
//     write or rely on, BEFORE it checks whether that already exists and
//     before it writes it. A blob whose digest is unknown until written is
//     protected by its ingest ref while it is written, and its digest is
//     added as content before the Writer's Commit.
//  3. Write the content, unpack the snapshots. An active snapshot prepared
//     for an unpack ("extract-<lease>-<chain ID>") carries the label
//     LeaseLabel with the lease's id, and is prepared after step 2 has
//     added at least one resource.
//  4. PutImage.
//  5. DeleteLease.
//
// A lease is live until it expires or, if it has an owner, until its owner
// process is gone (Lease.Expired); a collection deletes the leases that
// are not live, then removes the snapshots labelled with them and aborts
// the ingests they named (unless a Writer holds one), without waiting for
// IngestGracePeriod.
//
// The file <db>.gc-lock next to the database orders collections against
// step 2: CollectGarbage holds an exclusive flock(2) on it from before it
// reads its roots until its sweep has ended, and AddLeaseResource holds a
// shared flock on it around its transaction, so it waits while a collection
// runs (other operations, including PutImage and DeleteLease, never wait).
//
// Why a collection G never deletes a resource R that a writer W relies on:
// the two locks exclude each other, so either W's AddLeaseResource committed
// before G took its lock, or G had finished sweeping before W's
// AddLeaseResource began. In the second case G is over before W looks at or
// writes R. In the first, G reads its roots after R's lease entry committed,
// so R is a root. In any later collection, R stays reachable: G' reads the
// images and the leases in one read transaction, a consistent snapshot, and
// W records the image before it deletes the lease, so G' sees the lease
// (not yet deleted) or the image (already recorded), never neither. A
// snapshot's parents are kept with it. Active snapshots without LeaseLabel
// (a container's root) are always kept; one with the label is kept while
// its lease is live: W prepares it after an AddLeaseResource of its lease,
// so by the argument above a collection that sees the snapshot also sees
// the lease (and if it saw no such lease, the snapshot is older than the
// collection's roots and the lease was deleted). Flocks die with their
// process, so a killed writer or collector never blocks the others.
//
// What the protocol does not cover is not protected: content written with
// no lease can be deleted by a concurrent collection (there is no grace
// period for blobs), and so can the resources of a lease that expired
// before its operation ended (or whose owner died: the work is abandoned).
// Ingests are the exception, as they are work in progress by nature: one
// held by a Writer (in any process) is never removed, nor one that a live
// lease names, nor one written to within the last IngestGracePeriod unless
// a dead lease named it.
package metadata
