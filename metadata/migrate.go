package metadata

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations are the schema's versions, in order: migrations[i] holds the
// statements that take a database from version i to version i+1. A release
// only ever appends to this list; a shipped entry never changes.
var migrations = [][]string{
	// 1: images and leases.
	{
		`CREATE TABLE images (
			name          TEXT PRIMARY KEY NOT NULL,
			target        TEXT NOT NULL,  -- the descriptor, JSON
			target_digest TEXT NOT NULL,
			labels        TEXT NOT NULL,  -- JSON object
			created_at    INTEGER NOT NULL, -- Unix nanoseconds
			updated_at    INTEGER NOT NULL
		) STRICT`,
		`CREATE INDEX images_by_target ON images (target_digest)`,
		`CREATE TABLE leases (
			id         TEXT PRIMARY KEY NOT NULL,
			created_at INTEGER NOT NULL,
			expires_at INTEGER          -- Unix nanoseconds; NULL: never
		) STRICT`,
		`CREATE TABLE lease_resources (
			lease_id TEXT NOT NULL REFERENCES leases (id) ON DELETE CASCADE,
			kind     TEXT NOT NULL CHECK (kind IN ('content', 'snapshot', 'ingest')),
			key      TEXT NOT NULL,
			PRIMARY KEY (lease_id, kind, key)
		) STRICT`,
	},
	// 2: the process owning a lease (see WithOwner), NULL for none:
	// its pid and its start time in clock ticks after boot (field 22 of
	// /proc/<pid>/stat), which tells it from a later process given the
	// same pid.
	{
		`ALTER TABLE leases ADD COLUMN owner_pid INTEGER`,
		`ALTER TABLE leases ADD COLUMN owner_start INTEGER`,
	},
	// 3: containers. The record is the engine's containers.Container as
	// JSON; id, name and image_id are columns for uniqueness and lookups.
	{
		`CREATE TABLE containers (
			id         TEXT PRIMARY KEY NOT NULL,
			name       TEXT NOT NULL UNIQUE,
			image_id   TEXT NOT NULL,
			created_at INTEGER NOT NULL, -- Unix nanoseconds
			record     TEXT NOT NULL     -- JSON
		) STRICT`,
		`CREATE INDEX containers_by_image ON containers (image_id)`,
	},
}

// SchemaVersion is the schema version this berth writes.
func SchemaVersion() int { return len(migrations) }

// migrate brings the schema up to date in one write transaction: the
// version check and every pending migration commit together or not at all,
// and two processes opening a new database at once apply them once.
func (db *DB) migrate(ctx context.Context) error {
	// The common case, a current schema, costs one read and no write
	// lock: opening the store never waits for another process's write.
	var current int
	if err := db.w.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&current); err == nil && current == len(migrations) {
		return nil
	}
	return db.update(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
			version INTEGER NOT NULL
		)`); err != nil {
			return fmt.Errorf("create schema_version: %w", err)
		}
		var n, version int
		if err := tx.QueryRowContext(ctx, `SELECT count(*), coalesce(max(version), 0) FROM schema_version`).Scan(&n, &version); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if n > 1 {
			return fmt.Errorf("schema_version has %d rows, want 1", n)
		}
		if version > len(migrations) {
			return fmt.Errorf("%w: database has version %d, this berth knows up to %d", ErrSchemaTooNew, version, len(migrations))
		}
		if version < 0 {
			return fmt.Errorf("invalid schema version %d", version)
		}
		for v := version; v < len(migrations); v++ {
			for i, stmt := range migrations[v] {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return fmt.Errorf("migrate schema to version %d: statement %d: %w", v+1, i, err)
				}
			}
		}
		if version == len(migrations) {
			return nil
		}
		var err error
		if n == 0 {
			_, err = tx.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (?)`, len(migrations))
		} else {
			_, err = tx.ExecContext(ctx, `UPDATE schema_version SET version = ?`, len(migrations))
		}
		if err != nil {
			return fmt.Errorf("record schema version %d: %w", len(migrations), err)
		}
		return nil
	})
}
