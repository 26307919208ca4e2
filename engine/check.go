package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/content"
	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/metadata"
	"github.com/berth-project/berth/snapshot"
)

// imageGraph is what an image record references, as far as it could be
// read: the blobs present, and the image berth runs from it (for an index,
// the manifest of this machine's platform).
type imageGraph struct {
	rec metadata.Image
	// id is the image ID (the config digest), "" when it could not be
	// read.
	id      digest.Digest
	created time.Time
	// blobs are the blobs the image references that are present (index,
	// manifests, configs, layers).
	blobs map[digest.Digest]bool
	// chains are the chain IDs of the platform manifest's layers: the
	// committed snapshots the image needs.
	chains []digest.Digest
	// broken says why the image cannot be used ("" if it can): a
	// document missing, corrupt or unreadable.
	broken string
	// dangling are the missing blobs the image's documents reference,
	// each with what references it.
	dangling []dangling
}

// dangling is a reference to a missing blob.
type dangling struct {
	missing digest.Digest
	from    string // "config of manifest sha256:…"
}

// maxIndexDepth bounds nested indexes.
const maxIndexDepth = 4

// walkImage reads the documents of the image record rec. Blobs in corrupt
// (known not to match their digest) count as unreadable; the others are
// checked against their digest when read (documents only: layers are
// checked by Check's verification).
func (s *Store) walkImage(rec metadata.Image, corrupt map[digest.Digest]bool) imageGraph {
	g := imageGraph{rec: rec, blobs: map[digest.Digest]bool{}}
	s.walkDoc(&g, rec.Target, "", true, 0, corrupt)
	return g
}

// walkDoc reads the index or manifest desc, referenced by from ("" for the
// record's target). primary says whether it is (or leads to) the image's
// platform manifest; other platforms' manifests may legitimately be
// absent.
func (s *Store) walkDoc(g *imageGraph, desc ocispec.Descriptor, from string, primary bool, depth int, corrupt map[digest.Digest]bool) {
	what := "manifest " + desc.Digest.String()
	data, err := s.readDoc(desc, image.MaxManifestSize, corrupt)
	switch {
	case errors.Is(err, content.ErrNotFound):
		if from != "" {
			g.dangling = append(g.dangling, dangling{desc.Digest, from})
		}
		if primary {
			g.fail("%s is missing", what)
		}
		return
	case err != nil:
		g.blobs[desc.Digest] = true
		if primary {
			g.fail("%s: %v", what, err)
		}
		return
	}
	g.blobs[desc.Digest] = true
	kind, err := image.DetectKind(desc.MediaType, data)
	if err != nil {
		if primary {
			g.fail("%s: %v", what, err)
		}
		return
	}
	switch kind {
	case image.KindIndex:
		idx, err := image.ParseIndex(data)
		if err == nil && depth >= maxIndexDepth {
			err = fmt.Errorf("indexes nested more than %d deep", maxIndexDepth)
		}
		if err != nil {
			if primary {
				g.fail("index %s: %v", desc.Digest, err)
			}
			return
		}
		var match ocispec.Descriptor
		if primary {
			match, err = image.MatchIndex(idx, image.DefaultPlatform())
			if err != nil {
				g.fail("index %s: %v", desc.Digest, err)
			}
		}
		for _, m := range idx.Manifests {
			isMatch := primary && m.Digest == match.Digest
			if !isMatch {
				if _, err := s.cs.Info(m.Digest); err != nil {
					continue // another platform, not fetched
				}
			}
			s.walkDoc(g, m, "index "+desc.Digest.String(), isMatch, depth+1, corrupt)
		}
	case image.KindManifest:
		s.walkManifest(g, desc, data, primary, corrupt)
	default:
		if primary {
			g.fail("%s is not a manifest or an index", what)
		}
	}
}

// walkManifest checks the config and layers of the manifest desc (data).
func (s *Store) walkManifest(g *imageGraph, desc ocispec.Descriptor, data []byte, primary bool, corrupt map[digest.Digest]bool) {
	fail := func(format string, args ...any) {
		if primary {
			g.fail(format, args...)
		}
	}
	mf, err := image.ParseManifest(data)
	if err != nil {
		fail("manifest %s: %v", desc.Digest, err)
		return
	}
	from := "manifest " + desc.Digest.String()
	for _, l := range mf.Layers {
		if corrupt[l.Digest] {
			g.blobs[l.Digest] = true
			fail("layer %s is corrupt", l.Digest)
			continue
		}
		if _, err := s.cs.Info(l.Digest); errors.Is(err, content.ErrNotFound) || errors.Is(err, content.ErrInvalidDigest) {
			g.dangling = append(g.dangling, dangling{l.Digest, "layer of " + from})
			fail("layer %s is missing", l.Digest)
			continue
		}
		g.blobs[l.Digest] = true
	}
	cdata, err := s.readDoc(mf.Config, image.MaxConfigSize, corrupt)
	if errors.Is(err, content.ErrNotFound) {
		g.dangling = append(g.dangling, dangling{mf.Config.Digest, "config of " + from})
		fail("config %s is missing", mf.Config.Digest)
		return
	}
	g.blobs[mf.Config.Digest] = true
	if err != nil {
		fail("config %s: %v", mf.Config.Digest, err)
		return
	}
	cfg, err := image.ParseConfig(cdata)
	if err == nil {
		err = image.CheckLayers(mf, cfg)
	}
	if err != nil {
		fail("config %s: %v", mf.Config.Digest, err)
		return
	}
	if primary {
		g.id = mf.Config.Digest
		if cfg.Created != nil {
			g.created = *cfg.Created
		}
		g.chains = image.ChainIDs(cfg.RootFS.DiffIDs)
	}
}

// fail records the first reason the image is broken.
func (g *imageGraph) fail(format string, args ...any) {
	if g.broken == "" {
		g.broken = fmt.Sprintf(format, args...)
	}
}

// readDoc reads the JSON document desc, at most limit bytes, checking its
// size and digest. A missing blob is an error wrapping
// content.ErrNotFound.
func (s *Store) readDoc(desc ocispec.Descriptor, limit int64, corrupt map[digest.Digest]bool) ([]byte, error) {
	if corrupt[desc.Digest] {
		return nil, fmt.Errorf("blob %s is corrupt", desc.Digest)
	}
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("digest %q: %w", desc.Digest, content.ErrNotFound)
	}
	return s.readBlob(desc, limit)
}

// recordID returns the image ID of g, or, when its config is unreadable,
// the best name for the record: its name if it is an ID, else its
// target's digest.
func (g imageGraph) recordID() digest.Digest {
	if g.id != "" {
		return g.id
	}
	if d, err := digest.Parse(g.rec.Name); err == nil {
		return d
	}
	return g.rec.Target.Digest
}

// isDanglingRecord reports whether the record names an image by ID only.
func isDanglingRecord(name string) bool {
	_, err := digest.Parse(name)
	return err == nil
}

// ProblemKind classifies a problem Check finds.
type ProblemKind string

// The problems Check finds, and what --repair does about each.
const (
	// ProblemCorruptBlob: a blob's content no longer matches its digest.
	// Repair deletes it.
	ProblemCorruptBlob ProblemKind = "corrupt-blob"
	// ProblemBrokenImage: an image record whose manifest, config or
	// layers are missing, corrupt or unreadable. Repair deletes the
	// record.
	ProblemBrokenImage ProblemKind = "broken-image"
	// ProblemDanglingReference: an index, manifest or config of an image
	// references a missing blob. Repair deletes the image (see
	// ProblemBrokenImage) and garbage collection the documents.
	ProblemDanglingReference ProblemKind = "dangling-reference"
	// ProblemMissingSnapshot: a layer of an image is not unpacked (the
	// committed snapshot of its chain ID is missing). Not repaired:
	// load or pull the image again.
	ProblemMissingSnapshot ProblemKind = "missing-snapshot"
	// ProblemMissingParent: a snapshot's parent is missing. Not
	// repaired.
	ProblemMissingParent ProblemKind = "missing-parent"
	// ProblemDeadLease: a lease past its expiry or whose owner process
	// is gone. Repair (garbage collection) deletes it.
	ProblemDeadLease ProblemKind = "dead-lease"
	// ProblemAbandonedIngest: an unfinished write no one will finish.
	// Repair (garbage collection) removes it.
	ProblemAbandonedIngest ProblemKind = "abandoned-ingest"
	// ProblemAbandonedSnapshot: an active snapshot (an unpack) of a dead
	// lease. Repair (garbage collection) removes it.
	ProblemAbandonedSnapshot ProblemKind = "abandoned-snapshot"
	// ProblemUnreferencedBlob and ProblemUnreferencedSnapshot: garbage
	// that nothing references (left by a failed operation). Repair
	// (garbage collection) removes it.
	ProblemUnreferencedBlob     ProblemKind = "unreferenced-blob"
	ProblemUnreferencedSnapshot ProblemKind = "unreferenced-snapshot"
)

// Garbage reports whether the kind is garbage (what a crashed or killed
// process, or a removal, left for garbage collection to remove) rather
// than damage: garbage takes space but breaks nothing, and a store that
// holds only garbage is sound.
func (k ProblemKind) Garbage() bool {
	switch k {
	case ProblemDeadLease, ProblemAbandonedIngest, ProblemAbandonedSnapshot, ProblemUnreferencedBlob, ProblemUnreferencedSnapshot:
		return true
	}
	return false
}

// Problem is one thing wrong in the store.
type Problem struct {
	Kind ProblemKind
	// Object names what is wrong: a digest, an image name, a snapshot
	// key, an ingest ref or a lease id.
	Object string
	// Detail says what is wrong with it.
	Detail string
	// Repaired is set by a repairing Check once the problem is gone.
	Repaired bool
}

// String returns "kind object: detail", with " (repaired)" if it was.
func (p Problem) String() string {
	s := string(p.Kind) + " " + p.Object
	if p.Detail != "" {
		s += ": " + p.Detail
	}
	if p.Repaired {
		s += " (repaired)"
	}
	return s
}

// CheckReport is what Check found (and repaired).
type CheckReport struct {
	// Problems lists every problem found, in the order of the checks.
	Problems []Problem
	// Blobs is the number of blobs verified.
	Blobs int
	// Reclaimed is the disk space the repair's garbage collection freed.
	Reclaimed int64
}

// Remaining returns the damage not repaired: the problems that are not
// garbage.
func (r CheckReport) Remaining() []Problem {
	var left []Problem
	for _, p := range r.Problems {
		if !p.Repaired && !p.Kind.Garbage() {
			left = append(left, p)
		}
	}
	return left
}

// Garbage returns the garbage found and not collected.
func (r CheckReport) Garbage() []Problem {
	var left []Problem
	for _, p := range r.Problems {
		if !p.Repaired && p.Kind.Garbage() {
			left = append(left, p)
		}
	}
	return left
}

// Check checks the store: it verifies every blob against its digest, reads
// every image record's documents (reporting missing or corrupt ones and
// dangling references), checks that the snapshots the images need exist
// and that every snapshot's parent does, and reports what garbage
// collection would remove: dead leases, the ingests and extract snapshots
// they leave, and unreferenced blobs and snapshots. The work of a live
// lease (an import or load running now, in any process) is not a problem.
// Without repair Check changes nothing.
//
// With repair it then deletes the corrupt blobs and the broken image
// records, runs garbage collection, and checks again (without re-hashing
// the blobs): a problem is marked Repaired when it is gone, and a new one
// the repair revealed is added.
//
// A concurrent removal of an image (rmi, prune) may make Check see that
// image half removed; check again after it.
func (s *Store) Check(ctx context.Context, repair bool) (CheckReport, error) {
	var rep CheckReport
	corrupt := map[digest.Digest]bool{}
	var problems []Problem
	err := s.cs.Walk(func(info content.Info) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		rep.Blobs++
		err := s.cs.Verify(info.Digest)
		switch {
		case err == nil, errors.Is(err, content.ErrNotFound):
			return nil // deleted since the walk found it
		case errors.Is(err, content.ErrMismatch):
			corrupt[info.Digest] = true
			problems = append(problems, Problem{Kind: ProblemCorruptBlob, Object: info.Digest.String(), Detail: "content does not match the digest"})
			return nil
		}
		return err
	})
	if err != nil {
		return rep, fmt.Errorf("check: verify blobs: %w", err)
	}
	more, graphs, err := s.scan(ctx, corrupt)
	if err != nil {
		return rep, err
	}
	rep.Problems = append(problems, more...)
	if !repair {
		return rep, nil
	}

	var errs []error
	for d := range corrupt {
		if err := s.cs.Delete(d); err != nil && !errors.Is(err, content.ErrNotFound) {
			errs = append(errs, fmt.Errorf("delete corrupt blob %s: %w", d, err))
		}
	}
	for _, g := range graphs {
		if g.broken == "" {
			continue
		}
		// Delete the record only if it still points where it did: a
		// load may have recorded the name anew meanwhile.
		cur, err := s.db.GetImage(ctx, g.rec.Name)
		if errors.Is(err, metadata.ErrNotFound) || err == nil && cur.Target.Digest != g.rec.Target.Digest {
			continue
		}
		if err == nil {
			err = s.db.DeleteImage(ctx, g.rec.Name)
		}
		if err != nil && !errors.Is(err, metadata.ErrNotFound) {
			errs = append(errs, fmt.Errorf("delete broken image %s: %w", g.rec.Name, err))
		}
	}
	gc, err := s.GC(ctx)
	rep.Reclaimed = gc.BytesFreed
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return rep, fmt.Errorf("check: repair: %w", err)
	}

	after, _, err := s.scan(ctx, nil)
	if err != nil {
		return rep, err
	}
	left := map[string]bool{}
	for _, p := range after {
		left[string(p.Kind)+" "+p.Object] = true
	}
	seen := map[string]bool{}
	for i, p := range rep.Problems {
		k := string(p.Kind) + " " + p.Object
		seen[k] = true
		if p.Kind == ProblemCorruptBlob {
			_, err := s.cs.Info(digest.Digest(p.Object))
			rep.Problems[i].Repaired = errors.Is(err, content.ErrNotFound)
		} else {
			rep.Problems[i].Repaired = !left[k]
		}
	}
	for _, p := range after {
		if !seen[string(p.Kind)+" "+p.Object] {
			rep.Problems = append(rep.Problems, p)
		}
	}
	return rep, nil
}

// scan runs Check's checks but the verification of blobs (corrupt lists
// the blobs known to be corrupt), and returns the problems and the images'
// graphs.
func (s *Store) scan(ctx context.Context, corrupt map[digest.Digest]bool) ([]Problem, []imageGraph, error) {
	var problems []Problem
	reported := map[string]bool{}
	add := func(kind ProblemKind, object, format string, args ...any) {
		if k := string(kind) + " " + object; !reported[k] {
			reported[k] = true
			problems = append(problems, Problem{Kind: kind, Object: object, Detail: fmt.Sprintf(format, args...)})
		}
	}

	recs, err := s.db.ListImages(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("check: %w", err)
	}
	var graphs []imageGraph
	for _, rec := range recs {
		g := s.walkImage(rec, corrupt)
		graphs = append(graphs, g)
		for _, d := range g.dangling {
			add(ProblemDanglingReference, d.missing.String(), "missing, referenced by the %s (image %s)", d.from, rec.Name)
		}
		if g.broken != "" {
			add(ProblemBrokenImage, rec.Name, "%s", g.broken)
			continue
		}
		for i, chain := range g.chains {
			info, err := s.sn.Stat(chain.String())
			switch {
			case errors.Is(err, snapshot.ErrNotFound):
				add(ProblemMissingSnapshot, chain.String(), "layer %d of image %s is not unpacked", i+1, rec.Name)
			case err != nil:
				return nil, nil, fmt.Errorf("check: snapshot %s: %w", chain, err)
			case info.Kind != snapshot.KindCommitted:
				add(ProblemMissingSnapshot, chain.String(), "layer %d of image %s: snapshot is %s, not committed", i+1, rec.Name, info.Kind)
			}
		}
	}

	infos := map[string]snapshot.Info{}
	var order []string
	if err := s.sn.Walk(func(info snapshot.Info) error {
		infos[info.Key] = info
		order = append(order, info.Key)
		return nil
	}); err != nil {
		return nil, nil, fmt.Errorf("check: walk snapshots: %w", err)
	}
	for _, key := range order {
		if p := infos[key].Parent; p != "" {
			if _, ok := infos[p]; !ok {
				add(ProblemMissingParent, key, "parent %s is missing", p)
			}
		}
	}

	// What garbage collection would remove, under its lock, so that a
	// live lease's work in progress is never reported.
	leases, err := s.db.ListLeases(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("check: %w", err)
	}
	gc, err := s.db.CollectGarbage(ctx, s.cs, s.sn, metadata.DryRun())
	if err != nil {
		return nil, nil, fmt.Errorf("check: %w", err)
	}
	for _, id := range gc.Leases {
		add(ProblemDeadLease, id, "%s", leaseDeath(leases, id))
	}
	for _, ref := range gc.Ingests {
		add(ProblemAbandonedIngest, ref, "unfinished write that no live lease protects")
	}
	for _, key := range gc.Snapshots {
		info, ok := infos[key]
		switch {
		case ok && info.Kind != snapshot.KindCommitted:
			add(ProblemAbandonedSnapshot, key, "%s snapshot of dead lease %s", info.Kind, info.Labels[metadata.LeaseLabel])
		default:
			add(ProblemUnreferencedSnapshot, key, "no image or live lease references it")
		}
	}
	for _, d := range gc.Blobs {
		if !corrupt[d] {
			add(ProblemUnreferencedBlob, d.String(), "no image or live lease references it")
		}
	}
	return problems, graphs, nil
}

// leaseDeath says why the lease id (of leases) is dead.
func leaseDeath(leases []metadata.Lease, id string) string {
	for _, l := range leases {
		if l.ID != id {
			continue
		}
		if l.Owner != nil && !l.Owner.Alive() {
			return fmt.Sprintf("owner process %d is gone", l.Owner.PID)
		}
		if !l.ExpiresAt.IsZero() {
			return "expired at " + l.ExpiresAt.UTC().Format(time.RFC3339)
		}
	}
	return "expired"
}
