package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	rspec "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/archive"
	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/metadata"
	"github.com/berth-project/berth/snapshot"
)

// leaseTTL bounds how long an import may take before garbage collection
// stops honouring its lease.
const leaseTTL = 24 * time.Hour

// Import reads a root filesystem tar (uncompressed, gzip or zstd) from r
// and records it as the single-layer image ref (normalized with
// NormalizeName), like "docker import". changes are Dockerfile
// instructions (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER,
// VOLUME, WORKDIR) applied to the image config. The layer is stored
// gzip-compressed and unpacked into a committed snapshot named by its
// chain ID. It returns the config's descriptor: its digest is the image ID.
// An empty ref records the image under its ID alone (a dangling image).
//
// On error no image is recorded and no snapshot is left behind; blobs
// already written are unreferenced and left to garbage collection.
func (s *Store) Import(ctx context.Context, r io.Reader, ref string, changes []string) (ocispec.Descriptor, error) {
	name := ""
	if ref != "" {
		var err error
		if name, err = NormalizeName(ref); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	now := time.Now().UTC()
	cfg := ocispec.ImageConfig{}
	if err := applyChanges(&cfg, changes); err != nil {
		return ocispec.Descriptor{}, err
	}

	lease, err := s.newLease(ctx)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer s.db.DeleteLease(context.WithoutCancel(ctx), lease)

	layer, diffID, err := s.writeLayer(ctx, lease, r)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	img := ocispec.Image{
		Created:  &now,
		Platform: ocispec.Platform{OS: "linux", Architecture: runtime.GOARCH},
		Config:   cfg,
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
		History:  []ocispec.History{{Created: &now, CreatedBy: "berth import", Comment: "Imported from tarball"}},
	}
	configDesc, err := s.writeJSON(ctx, lease, ocispec.MediaTypeImageConfig, img)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("write config: %w", err)
	}
	mf := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    []ocispec.Descriptor{layer},
	}
	mfDesc, err := s.writeJSON(ctx, lease, ocispec.MediaTypeImageManifest, mf)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("write manifest: %w", err)
	}
	if err := s.unpack(ctx, lease, layer, diffID); err != nil {
		return ocispec.Descriptor{}, err
	}
	if name == "" {
		name = configDesc.Digest.String()
	}
	if err := s.db.PutImage(ctx, metadata.Image{Name: name, Target: mfDesc}); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("record image %s: %w", name, err)
	}
	return configDesc, nil
}

func (s *Store) newLease(ctx context.Context) (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	id := "import-" + hex.EncodeToString(b[:])
	if err := s.db.CreateLease(ctx, id, leaseTTL); err != nil {
		return "", fmt.Errorf("create lease: %w", err)
	}
	return id, nil
}

// writeLayer compresses the tar read from r into a gzip blob, computing
// the diff ID of the uncompressed stream on the way, and commits the blob.
func (s *Store) writeLayer(ctx context.Context, lease string, r io.Reader) (ocispec.Descriptor, digest.Digest, error) {
	ref := lease + "-layer"
	if err := s.db.AddLeaseResource(ctx, lease, metadata.ResourceIngest, ref); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	dec, err := archive.DecompressStream(r)
	if err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("import layer: %w", err)
	}
	defer dec.Close()
	w, err := s.cs.Writer(ref, "", 0)
	if err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("import layer: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			w.Close()
			s.cs.Abort(ref)
		}
	}()
	diff := digest.SHA256.Digester()
	gz := gzip.NewWriter(w)
	if _, err := io.Copy(gz, io.TeeReader(&ctxReader{ctx, dec}, diff.Hash())); err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("import layer: read tar: %w", err)
	}
	if err := gz.Close(); err != nil {
		return ocispec.Descriptor{}, "", fmt.Errorf("import layer: compress: %w", err)
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: w.Digest(), Size: w.Offset()}
	if err := s.db.AddLeaseResource(ctx, lease, metadata.ResourceContent, desc.Digest.String()); err != nil {
		return ocispec.Descriptor{}, "", err
	}
	committed = true
	if err := w.Commit(); err != nil {
		w.Close()
		s.cs.Abort(ref)
		return ocispec.Descriptor{}, "", fmt.Errorf("commit layer %s: %w", desc.Digest, err)
	}
	return desc, diff.Digest(), nil
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// writeJSON marshals v and commits it as a blob of mediaType.
func (s *Store) writeJSON(ctx context.Context, lease, mediaType string, v any) (ocispec.Descriptor, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	if err := s.db.AddLeaseResource(ctx, lease, metadata.ResourceContent, desc.Digest.String()); err != nil {
		return ocispec.Descriptor{}, err
	}
	ref := lease + "-" + desc.Digest.Encoded()
	if err := s.cs.Ingest(ctx, ref, bytes.NewReader(data), desc.Digest, desc.Size); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	return desc, nil
}

// unpack applies the layer blob into a committed snapshot named by its
// chain ID (for a single layer, its diff ID), unless it exists already.
func (s *Store) unpack(ctx context.Context, lease string, layer ocispec.Descriptor, diffID digest.Digest) (retErr error) {
	chainID := image.ChainIDs([]digest.Digest{diffID})[0].String()
	if err := s.db.AddLeaseResource(ctx, lease, metadata.ResourceSnapshot, chainID); err != nil {
		return err
	}
	if info, err := s.sn.Stat(chainID); err == nil && info.Kind == snapshot.KindCommitted {
		return nil
	}
	key := "extract-" + lease + "-" + chainID
	mounts, err := s.sn.Prepare(key, "")
	if err != nil {
		return fmt.Errorf("unpack layer %s: %w", layer.Digest, err)
	}
	defer func() {
		if retErr != nil {
			s.sn.Remove(key)
		}
	}()
	dir, cleanup, err := writableDir(mounts)
	if err != nil {
		return fmt.Errorf("unpack layer %s: %w", layer.Digest, err)
	}
	got, err := s.applyBlob(ctx, dir, layer)
	if cerr := cleanup(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("unpack layer %s: %w", layer.Digest, err)
	}
	if got != diffID {
		return fmt.Errorf("unpack layer %s: diff ID %s, want %s", layer.Digest, got, diffID)
	}
	if err := s.sn.Commit(chainID, key); err != nil {
		if errors.Is(err, snapshot.ErrAlreadyExists) {
			// Another process unpacked the same layer first.
			return s.sn.Remove(key)
		}
		return fmt.Errorf("unpack layer %s: commit snapshot %s: %w", layer.Digest, chainID, err)
	}
	return nil
}

func (s *Store) applyBlob(ctx context.Context, dir string, layer ocispec.Descriptor) (digest.Digest, error) {
	ra, err := s.cs.ReaderAt(layer.Digest)
	if err != nil {
		return "", err
	}
	defer ra.Close()
	dec, err := archive.DecompressStream(io.NewSectionReader(ra, 0, ra.Size()))
	if err != nil {
		return "", err
	}
	defer dec.Close()
	got, err := archive.Apply(ctx, dir, dec, archive.ApplyOptions{Overlay: s.overlay})
	if err != nil {
		return "", err
	}
	return got, syncDir(dir)
}

// writableDir returns the directory to unpack into for the mounts of a
// snapshot without parent: the source of its single bind mount, or else a
// temporary directory on which the mounts are mounted.
func writableDir(mounts []rspec.Mount) (string, func() error, error) {
	if len(mounts) == 1 && mounts[0].Type == "bind" {
		return mounts[0].Source, func() error { return nil }, nil
	}
	tmp, err := os.MkdirTemp("", "berth-unpack-")
	if err != nil {
		return "", nil, err
	}
	if err := snapshot.MountAll(mounts, tmp); err != nil {
		os.Remove(tmp)
		return "", nil, err
	}
	return tmp, func() error {
		if err := snapshot.Unmount(tmp); err != nil {
			return err
		}
		return os.Remove(tmp)
	}, nil
}

func syncDir(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
