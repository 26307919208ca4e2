package metadata

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/berth-project/berth/image"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image is a named reference to an image's root blob (an index or a
// manifest) in the content store.
type Image struct {
	// Name is the image's reference ("docker.io/library/busybox:latest").
	Name string
	// Target is the index or manifest the name points to.
	Target ocispec.Descriptor
	// Labels are free-form key/value pairs.
	Labels map[string]string
	// CreatedAt is when the name was first recorded; UpdatedAt when it
	// was last written. PutImage sets both.
	CreatedAt, UpdatedAt time.Time
}

// PutImage creates the image img.Name or replaces its target and labels.
// CreatedAt is kept from the existing record (or set now for a new one);
// UpdatedAt is set now. The target must be a valid descriptor.
func (db *DB) PutImage(ctx context.Context, img Image) error {
	if img.Name == "" {
		return errors.New("put image: empty name")
	}
	if err := image.ValidateDescriptor(img.Target); err != nil {
		return fmt.Errorf("put image %q: target: %w", img.Name, err)
	}
	target, err := json.Marshal(img.Target)
	if err != nil {
		return fmt.Errorf("put image %q: encode target: %w", img.Name, err)
	}
	labels := img.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	lb, err := json.Marshal(labels)
	if err != nil {
		return fmt.Errorf("put image %q: encode labels: %w", img.Name, err)
	}
	now := db.now().UnixNano()
	err = db.update(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO images (name, target, target_digest, labels, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET
				target = excluded.target,
				target_digest = excluded.target_digest,
				labels = excluded.labels,
				updated_at = excluded.updated_at`,
			img.Name, string(target), img.Target.Digest.String(), string(lb), now, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("put image %q: %w", img.Name, err)
	}
	return nil
}

const imageColumns = `name, target, labels, created_at, updated_at`

// scanImage decodes one row of imageColumns.
func scanImage(row interface{ Scan(...any) error }) (Image, error) {
	var (
		img              Image
		target, labels   string
		created, updated int64
	)
	if err := row.Scan(&img.Name, &target, &labels, &created, &updated); err != nil {
		return Image{}, err
	}
	if err := json.Unmarshal([]byte(target), &img.Target); err != nil {
		return Image{}, fmt.Errorf("image %q: decode target: %w", img.Name, err)
	}
	if err := json.Unmarshal([]byte(labels), &img.Labels); err != nil {
		return Image{}, fmt.Errorf("image %q: decode labels: %w", img.Name, err)
	}
	img.CreatedAt = time.Unix(0, created)
	img.UpdatedAt = time.Unix(0, updated)
	return img, nil
}

// GetImage returns the image name, or an error wrapping ErrNotFound.
func (db *DB) GetImage(ctx context.Context, name string) (Image, error) {
	img, err := scanImage(db.r.QueryRowContext(ctx, `SELECT `+imageColumns+` FROM images WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return Image{}, fmt.Errorf("image %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return Image{}, fmt.Errorf("get image %q: %w", name, err)
	}
	return img, nil
}

// ListImages returns the images for which filter returns true (all of them
// when filter is nil), sorted by name.
func (db *DB) ListImages(ctx context.Context, filter func(Image) bool) ([]Image, error) {
	imgs, err := queryImages(ctx, db.r, `SELECT `+imageColumns+` FROM images ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	if filter == nil {
		return imgs, nil
	}
	kept := imgs[:0]
	for _, img := range imgs {
		if filter(img) {
			kept = append(kept, img)
		}
	}
	return kept, nil
}

// ImagesByTarget returns the images whose target has digest d, sorted by
// name: every tag of one image.
func (db *DB) ImagesByTarget(ctx context.Context, d digest.Digest) ([]Image, error) {
	imgs, err := queryImages(ctx, db.r, `SELECT `+imageColumns+` FROM images WHERE target_digest = ? ORDER BY name`, d.String())
	if err != nil {
		return nil, fmt.Errorf("images by target %s: %w", d, err)
	}
	return imgs, nil
}

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// queryImages runs a query selecting imageColumns and decodes the rows.
func queryImages(ctx context.Context, q querier, query string, args ...any) ([]Image, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var imgs []Image
	for rows.Next() {
		img, err := scanImage(rows)
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, img)
	}
	return imgs, rows.Err()
}

// DeleteImage removes the image name, or returns an error wrapping
// ErrNotFound. The content it pointed to stays until garbage collection.
func (db *DB) DeleteImage(ctx context.Context, name string) error {
	return db.deleteRow(ctx, `DELETE FROM images WHERE name = ?`, "image", name)
}

// deleteRow runs a DELETE of one row by key (what is "image" or "lease"),
// turning "no such row" into an error wrapping ErrNotFound.
func (db *DB) deleteRow(ctx context.Context, query, what, key string) error {
	err := db.update(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, key)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return ErrNotFound
		}
		return nil
	})
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%s %q: %w", what, key, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete %s %q: %w", what, key, err)
	}
	return nil
}
