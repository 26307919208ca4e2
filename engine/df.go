package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/content"
	"github.com/berth-project/berth/snapshot"
)

// DiskUsage is the disk space the store uses, as "system df" shows it.
type DiskUsage struct {
	// Images are the images, one per image ID, sorted by first name
	// (dangling images last).
	Images []ImageUsage
	// ImagesSize is the space the images take: the blobs and the
	// snapshots they reference, each counted once however many images
	// share it.
	ImagesSize int64
	// ImagesActive is the number of images containers use.
	ImagesActive int
	// ImagesReclaimable is the part of ImagesSize that removing every
	// image no container uses would free.
	ImagesReclaimable int64
	// ContentSize is the size of every blob in the content store, and
	// SnapshotsSize the disk usage of every snapshot, referenced or not.
	ContentSize, SnapshotsSize int64
}

// ImageUsage is the disk space of one image.
type ImageUsage struct {
	ID digest.Digest
	// Names are the image's names (normalized), none for a dangling
	// image.
	Names []string
	// Digest is the digest of the image's manifest (or index).
	Digest  digest.Digest
	Created time.Time
	// Size is the space of the image's blobs and snapshots, and
	// SharedSize the part of it that other images use too.
	Size, SharedSize int64
	// Containers is the number of containers using the image.
	Containers int
}

// UniqueSize is the space only this image uses.
func (u ImageUsage) UniqueSize() int64 { return u.Size - u.SharedSize }

// DiskUsage measures the store's disk usage. The snapshots' usage is
// measured by walking their files.
func (s *Store) DiskUsage(ctx context.Context, opts ...MaintenanceOpt) (DiskUsage, error) {
	o, err := s.maintenance(ctx, opts)
	if err != nil {
		return DiskUsage{}, err
	}
	var du DiskUsage
	blobSize := map[digest.Digest]int64{}
	if err := s.cs.Walk(func(info content.Info) error {
		blobSize[info.Digest] = info.Size
		du.ContentSize += info.Size
		return ctx.Err()
	}); err != nil {
		return du, fmt.Errorf("disk usage: %w", err)
	}
	snapSize := map[string]int64{}
	if err := s.sn.Walk(func(info snapshot.Info) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		size, _, err := s.sn.Usage(info.Key)
		if errors.Is(err, snapshot.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		snapSize[info.Key] = size
		du.SnapshotsSize += size
		return nil
	}); err != nil {
		return du, fmt.Errorf("disk usage: %w", err)
	}

	recs, err := s.db.ListImages(ctx, nil)
	if err != nil {
		return du, fmt.Errorf("disk usage: %w", err)
	}
	// Each image's resources ("b" + digest, "s" + snapshot key) with
	// their sizes, and how many images use each.
	type usage struct {
		ImageUsage
		res map[string]int64
	}
	byID := map[digest.Digest]*usage{}
	var ids []digest.Digest
	for _, rec := range recs {
		g := s.walkImage(rec, nil)
		id := g.recordID()
		u := byID[id]
		if u == nil {
			u = &usage{ImageUsage: ImageUsage{ID: id, Digest: rec.Target.Digest, Created: g.created}, res: map[string]int64{}}
			byID[id] = u
			ids = append(ids, id)
		}
		if !isDanglingRecord(rec.Name) {
			u.Names = append(u.Names, rec.Name)
		}
		for d := range g.blobs {
			if size, ok := blobSize[d]; ok {
				u.res["b"+d.String()] = size
			}
		}
		for _, c := range g.chains {
			if size, ok := snapSize[c.String()]; ok {
				u.res["s"+c.String()] = size
			}
		}
	}
	users := map[string]int{}
	inUse := map[string]bool{}
	for _, id := range ids {
		u := byID[id]
		u.Containers = o.use.Containers(id)
		if u.Containers > 0 {
			du.ImagesActive++
		}
		for k := range u.res {
			users[k]++
			inUse[k] = inUse[k] || u.Containers > 0
		}
	}
	counted := map[string]bool{}
	for _, id := range ids {
		u := byID[id]
		for k, size := range u.res {
			u.Size += size
			if users[k] > 1 {
				u.SharedSize += size
			}
			if !counted[k] {
				counted[k] = true
				du.ImagesSize += size
				if !inUse[k] {
					du.ImagesReclaimable += size
				}
			}
		}
		sort.Strings(u.Names)
		du.Images = append(du.Images, u.ImageUsage)
	}
	sort.SliceStable(du.Images, func(i, j int) bool {
		a, b := du.Images[i].Names, du.Images[j].Names
		if len(a) == 0 || len(b) == 0 {
			return len(a) > len(b)
		}
		return a[0] < b[0]
	})
	return du, nil
}
