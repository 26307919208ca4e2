package metadata

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/berth-project/berth/containers"
	digest "github.com/opencontainers/go-digest"
)

// ErrNameInUse is returned (wrapped, naming the container that has it)
// when a container name is taken.
var ErrNameInUse = errors.New("metadata: name in use")

// ErrAmbiguous is returned (wrapped) when an ID prefix matches more than
// one container.
var ErrAmbiguous = errors.New("metadata: ambiguous")

// errAmbiguousText wraps ErrAmbiguous without repeating its text.
var errAmbiguousText = &quietError{ErrAmbiguous}

type quietError struct{ err error }

func (q *quietError) Error() string { return "ambiguous" }
func (q *quietError) Unwrap() error { return q.err }

// CreateContainer records the new container c. Its ID and name must both
// be unused: a taken name gives an error wrapping ErrNameInUse that names
// the container holding it.
func (db *DB) CreateContainer(ctx context.Context, c *containers.Container) error {
	if c.ID == "" || c.Name == "" {
		return errors.New("create container: empty id or name")
	}
	rec, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("create container %s: encode: %w", c.ID, err)
	}
	return db.update(ctx, func(tx *sql.Tx) error {
		var holder string
		err := tx.QueryRowContext(ctx, `SELECT id FROM containers WHERE name = ?`, c.Name).Scan(&holder)
		if err == nil {
			return fmt.Errorf("the container name \"/%s\" is already in use by container %q: %w", c.Name, holder, ErrNameInUse)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("create container %s: %w", c.ID, err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO containers (id, name, image_id, created_at, record) VALUES (?, ?, ?, ?, ?)`,
			c.ID, c.Name, c.ImageID.String(), c.Created.UnixNano(), string(rec))
		if isConstraint(err) {
			return fmt.Errorf("container id %s: %w", c.ID, ErrAlreadyExists)
		}
		if err != nil {
			return fmt.Errorf("create container %s: %w", c.ID, err)
		}
		return nil
	})
}

const containerColumns = `record`

func scanContainer(row interface{ Scan(...any) error }) (*containers.Container, error) {
	var rec string
	if err := row.Scan(&rec); err != nil {
		return nil, err
	}
	c := &containers.Container{}
	if err := json.Unmarshal([]byte(rec), c); err != nil {
		return nil, fmt.Errorf("decode container record: %w", err)
	}
	return c, nil
}

// lookupContainer finds the container ref names: a full ID, a name, or a
// unique ID prefix, in that order, as docker resolves them.
func lookupContainer(ctx context.Context, q querier, ref string) (*containers.Container, error) {
	if ref == "" {
		return nil, &NoSuchContainerError{Ref: ref}
	}
	ref = strings.TrimPrefix(ref, "/")
	c, err := scanContainer(q.QueryRowContext(ctx, `SELECT `+containerColumns+` FROM containers WHERE id = ? OR name = ? ORDER BY id = ? DESC LIMIT 1`, ref, ref, ref))
	if err == nil {
		return c, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("container %s: %w", ref, err)
	}
	if isHexPrefix(ref) {
		rows, err := q.QueryContext(ctx, `SELECT `+containerColumns+` FROM containers WHERE substr(id, 1, ?) = ? LIMIT 2`, len(ref), ref)
		if err != nil {
			return nil, fmt.Errorf("container %s: %w", ref, err)
		}
		defer rows.Close()
		var found []*containers.Container
		for rows.Next() {
			c, err := scanContainer(rows)
			if err != nil {
				return nil, err
			}
			found = append(found, c)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("container %s: %w", ref, err)
		}
		switch len(found) {
		case 1:
			return found[0], nil
		case 2:
			return nil, fmt.Errorf("multiple containers found with provided prefix: %s: %w", ref, errAmbiguousText)
		}
	}
	return nil, &NoSuchContainerError{Ref: ref}
}

// NoSuchContainerError is the error of a container lookup that found
// nothing; it matches ErrNotFound.
type NoSuchContainerError struct{ Ref string }

func (e *NoSuchContainerError) Error() string { return "no such container: " + e.Ref }

// Is reports whether target is ErrNotFound.
func (e *NoSuchContainerError) Is(target error) bool { return target == ErrNotFound }

func isHexPrefix(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') {
			return false
		}
	}
	return true
}

// GetContainer returns the container ref names (ID, name or unique ID
// prefix), or an error wrapping ErrNotFound or ErrAmbiguous.
func (db *DB) GetContainer(ctx context.Context, ref string) (*containers.Container, error) {
	var c *containers.Container
	err := db.view(ctx, func(tx *sql.Tx) error {
		var err error
		c, err = lookupContainer(ctx, tx, ref)
		return err
	})
	return c, err
}

// ListContainers returns every container, oldest first.
func (db *DB) ListContainers(ctx context.Context) ([]*containers.Container, error) {
	var out []*containers.Container
	err := db.view(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+containerColumns+` FROM containers ORDER BY created_at, id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			c, err := scanContainer(rows)
			if err != nil {
				return err
			}
			out = append(out, c)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	return out, nil
}

// UpdateContainer reads the container ref names, lets fn change it and
// writes it back, in one write transaction: concurrent updates from other
// processes are serialized. fn's error aborts the update and is returned.
// fn may change the name (a rename); the ID is fixed.
func (db *DB) UpdateContainer(ctx context.Context, ref string, fn func(*containers.Container) error) (*containers.Container, error) {
	var out *containers.Container
	err := db.update(ctx, func(tx *sql.Tx) error {
		c, err := lookupContainer(ctx, tx, ref)
		if err != nil {
			return err
		}
		id := c.ID
		if err := fn(c); err != nil {
			return err
		}
		c.ID = id
		rec, err := json.Marshal(c)
		if err != nil {
			return fmt.Errorf("update container %s: encode: %w", id, err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE containers SET name = ?, record = ? WHERE id = ?`, c.Name, string(rec), id)
		if isConstraint(err) {
			return fmt.Errorf("the container name \"/%s\" is already in use: %w", c.Name, ErrNameInUse)
		}
		if err != nil {
			return fmt.Errorf("update container %s: %w", id, err)
		}
		out = c
		return nil
	})
	return out, err
}

// DeleteContainer removes the record of container id (a full ID).
func (db *DB) DeleteContainer(ctx context.Context, id string) error {
	return db.deleteRow(ctx, `DELETE FROM containers WHERE id = ?`, "container", id)
}

// ContainersByImage counts the containers of every image ID.
func (db *DB) ContainersByImage(ctx context.Context) (map[digest.Digest]int, error) {
	out := map[digest.Digest]int{}
	err := db.view(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT image_id, count(*) FROM containers GROUP BY image_id`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var n int
			if err := rows.Scan(&id, &n); err != nil {
				return err
			}
			out[digest.Digest(id)] = n
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("count containers by image: %w", err)
	}
	return out, nil
}
