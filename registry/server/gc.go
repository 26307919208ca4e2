package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/content"
)

// Defaults of GCOptions.
const (
	DefaultGCGracePeriod = time.Hour
	DefaultUploadMaxAge  = 7 * 24 * time.Hour
)

// GCOptions configure GC.
type GCOptions struct {
	// DryRun reports what would be deleted and deletes nothing.
	DryRun bool
	// GracePeriod protects blobs committed, and blobs linked into a
	// repository, within this time: a push in progress (blobs uploaded,
	// manifest not yet) keeps its blobs. DefaultGCGracePeriod when 0.
	GracePeriod time.Duration
	// UploadMaxAge is the age after which an upload session that no
	// server holds open is removed. DefaultUploadMaxAge when 0.
	UploadMaxAge time.Duration
	// Logger receives one line per deletion; none when nil.
	Logger *slog.Logger
}

// GCResult reports what GC deleted (or, with DryRun, would delete).
type GCResult struct {
	Blobs   []digest.Digest // deleted blobs
	Bytes   int64           // their total size
	Uploads int             // removed abandoned upload sessions
	Kept    int             // blobs kept (referenced or within the grace period)
}

// GC deletes the blobs under a registry root that no manifest of any
// repository references (the manifests themselves are referenced by their
// repositories), with the repository links to them, and removes abandoned
// upload sessions. It is safe to run while a server serves the root: blobs
// committed or linked within the grace period and the expected blobs of
// uploads in progress are kept.
//
// A push that links an old unreferenced blob (a mount, or a re-upload of
// stored content) in the moment between GC's mark and its sweep can lose
// that blob; the manifest push that follows then fails with
// MANIFEST_BLOB_UNKNOWN and the client uploads the blob again.
func GC(ctx context.Context, root string, opts GCOptions) (GCResult, error) {
	var res GCResult
	if opts.GracePeriod <= 0 {
		opts.GracePeriod = DefaultGCGracePeriod
	}
	if opts.UploadMaxAge <= 0 {
		opts.UploadMaxAge = DefaultUploadMaxAge
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if _, err := os.Stat(filepath.Join(root, "repositories")); err != nil {
		return res, fmt.Errorf("registry gc: %s is not a registry root: %w", root, err)
	}
	st, err := openRepoStore(root, true)
	if err != nil {
		return res, fmt.Errorf("registry gc: %w", err)
	}
	now := time.Now()
	recent := func(t time.Time) bool { return now.Sub(t) < opts.GracePeriod }

	// Mark.
	keep := map[digest.Digest]bool{}
	repos, err := st.repositories()
	if err != nil {
		return res, fmt.Errorf("registry gc: %w", err)
	}
	ingests, err := st.content.ListIngests()
	if err != nil {
		return res, fmt.Errorf("registry gc: %w", err)
	}
	for _, in := range ingests {
		if in.Expected != "" {
			keep[in.Expected] = true
		}
	}
	for _, repo := range repos {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		manifests, err := walkLinks(filepath.Join(st.repoDir(repo), "_manifests", "revisions"))
		if err != nil {
			return res, fmt.Errorf("registry gc: repository %s: %w", repo, err)
		}
		for d := range manifests {
			keep[d] = true
			for _, ref := range manifestRefs(st.blobPath(d)) {
				keep[ref] = true
			}
		}
		layers, err := walkLinks(filepath.Join(st.repoDir(repo), "_layers"))
		if err != nil {
			return res, fmt.Errorf("registry gc: repository %s: %w", repo, err)
		}
		for d, linked := range layers {
			if recent(linked) {
				keep[d] = true
			}
		}
	}

	// Sweep.
	var doomed []content.Info
	err = st.content.Walk(func(info content.Info) error {
		if keep[info.Digest] || recent(info.CreatedAt) {
			res.Kept++
			return nil
		}
		doomed = append(doomed, info)
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("registry gc: %w", err)
	}
	gone := map[digest.Digest]bool{}
	for _, info := range doomed {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if !opts.DryRun {
			if err := st.content.Delete(info.Digest); err != nil && !errors.Is(err, content.ErrNotFound) {
				return res, fmt.Errorf("registry gc: %w", err)
			}
		}
		log.Info("delete blob", "digest", info.Digest, "size", info.Size, "dry_run", opts.DryRun)
		gone[info.Digest] = true
		res.Blobs = append(res.Blobs, info.Digest)
		res.Bytes += info.Size
	}
	if !opts.DryRun && len(gone) > 0 {
		for _, repo := range repos {
			layers, err := walkLinks(filepath.Join(st.repoDir(repo), "_layers"))
			if err != nil {
				return res, fmt.Errorf("registry gc: repository %s: %w", repo, err)
			}
			for d := range layers {
				if gone[d] {
					os.Remove(st.layerLink(repo, d))
				}
			}
		}
	}

	// Abandoned uploads: sessions and ingests that no server holds and
	// that saw no write for UploadMaxAge.
	locked := map[string]bool{}
	for _, in := range ingests {
		id, ok := strings.CutPrefix(in.Ref, "registry-upload-")
		if !ok && !strings.HasPrefix(in.Ref, "registry-manifest-") && !strings.HasPrefix(in.Ref, mirrorIngestPrefix) {
			continue
		}
		if in.Locked || now.Sub(in.UpdatedAt) < opts.UploadMaxAge {
			locked[id] = true
			continue
		}
		if !opts.DryRun {
			if err := st.content.Abort(in.Ref); err != nil && !errors.Is(err, content.ErrNotFound) {
				if errors.Is(err, content.ErrLocked) {
					locked[id] = true
					continue
				}
				return res, fmt.Errorf("registry gc: %w", err)
			}
		}
		log.Info("remove abandoned upload", "ref", in.Ref, "updated", in.UpdatedAt, "dry_run", opts.DryRun)
	}
	sessions, err := os.ReadDir(filepath.Join(root, "uploads"))
	if err != nil {
		return res, fmt.Errorf("registry gc: %w", err)
	}
	for _, e := range sessions {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || locked[id] {
			continue
		}
		fi, err := e.Info()
		if err != nil || now.Sub(fi.ModTime()) < opts.UploadMaxAge {
			continue
		}
		if !opts.DryRun {
			if err := st.removeSession(id); err != nil {
				return res, fmt.Errorf("registry gc: %w", err)
			}
		}
		res.Uploads++
	}
	return res, nil
}

// walkLinks returns the digests of a <alg>/<hex> link tree with the link
// files' modification times.
func walkLinks(dir string) (map[digest.Digest]time.Time, error) {
	out := map[digest.Digest]time.Time{}
	algs, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, a := range algs {
		if !a.IsDir() {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(dir, a.Name()))
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			d := digest.NewDigestFromEncoded(digest.Algorithm(a.Name()), e.Name())
			if d.Validate() != nil {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				continue // removed meanwhile
			}
			out[d] = fi.ModTime()
		}
	}
	return out, nil
}

// manifestRefs returns the digests a stored manifest references (config,
// layers, child manifests), leniently: an unreadable manifest references
// nothing.
func manifestRefs(path string) []digest.Digest {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var m struct {
		Config    *ocispec.Descriptor  `json:"config"`
		Layers    []ocispec.Descriptor `json:"layers"`
		Manifests []ocispec.Descriptor `json:"manifests"`
	}
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	var out []digest.Digest
	if m.Config != nil {
		out = append(out, m.Config.Digest)
	}
	for _, l := range m.Layers {
		out = append(out, l.Digest)
	}
	for _, c := range m.Manifests {
		out = append(out, c.Digest)
	}
	return out
}
