package engine

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/archive"
	"github.com/berth-project/berth/metadata"
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

	lease, err := s.newLease(ctx, "import")
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
	if err := s.unpackLayers(ctx, lease, []ocispec.Descriptor{layer}, []digest.Digest{diffID}); err != nil {
		return ocispec.Descriptor{}, err
	}
	if err := s.putName(ctx, name, mfDesc, configDesc.Digest); err != nil {
		return ocispec.Descriptor{}, err
	}
	s.imageEvent(ctx, "import", configDesc.Digest.String(), name)
	return configDesc, nil
}

// newLease creates a lease for an operation (op names it: "import",
// "load").
func (s *Store) newLease(ctx context.Context, op string) (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	id := op + "-" + hex.EncodeToString(b[:])
	// The lease dies with this process: garbage collection frees what a
	// killed berth was writing at once, not after leaseTTL.
	if err := s.db.CreateLease(ctx, id, leaseTTL, metadata.WithOwner()); err != nil {
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
