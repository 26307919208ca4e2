package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/content"
	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/metadata"
)

// Image is an image of the store as berth's commands show it: one name
// (or none, for an image recorded by ID only) and what it points to.
type Image struct {
	// Name is the normalized name ("docker.io/library/busybox:latest"),
	// "" for a dangling image.
	Name string
	// Repository and Tag are the name's short parts ("busybox",
	// "latest"), "<none>" for a dangling image.
	Repository, Tag string
	// ID is the digest of the image config.
	ID digest.Digest
	// Target is the manifest the name points to.
	Target ocispec.Descriptor
	// Config is the parsed image config.
	Config *ocispec.Image
	// Created is the config's creation time (zero if it has none).
	Created time.Time
	// Size is the disk space of the image's unpacked layers (or, for
	// layers not unpacked, their compressed size).
	Size int64
}

// isIDPrefix reports whether name can be an image ID or a prefix of one:
// (?:sha256:)?[0-9a-f]{4,64}
func isIDPrefix(name string) bool {
	h := strings.TrimPrefix(name, "sha256:")
	if len(h) < 4 || len(h) > 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Images returns every image name of the store, sorted by name, with
// dangling images (recorded by ID only) last.
func (s *Store) Images(ctx context.Context) ([]Image, error) {
	return s.images(ctx, true)
}

// images is Images, with each image's Size only when sized.
func (s *Store) images(ctx context.Context, sized bool) ([]Image, error) {
	recs, err := s.db.ListImages(ctx, nil)
	if err != nil {
		return nil, err
	}
	out := make([]Image, 0, len(recs))
	for _, rec := range recs {
		img, ok, err := s.loadLive(ctx, rec, sized)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, img)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name != "" && out[j].Name == "" })
	return out, nil
}

// Get returns the image name: a reference (normalized with
// NormalizeName) or an image ID or unique prefix of one ("sha256:…" or
// hex). A missing image is an error wrapping ErrNotFound.
func (s *Store) Get(ctx context.Context, name string) (Image, error) {
	imgs, err := s.resolve(ctx, name, true)
	if err != nil {
		return Image{}, err
	}
	return imgs[0], nil
}

// Lookup is Get without the image's Size, which costs a read of the
// snapshot records per layer: for creating a container from the image.
func (s *Store) Lookup(ctx context.Context, name string) (Image, error) {
	imgs, err := s.resolve(ctx, name, false)
	if err != nil {
		return Image{}, err
	}
	return imgs[0], nil
}

// Names returns every name of the image id, sorted.
func (s *Store) Names(ctx context.Context, id digest.Digest) ([]string, error) {
	imgs, err := s.Images(ctx)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, img := range imgs {
		if img.ID == id && img.Name != "" {
			names = append(names, img.Name)
		}
	}
	return names, nil
}

// resolve returns the image records name refers to: one for a name, all
// of the image's records for an ID; with their Size when sized.
func (s *Store) resolve(ctx context.Context, name string, sized bool) ([]Image, error) {
	if full, err := NormalizeName(name); err == nil {
		rec, err := s.db.GetImage(ctx, full)
		if err == nil {
			img, ok, err := s.loadLive(ctx, rec, sized)
			if err != nil {
				return nil, err
			}
			if ok {
				return []Image{img}, nil
			}
			err = metadata.ErrNotFound
		}
		if !errors.Is(err, metadata.ErrNotFound) {
			return nil, err
		}
	}
	if isIDPrefix(name) {
		prefix := strings.TrimPrefix(name, "sha256:")
		imgs, err := s.images(ctx, sized)
		if err != nil {
			return nil, err
		}
		var match []Image
		var id digest.Digest
		for _, img := range imgs {
			if strings.HasPrefix(img.ID.Encoded(), prefix) {
				if id != "" && img.ID != id {
					return nil, fmt.Errorf("image ID prefix %q is ambiguous", name)
				}
				id = img.ID
				match = append(match, img)
			}
		}
		if len(match) > 0 {
			return match, nil
		}
	}
	return nil, fmt.Errorf("image %q %w", name, ErrNotFound)
}

// loadLive loads the image record rec, read a moment ago. An image that
// another process removed since (its record gone or retargeted, so its
// blobs may have been collected) is skipped (ok false) rather than
// reported as missing content: listing never fails because of a
// concurrent rmi.
func (s *Store) loadLive(ctx context.Context, rec metadata.Image, sized bool) (_ Image, ok bool, _ error) {
	img, err := s.load(rec, sized)
	if err == nil {
		return img, true, nil
	}
	if !errors.Is(err, content.ErrNotFound) {
		return Image{}, false, err
	}
	now, gerr := s.db.GetImage(ctx, rec.Name)
	if errors.Is(gerr, metadata.ErrNotFound) || (gerr == nil && now.Target.Digest != rec.Target.Digest) {
		return Image{}, false, nil
	}
	return Image{}, false, err
}

// load reads the manifest and config of an image record, and when sized
// the disk usage of its layers.
func (s *Store) load(rec metadata.Image, sized bool) (Image, error) {
	img := Image{Name: rec.Name, Target: rec.Target, Repository: "<none>", Tag: "<none>"}
	if d, err := digest.Parse(rec.Name); err == nil {
		img.Name = ""
		_ = d
	} else {
		img.Repository, img.Tag = SplitName(rec.Name)
	}
	data, err := s.readBlob(rec.Target, image.MaxManifestSize)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: manifest %s: %w", rec.Name, rec.Target.Digest, err)
	}
	mf, err := image.ParseManifest(data)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: manifest %s: %w", rec.Name, rec.Target.Digest, err)
	}
	data, err = s.readBlob(mf.Config, image.MaxConfigSize)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: config %s: %w", rec.Name, mf.Config.Digest, err)
	}
	cfg, err := image.ParseConfig(data)
	if err != nil {
		return Image{}, fmt.Errorf("image %s: config %s: %w", rec.Name, mf.Config.Digest, err)
	}
	img.ID, img.Config = mf.Config.Digest, cfg
	if cfg.Created != nil {
		img.Created = *cfg.Created
	}
	if !sized {
		return img, nil
	}
	for i, chainID := range image.ChainIDs(cfg.RootFS.DiffIDs) {
		if size, _, err := s.sn.Usage(chainID.String()); err == nil {
			img.Size += size
		} else if i < len(mf.Layers) {
			img.Size += mf.Layers[i].Size
		}
	}
	return img, nil
}

func (s *Store) readBlob(desc ocispec.Descriptor, limit int64) ([]byte, error) {
	ra, err := s.cs.ReaderAt(desc.Digest)
	if err != nil {
		return nil, err
	}
	defer ra.Close()
	return image.ReadBlob(&sectionReader{ra: ra}, desc, limit)
}

type sectionReader struct {
	ra interface {
		ReadAt([]byte, int64) (int, error)
	}
	off int64
}

func (r *sectionReader) Read(p []byte) (int, error) {
	n, err := r.ra.ReadAt(p, r.off)
	r.off += int64(n)
	return n, err
}

// Tag records dst (normalized) as a name of the image src.
func (s *Store) Tag(ctx context.Context, src, dst string) error {
	img, err := s.Get(ctx, src)
	if err != nil {
		return err
	}
	name, err := NormalizeName(dst)
	if err != nil {
		return err
	}
	defer s.imageEvent(ctx, "tag", img.ID.String(), name)
	return s.putName(ctx, name, img.Target, img.ID)
}

// putName records name (normalized) for the image id whose manifest is
// target. As in docker, an image with a name is not also listed by its ID:
// its record by ID (the "<none>" row) is deleted. An empty name records the
// image by ID, unless it has a name already.
func (s *Store) putName(ctx context.Context, name string, target ocispec.Descriptor, id digest.Digest) error {
	if name == "" {
		names, err := s.Names(ctx, id)
		if err != nil || len(names) > 0 {
			return err
		}
		name = id.String()
	}
	if err := s.db.PutImage(ctx, metadata.Image{Name: name, Target: target}); err != nil {
		return fmt.Errorf("record image %s: %w", name, err)
	}
	if name == id.String() {
		return nil
	}
	if err := s.db.DeleteImage(ctx, id.String()); err != nil && !errors.Is(err, metadata.ErrNotFound) {
		return fmt.Errorf("record image %s: %w", name, err)
	}
	return nil
}

// RemoveResult reports what Remove did.
type RemoveResult struct {
	Untagged []string        // names removed
	Deleted  []digest.Digest // images left with no name (deleted at GC)
}

// Remove removes the image name: for a reference, that name only; for an
// image ID, all of the image's names (refused, unless force, when it has
// more than one). An image left without names is deleted by the garbage
// collection Remove runs at its end.
func (s *Store) Remove(ctx context.Context, name string, force bool) (RemoveResult, error) {
	var res RemoveResult
	imgs, err := s.resolve(ctx, name, false)
	if err != nil {
		return res, err
	}
	byName := len(imgs) == 1 && imgs[0].Name != "" && !isIDPrefix(name)
	if !byName && len(imgs) > 1 && !force {
		return res, fmt.Errorf("conflict: unable to delete %s (must be forced) - image is referenced in multiple repositories", imgs[0].ID.Encoded()[:12])
	}
	id := imgs[0].ID
	names, err := s.Names(ctx, id)
	if err != nil {
		return res, err
	}
	lastNames := len(names) <= len(imgs)
	used := 0
	if lastNames {
		n, err := s.db.ContainersByImage(ctx)
		if err != nil {
			return res, err
		}
		used = n[id]
	}
	if used > 0 && !force {
		return res, fmt.Errorf("conflict: unable to remove %s (must be forced) - image %s is used by %d container(s)", name, id.Encoded()[:12], used)
	}
	for _, img := range imgs {
		recName := img.Name
		if recName == "" {
			recName = img.ID.String()
		}
		if err := s.db.DeleteImage(ctx, recName); err != nil && !errors.Is(err, metadata.ErrNotFound) {
			return res, err
		}
		if img.Name != "" {
			res.Untagged = append(res.Untagged, img.Name)
		}
	}
	if used > 0 {
		// Forced: the image loses its names but stays, by ID, for the
		// containers that use it, as docker keeps it as <none>.
		if err := s.putName(ctx, "", imgs[0].Target, id); err != nil {
			return res, err
		}
	} else if left, err := s.Names(ctx, id); err != nil {
		return res, err
	} else if len(left) == 0 {
		res.Deleted = append(res.Deleted, id)
	}
	s.removeEvents(ctx, id, res)
	if _, err := s.GC(ctx); err != nil {
		return res, err
	}
	return res, nil
}

// GC deletes the blobs and snapshots that no image and no lease
// references, and the directories of containers that were never recorded
// (see removeOrphanDirs).
func (s *Store) GC(ctx context.Context) (metadata.GCResult, error) {
	res, err := s.db.CollectGarbage(ctx, s.cs, s.sn)
	if err != nil {
		return res, err
	}
	return res, s.removeOrphanDirs(ctx, time.Now().Add(-orphanGrace))
}

// orphanGrace is how old a container directory without a record must be
// before GC removes it: a run makes its container's directories before
// the record (BeginPrelaunch, launchEarly), some milliseconds earlier.
const orphanGrace = time.Minute

// removeOrphanDirs removes the container directories, in the store and
// the run root, that no container record names and that were made before
// cutoff: what a run killed between making them and recording its
// container leaves.
func (s *Store) removeOrphanDirs(ctx context.Context, cutoff time.Time) error {
	cs, err := s.db.ListContainers(ctx)
	if err != nil {
		return err
	}
	known := make(map[string]bool, len(cs))
	for _, c := range cs {
		known[c.ID] = true
	}
	var errs []error
	for _, dir := range []string{filepath.Join(s.root, "containers"), filepath.Join(s.runRoot, "containers")} {
		ents, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		for _, e := range ents {
			if known[e.Name()] || !e.IsDir() || !validContainerID(e.Name()) {
				continue
			}
			if fi, err := e.Info(); err != nil || fi.ModTime().After(cutoff) {
				continue
			}
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				errs = append(errs, fmt.Errorf("remove orphaned container directory: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// validContainerID reports whether id has the form of the IDs
// newContainerID makes.
func validContainerID(id string) bool {
	if len(id) != 64 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
