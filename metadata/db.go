package metadata

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

var (
	// ErrNotFound is returned (wrapped, naming the object) when an image or
	// a lease does not exist.
	ErrNotFound = errors.New("metadata: not found")
	// ErrAlreadyExists is returned (wrapped) when a lease id is taken.
	ErrAlreadyExists = errors.New("metadata: already exists")
	// ErrExpired is returned (wrapped) when a resource is added to a lease
	// past its expiry or whose owner process is gone (Lease.Expired):
	// garbage collection no longer honours it.
	ErrExpired = errors.New("metadata: lease expired")
	// ErrSchemaTooNew is returned (wrapped) by Open for a database written by
	// a newer berth, whose schema this berth does not know.
	ErrSchemaTooNew = errors.New("metadata: database schema is newer than this berth supports")
)

// busyTimeout is how long a connection waits for another connection's (or
// process's) lock before SQLite reports SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// maxReaders caps the read connections of one DB. In WAL mode readers never
// wait for the writer, so a few connections serve concurrent lookups.
const maxReaders = 4

// DB is berth's metadata database: image records and leases, stored in
// SQLite in WAL mode. It is safe for concurrent use by many goroutines and
// by many processes opening the same file.
type DB struct {
	path string
	// w runs every write transaction, on one connection, with BEGIN
	// IMMEDIATE: writers of this process queue in database/sql, writers of
	// other processes wait in SQLite's busy handler.
	w *sql.DB
	// r runs reads (autocommit statements and deferred read transactions),
	// which in WAL mode see a consistent snapshot and never wait for a
	// writer.
	r *sql.DB
	// now is the clock (tests move it).
	now func() time.Time
}

// Open opens the metadata database at path, creating it (and its directory)
// if needed, and brings its schema up to date. A database whose schema is
// newer than this berth knows is refused with an error wrapping
// ErrSchemaTooNew.
func Open(path string) (*DB, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open metadata %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("open metadata %s: %w", abs, err)
	}
	// Opening the first connection (which may create the file and switch
	// it to WAL) and migrating are done by one process at a time: SQLite
	// reports "database is locked" without waiting when processes race to
	// create and convert a new file. The lock is held for milliseconds,
	// so waiting for it is bounded by the busy timeout too.
	ctx, cancel := context.WithTimeout(context.Background(), busyTimeout)
	defer cancel()
	unlock, err := lockFile(ctx, abs+".open-lock", unix.LOCK_EX)
	if err != nil {
		return nil, fmt.Errorf("open metadata %s: %w", abs, err)
	}
	defer unlock()
	if err := noCheckpointOnClose(); err != nil {
		return nil, fmt.Errorf("open metadata %s: %w", abs, err)
	}
	w, err := sql.Open(driverName, dsn(abs, false))
	if err != nil {
		return nil, fmt.Errorf("open metadata %s: %w", abs, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	db := &DB{path: abs, w: w, now: time.Now}
	if err := db.migrate(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("open metadata %s: %w", abs, err)
	}
	// The read pool is opened after the first write connection has put
	// the file in WAL mode (journal_mode is persistent).
	r, err := sql.Open(driverName, dsn(abs, true))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open metadata %s: %w", abs, err)
	}
	r.SetMaxOpenConns(maxReaders)
	r.SetMaxIdleConns(maxReaders)
	db.r = r
	return db, nil
}

// dsn returns the go-sqlite3 data source name of the database file path:
// a file: URI (so that any path is escaped) with the driver's options.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(busyTimeout.Milliseconds()))
	q.Set("_foreign_keys", "on")
	if readOnly {
		// query_only refuses writes on these connections; the file
		// is already in WAL mode.
		q.Set("_query_only", "true")
	} else {
		q.Set("_journal_mode", "WAL")
		// FULL: a committed transaction survives a power loss, not
		// only a process crash.
		q.Set("_synchronous", "FULL")
		// BEGIN IMMEDIATE takes the write lock at the start of the
		// transaction, waiting through the busy handler; a deferred
		// transaction would fail with SQLITE_BUSY when upgrading
		// from read to write while another process writes.
		q.Set("_txlock", "immediate")
	}
	u := url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}
	return u.String()
}

// Path returns the database file's absolute path.
func (db *DB) Path() string { return db.path }

// Close closes the database's connections.
func (db *DB) Close() error {
	var errs []error
	if db.r != nil {
		errs = append(errs, db.r.Close())
	}
	errs = append(errs, db.w.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close metadata %s: %w", db.path, err)
	}
	return nil
}

type volatileKey struct{}

// Volatile returns a context whose write transactions commit without
// waiting for the disk (SQLite's synchronous=NORMAL in WAL mode): they
// are atomic and survive a crash of the process, as every transaction
// does, but a power loss or a crash of the host may undo the last of
// them. For records that do not outlive the host anyway, such as those
// of --rm containers: it spares each an fsync of the log (about a
// millisecond on a virtual disk), and a later durable commit makes them
// durable too.
func Volatile(ctx context.Context) context.Context {
	return context.WithValue(ctx, volatileKey{}, true)
}

func isVolatile(ctx context.Context) bool {
	v, _ := ctx.Value(volatileKey{}).(bool)
	return v
}

// update runs fn in a write transaction (BEGIN IMMEDIATE) and commits it,
// or rolls it back if fn fails. The transaction is durable (commits once
// on disk) unless ctx is Volatile.
func (db *DB) update(ctx context.Context, fn func(*sql.Tx) error) error {
	if !isVolatile(ctx) {
		tx, err := db.w.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("begin write transaction: %w", err)
		}
		return commit(tx, fn)
	}
	// The level is the connection's, and SQLite changes it only
	// outside a transaction: set for this one on the (only) write
	// connection, and set back before another transaction can use it.
	conn, err := db.w.Conn(ctx)
	if err != nil {
		return fmt.Errorf("begin write transaction: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA synchronous = NORMAL"); err != nil {
		return fmt.Errorf("begin write transaction: %w", err)
	}
	defer func() {
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), "PRAGMA synchronous = FULL"); err != nil {
			// A connection left at NORMAL would commit the next
			// durable transactions without syncing: drop it.
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin write transaction: %w", err)
	}
	return commit(tx, fn)
}

// commit runs fn in tx and commits it, or rolls it back if fn fails.
func commit(tx *sql.Tx, fn func(*sql.Tx) error) error {
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// view runs fn in a read transaction: every statement of fn sees the same
// snapshot of the database.
func (db *DB) view(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.r.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin read transaction: %w", err)
	}
	defer tx.Rollback()
	return fn(tx)
}
