package metadata

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mattn/go-sqlite3"
	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// The kinds of resource a lease protects.
const (
	// ResourceContent is a blob, keyed by its digest. Garbage collection
	// also keeps what the blob references, if it is an index, a manifest
	// or a config.
	ResourceContent = "content"
	// ResourceSnapshot is a snapshot, keyed by its key (a committed
	// layer's chain ID). Its parents are kept too.
	ResourceSnapshot = "snapshot"
	// ResourceIngest is an in-progress write of the content store, keyed
	// by its ref.
	ResourceIngest = "ingest"
)

// Lease protects content, snapshots and ingests from garbage collection
// while an operation (a pull, an unpack, an import) builds an image.
type Lease struct {
	ID        string
	CreatedAt time.Time
	// ExpiresAt is when garbage collection stops honouring the lease and
	// removes it; zero for a lease that never expires.
	ExpiresAt time.Time
	// Owner is the process the lease dies with (see WithOwner), nil for
	// a lease that lives until it expires or is deleted.
	Owner     *Owner
	Resources []Resource
}

// Resource is one thing a lease protects.
type Resource struct {
	Kind string // ResourceContent, ResourceSnapshot or ResourceIngest
	Key  string // digest, snapshot key or ingest ref
}

// Expired reports whether garbage collection no longer honours the lease
// at time now: it is past its expiry, or its owner process is gone. It is
// the one test of a lease's life, for AddLeaseResource and for garbage
// collection alike. Finding out about the owner reads /proc.
func (l Lease) Expired(now time.Time) bool {
	if !l.ExpiresAt.IsZero() && !now.Before(l.ExpiresAt) {
		return true
	}
	return l.Owner != nil && !l.Owner.Alive()
}

// LeaseOpt sets an optional property of a lease created by CreateLease.
type LeaseOpt func(*leaseOptions) error

type leaseOptions struct {
	owner *Owner
}

// WithOwner makes the calling process the lease's owner: once the process
// has exited (however it ended, SIGKILL included) the lease counts as
// expired, and the next garbage collection removes it and what only it
// protected, instead of waiting for its ttl. The process is recorded by
// pid and start time, so a new process that reuses the pid does not keep
// the lease alive. Every process using the store must see the same pid
// namespace (/proc), as berth's processes on one host do.
func WithOwner() LeaseOpt {
	return func(o *leaseOptions) error {
		self, err := selfOwner()
		if err != nil {
			return fmt.Errorf("lease owner: %w", err)
		}
		o.owner = &self
		return nil
	}
}

// CreateLease creates the lease id, expiring ttl from now (never, for ttl
// 0), with the options opts. It returns an error wrapping
// ErrAlreadyExists if id is taken.
func (db *DB) CreateLease(ctx context.Context, id string, ttl time.Duration, opts ...LeaseOpt) error {
	if id == "" {
		return errors.New("create lease: empty id")
	}
	if ttl < 0 {
		return fmt.Errorf("create lease %q: negative ttl %s", id, ttl)
	}
	var o leaseOptions
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return fmt.Errorf("create lease %q: %w", id, err)
		}
	}
	now := db.now()
	var expires, ownerPID, ownerStart any // NULL: never, none
	if ttl > 0 {
		expires = now.Add(ttl).UnixNano()
	}
	if o.owner != nil {
		// SQLite integers are signed 64-bit; clock ticks fit.
		ownerPID, ownerStart = o.owner.PID, int64(o.owner.Start)
	}
	err := db.update(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO leases (id, created_at, expires_at, owner_pid, owner_start) VALUES (?, ?, ?, ?, ?)`,
			id, now.UnixNano(), expires, ownerPID, ownerStart)
		return err
	})
	if isConstraint(err) {
		return fmt.Errorf("lease %q: %w", id, ErrAlreadyExists)
	}
	if err != nil {
		return fmt.Errorf("create lease %q: %w", id, err)
	}
	return nil
}

// AddLeaseResource adds a resource (kind ResourceContent, ResourceSnapshot
// or ResourceIngest, and its key) to the lease leaseID. Adding one twice is
// not an error. It waits while garbage collection runs (see the package
// documentation): once it returns, no collection deletes the resource
// until the lease is deleted or expires, so the caller may then check that
// the resource exists, or create it. It returns an error wrapping
// ErrNotFound if the lease does not exist and ErrExpired if it has expired.
func (db *DB) AddLeaseResource(ctx context.Context, leaseID, kind, key string) error {
	if err := checkResource(kind, key); err != nil {
		return fmt.Errorf("lease %q: %w", leaseID, err)
	}
	unlock, err := db.lockGC(ctx, unix.LOCK_SH)
	if err != nil {
		return fmt.Errorf("lease %q: add %s %s: %w", leaseID, kind, key, err)
	}
	defer unlock()
	err = db.update(ctx, func(tx *sql.Tx) error {
		l, err := scanLease(tx.QueryRowContext(ctx, `SELECT `+leaseColumns+` FROM leases WHERE id = ?`, leaseID))
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if l.Expired(db.now()) {
			return ErrExpired
		}
		_, err = tx.ExecContext(ctx, `INSERT OR IGNORE INTO lease_resources (lease_id, kind, key) VALUES (?, ?, ?)`, leaseID, kind, key)
		return err
	})
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrExpired) {
		return fmt.Errorf("lease %q: %w", leaseID, err)
	}
	if err != nil {
		return fmt.Errorf("lease %q: add %s %s: %w", leaseID, kind, key, err)
	}
	return nil
}

// checkResource validates a resource's kind and key.
func checkResource(kind, key string) error {
	switch kind {
	case ResourceContent:
		if _, err := digest.Parse(key); err != nil {
			return fmt.Errorf("content resource %q: %w", key, err)
		}
	case ResourceSnapshot, ResourceIngest:
		if key == "" {
			return fmt.Errorf("%s resource: empty key", kind)
		}
	default:
		return fmt.Errorf("unknown resource kind %q", kind)
	}
	return nil
}

// DeleteLease deletes the lease id and its resources, which garbage
// collection may then remove unless something else references them. It
// returns an error wrapping ErrNotFound if there is no such lease.
func (db *DB) DeleteLease(ctx context.Context, id string) error {
	return db.deleteRow(ctx, `DELETE FROM leases WHERE id = ?`, "lease", id)
}

// ListLeases returns every lease, expired or not, with its resources,
// sorted by id.
func (db *DB) ListLeases(ctx context.Context) ([]Lease, error) {
	var leases []Lease
	err := db.view(ctx, func(tx *sql.Tx) error {
		var err error
		leases, err = readLeases(ctx, tx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list leases: %w", err)
	}
	return leases, nil
}

// leaseColumns are the columns scanLease reads.
const leaseColumns = `id, created_at, expires_at, owner_pid, owner_start`

// scanLease reads a lease, without its resources, from a row of
// leaseColumns.
func scanLease(row interface{ Scan(...any) error }) (Lease, error) {
	var (
		l                Lease
		created          int64
		expires, pid, st sql.NullInt64
	)
	if err := row.Scan(&l.ID, &created, &expires, &pid, &st); err != nil {
		return Lease{}, err
	}
	l.CreatedAt = time.Unix(0, created)
	if expires.Valid {
		l.ExpiresAt = time.Unix(0, expires.Int64)
	}
	if pid.Valid {
		l.Owner = &Owner{PID: int(pid.Int64), Start: uint64(st.Int64)}
	}
	return l, nil
}

// readLeases reads every lease and its resources within tx.
func readLeases(ctx context.Context, tx *sql.Tx) ([]Lease, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+leaseColumns+` FROM leases ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var leases []Lease
	index := map[string]int{}
	for rows.Next() {
		l, err := scanLease(rows)
		if err != nil {
			return nil, err
		}
		index[l.ID] = len(leases)
		leases = append(leases, l)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()

	res, err := tx.QueryContext(ctx, `SELECT lease_id, kind, key FROM lease_resources ORDER BY lease_id, kind, key`)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	for res.Next() {
		var id string
		var r Resource
		if err := res.Scan(&id, &r.Kind, &r.Key); err != nil {
			return nil, err
		}
		if i, ok := index[id]; ok {
			leases[i].Resources = append(leases[i].Resources, r)
		}
	}
	return leases, res.Err()
}

// isConstraint reports whether err is an SQLite constraint violation.
func isConstraint(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && se.Code == sqlite3.ErrConstraint
}
