package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/metadata"
)

// ImageUse tells which images containers use: Prune keeps those, and
// DiskUsage counts them as active. By default the store's containers are
// asked; WithImageUse replaces them (tests).
type ImageUse interface {
	// Containers returns the number of containers using the image id.
	Containers(id digest.Digest) int
}

// MaintenanceOpt is an option of Prune and DiskUsage.
type MaintenanceOpt func(*maintenanceOptions)

type maintenanceOptions struct {
	use ImageUse
}

// WithImageUse makes Prune and DiskUsage ask u which images are in use.
func WithImageUse(u ImageUse) MaintenanceOpt {
	return func(o *maintenanceOptions) { o.use = u }
}

// maintenance applies opts over the default: the store's own containers
// tell which images are in use.
func (s *Store) maintenance(ctx context.Context, opts []MaintenanceOpt) (maintenanceOptions, error) {
	o := maintenanceOptions{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.use == nil {
		use, err := s.ImageUse(ctx)
		if err != nil {
			return o, err
		}
		o.use = use
	}
	return o, nil
}

// PruneReport is what Prune removed.
type PruneReport struct {
	// Untagged are the names removed, normalized.
	Untagged []string
	// Deleted are the IDs of the images left with no record.
	Deleted []digest.Digest
	// SpaceReclaimed is the disk space the garbage collection freed.
	SpaceReclaimed int64
}

// Prune removes the dangling images (recorded by ID only) or, with all,
// every image no container uses, and then collects garbage, like "docker
// image prune [-a]". An image whose documents cannot be read is pruned
// like any other.
func (s *Store) Prune(ctx context.Context, all bool, opts ...MaintenanceOpt) (PruneReport, error) {
	o, err := s.maintenance(ctx, opts)
	if err != nil {
		return PruneReport{}, err
	}
	var rep PruneReport
	recs, err := s.db.ListImages(ctx, nil)
	if err != nil {
		return rep, fmt.Errorf("prune: %w", err)
	}
	var pruned []digest.Digest
	seen := map[digest.Digest]bool{}
	for _, rec := range recs {
		dangling := isDanglingRecord(rec.Name)
		if !dangling && !all {
			continue
		}
		id := s.walkImage(rec, nil).recordID()
		if o.use.Containers(id) > 0 {
			continue
		}
		err := s.db.DeleteImage(ctx, rec.Name)
		if errors.Is(err, metadata.ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return rep, fmt.Errorf("prune: %w", err)
		}
		if !dangling {
			rep.Untagged = append(rep.Untagged, rec.Name)
		}
		if !seen[id] {
			seen[id] = true
			pruned = append(pruned, id)
		}
	}
	// An image is deleted once none of its records is left.
	left := map[digest.Digest]bool{}
	recs, err = s.db.ListImages(ctx, nil)
	if err != nil {
		return rep, fmt.Errorf("prune: %w", err)
	}
	for _, rec := range recs {
		left[s.walkImage(rec, nil).recordID()] = true
	}
	for _, id := range pruned {
		if !left[id] {
			rep.Deleted = append(rep.Deleted, id)
		}
	}
	gc, err := s.GC(ctx)
	rep.SpaceReclaimed = gc.BytesFreed
	if err != nil {
		return rep, fmt.Errorf("prune: %w", err)
	}
	return rep, nil
}
