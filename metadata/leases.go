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
	Resources []Resource
}

// Resource is one thing a lease protects.
type Resource struct {
	Kind string // ResourceContent, ResourceSnapshot or ResourceIngest
	Key  string // digest, snapshot key or ingest ref
}

// Expired reports whether the lease is past its expiry at time now.
func (l Lease) Expired(now time.Time) bool {
	return !l.ExpiresAt.IsZero() && !now.Before(l.ExpiresAt)
}

// CreateLease creates the lease id, expiring ttl from now (never, for ttl
// 0). It returns an error wrapping ErrAlreadyExists if id is taken.
func (db *DB) CreateLease(ctx context.Context, id string, ttl time.Duration) error {
	if id == "" {
		return errors.New("create lease: empty id")
	}
	if ttl < 0 {
		return fmt.Errorf("create lease %q: negative ttl %s", id, ttl)
	}
	now := db.now()
	var expires any // NULL: never
	if ttl > 0 {
		expires = now.Add(ttl).UnixNano()
	}
	err := db.update(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO leases (id, created_at, expires_at) VALUES (?, ?, ?)`, id, now.UnixNano(), expires)
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
		var expires sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT expires_at FROM leases WHERE id = ?`, leaseID).Scan(&expires)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		if expires.Valid && db.now().UnixNano() >= expires.Int64 {
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

// readLeases reads every lease and its resources within tx.
func readLeases(ctx context.Context, tx *sql.Tx) ([]Lease, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, created_at, expires_at FROM leases ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var leases []Lease
	index := map[string]int{}
	for rows.Next() {
		var (
			l       Lease
			created int64
			expires sql.NullInt64
		)
		if err := rows.Scan(&l.ID, &created, &expires); err != nil {
			return nil, err
		}
		l.CreatedAt = time.Unix(0, created)
		if expires.Valid {
			l.ExpiresAt = time.Unix(0, expires.Int64)
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
