package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/archive"
	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/metadata"
)

// The formats Save writes.
const (
	// FormatDockerArchive is the archive "docker save" writes (since
	// docker 25): uncompressed layers and the config as blobs/sha256/
	// files, a manifest.json for docker-archive readers and an index.json
	// and oci-layout for OCI readers, so docker, podman, skopeo and
	// containerd all load it.
	FormatDockerArchive = "docker-archive"
	// FormatOCIArchive is an OCI image layout in a tar, with the blobs
	// exactly as stored (manifest digests are kept).
	FormatOCIArchive = "oci-archive"
	// FormatOCIDir is an OCI image layout directory (SaveLayout).
	FormatOCIDir = "oci-dir"
)

// savedImage is one image argument of Save.
type savedImage struct {
	img  Image
	name string // the name it was asked by; "" when asked by ID
	mf   *ocispec.Manifest
}

// Save writes the images refs (names or IDs) to w as an archive of format
// FormatDockerArchive or FormatOCIArchive. An image asked for by name is
// tagged with it in the archive; one asked by ID is not tagged. Every blob
// is verified against its digest as it is read from the store, and every
// layer written uncompressed against its diff ID.
func (s *Store) Save(ctx context.Context, w io.Writer, refs []string, format string) error {
	if format != FormatDockerArchive && format != FormatOCIArchive {
		return fmt.Errorf("save: unknown archive format %q (%s or %s)", format, FormatDockerArchive, FormatOCIArchive)
	}
	imgs, err := s.saveImages(ctx, refs)
	if err != nil {
		return err
	}
	tw := &tarSink{tw: tar.NewWriter(w), written: map[string]bool{}}
	if format == FormatDockerArchive {
		err = s.saveDocker(ctx, tw, imgs)
	} else {
		err = s.saveOCI(ctx, tw, imgs)
	}
	if err != nil {
		return err
	}
	if err := tw.tw.Close(); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	s.saveEvents(ctx, imgs)
	return nil
}

// SaveLayout writes the images refs as a new OCI image layout directory
// dir, which must not exist. The layout is built in a temporary directory
// beside dir and renamed to dir once complete.
func (s *Store) SaveLayout(ctx context.Context, dir string, refs []string) (err error) {
	if _, err := os.Lstat(dir); err == nil {
		return fmt.Errorf("save: %s already exists", dir)
	}
	imgs, err := s.saveImages(ctx, refs)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("save: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if err := s.saveOCI(ctx, &dirSink{root: tmp, written: map[string]bool{}}, imgs); err != nil {
		return err
	}
	if err := syncDir(tmp); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, dir, unix.RENAME_NOREPLACE); err != nil {
		return fmt.Errorf("save: rename to %s: %w", dir, err)
	}
	s.saveEvents(ctx, imgs)
	return nil
}

// saveImages resolves the refs Save was given, with their manifests.
func (s *Store) saveImages(ctx context.Context, refs []string) ([]savedImage, error) {
	if len(refs) == 0 {
		return nil, errors.New("save: no image given")
	}
	var out []savedImage
	for _, ref := range refs {
		img, err := s.Get(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("save: %w", err)
		}
		si := savedImage{img: img}
		if full, err := NormalizeName(ref); err == nil {
			if _, err := s.db.GetImage(ctx, full); err == nil {
				si.name = full
			} else if !errors.Is(err, metadata.ErrNotFound) {
				return nil, err
			}
		}
		data, err := s.readBlob(img.Target, image.MaxManifestSize)
		if err != nil {
			return nil, fmt.Errorf("save %s: manifest %s: %w", ref, img.Target.Digest, err)
		}
		if si.mf, err = image.ParseManifest(data); err != nil {
			return nil, fmt.Errorf("save %s: manifest %s: %w", ref, img.Target.Digest, err)
		}
		if err := image.CheckLayers(si.mf, img.Config); err != nil {
			return nil, fmt.Errorf("save %s: %w", ref, err)
		}
		out = append(out, si)
	}
	return out, nil
}

// sink receives the files of an archive or layout.
type sink interface {
	// has reports whether name was written already.
	has(name string) bool
	// file writes the file name of size bytes read from r.
	file(name string, size int64, r io.Reader) error
}

// blobName is the path of blob d in an OCI layout.
func blobName(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}

// saveBlob writes the stored blob desc, verified, to out.
func (s *Store) saveBlob(ctx context.Context, out sink, desc ocispec.Descriptor) error {
	name := blobName(desc.Digest)
	if out.has(name) {
		return nil
	}
	ra, err := s.cs.ReaderAt(desc.Digest)
	if err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	defer ra.Close()
	if ra.Size() != desc.Size {
		return fmt.Errorf("blob %s: stored with %d bytes, its descriptor says %d", desc.Digest, ra.Size(), desc.Size)
	}
	r := &verifier{r: &ctxReader{ctx, io.NewSectionReader(ra, 0, ra.Size())}, d: desc.Digest, v: desc.Digest.Verifier()}
	if err := out.file(name, desc.Size, r); err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	return nil
}

// saveJSON writes v as a blob and returns its descriptor.
func saveJSON(out sink, mediaType string, v any) (ocispec.Descriptor, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
	if name := blobName(desc.Digest); !out.has(name) {
		if err := out.file(name, desc.Size, bytes.NewReader(data)); err != nil {
			return desc, err
		}
	}
	return desc, nil
}

// saveOCI writes the images as an OCI layout: the stored blobs as they
// are, and an index.json entry for each name (one without names for an
// image asked by ID).
func (s *Store) saveOCI(ctx context.Context, out sink, imgs []savedImage) error {
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	for _, si := range imgs {
		what := si.name
		if what == "" {
			what = si.img.ID.String()
		}
		blobs := append([]ocispec.Descriptor{si.mf.Config}, si.mf.Layers...)
		blobs = append(blobs, si.img.Target)
		for _, b := range blobs {
			if err := s.saveBlob(ctx, out, b); err != nil {
				return fmt.Errorf("save %s: %w", what, err)
			}
		}
		idx.Manifests = append(idx.Manifests, indexEntry(si, si.img.Target))
	}
	return finishLayout(out, idx)
}

// indexEntry is the index.json entry of image si, whose manifest is desc.
func indexEntry(si savedImage, desc ocispec.Descriptor) ocispec.Descriptor {
	desc.Platform = &ocispec.Platform{OS: si.img.Config.OS, Architecture: si.img.Config.Architecture, Variant: si.img.Config.Variant}
	if si.name != "" {
		_, tag := SplitName(si.name)
		desc.Annotations = map[string]string{annotationImageName: si.name, ocispec.AnnotationRefName: tag}
	}
	return desc
}

// finishLayout writes index.json and oci-layout.
func finishLayout(out sink, idx ocispec.Index) error {
	data, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	if err := out.file(ocispec.ImageIndexFile, int64(len(data)), bytes.NewReader(data)); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	layout := []byte(`{"imageLayoutVersion":"` + ocispec.ImageLayoutVersion + `"}`)
	if err := out.file(ocispec.ImageLayoutFile, int64(len(layout)), bytes.NewReader(layout)); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return nil
}

// saveDocker writes the images as docker save does: layers uncompressed
// (named by their diff IDs), a new OCI manifest for them, manifest.json
// for docker-archive readers and an OCI index for the others.
func (s *Store) saveDocker(ctx context.Context, out sink, imgs []savedImage) error {
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}
	var dm image.DockerArchiveManifest
	sizes := map[digest.Digest]int64{} // uncompressed layers written
	for _, si := range imgs {
		what := si.name
		if what == "" {
			what = si.img.ID.String()
		}
		cfg := si.mf.Config
		if err := s.saveBlob(ctx, out, cfg); err != nil {
			return fmt.Errorf("save %s: config: %w", what, err)
		}
		cfg.MediaType = ocispec.MediaTypeImageConfig
		mf := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfg}
		entry := image.DockerArchiveEntry{Config: blobName(cfg.Digest), RepoTags: []string{}}
		diffIDs := si.img.Config.RootFS.DiffIDs
		chainIDs := image.ChainIDs(diffIDs)
		for i, layer := range si.mf.Layers {
			size, err := s.saveLayer(ctx, out, sizes, layer, diffIDs[i], chainIDs[i])
			if err != nil {
				return fmt.Errorf("save %s: layer %d: %w", what, i, err)
			}
			mf.Layers = append(mf.Layers, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: diffIDs[i], Size: size})
			entry.Layers = append(entry.Layers, blobName(diffIDs[i]))
		}
		desc, err := saveJSON(out, ocispec.MediaTypeImageManifest, mf)
		if err != nil {
			return fmt.Errorf("save %s: manifest: %w", what, err)
		}
		if si.name != "" {
			repo, tag := SplitName(si.name)
			entry.RepoTags = append(entry.RepoTags, repo+":"+tag)
		}
		dm = append(dm, entry)
		idx.Manifests = append(idx.Manifests, indexEntry(si, desc))
	}
	data, err := json.Marshal(dm)
	if err != nil {
		return err
	}
	if err := out.file("manifest.json", int64(len(data)), bytes.NewReader(data)); err != nil {
		return fmt.Errorf("save: %w", err)
	}
	return finishLayout(out, idx)
}

// saveLayer writes the layer blob uncompressed as blobs/sha256/<diffID>,
// unless sizes says it was written already, and returns its size. The size
// comes from the layer's snapshot, recorded at unpack; for a layer never
// unpacked the blob is decompressed once more to count it. What is written
// is checked against diffID.
func (s *Store) saveLayer(ctx context.Context, out sink, sizes map[digest.Digest]int64, layer ocispec.Descriptor, diffID, chainID digest.Digest) (int64, error) {
	if n, ok := sizes[diffID]; ok {
		return n, nil
	}
	size, err := s.layerSize(ctx, layer, chainID)
	if err != nil {
		return 0, err
	}
	ra, err := s.cs.ReaderAt(layer.Digest)
	if err != nil {
		return 0, err
	}
	defer ra.Close()
	blob := &verifier{r: &ctxReader{ctx, io.NewSectionReader(ra, 0, ra.Size())}, d: layer.Digest, v: layer.Digest.Verifier()}
	dec, err := archive.DecompressStream(blob)
	if err != nil {
		return 0, err
	}
	defer dec.Close()
	r := &verifier{r: dec, d: diffID, v: diffID.Verifier()}
	if err := out.file(blobName(diffID), size, r); err != nil {
		return 0, fmt.Errorf("layer %s uncompressed: %w", layer.Digest, err)
	}
	sizes[diffID] = size
	return size, nil
}

// layerSize returns the uncompressed size of a layer: its snapshot's
// label, else a count.
func (s *Store) layerSize(ctx context.Context, layer ocispec.Descriptor, chainID digest.Digest) (int64, error) {
	if info, err := s.sn.Stat(chainID.String()); err == nil {
		if n, err := strconv.ParseInt(info.Labels[diffSizeLabel], 10, 64); err == nil && n >= 0 {
			return n, nil
		}
	}
	return s.countLayer(ctx, layer)
}

// countLayer returns the uncompressed size of a layer blob.
func (s *Store) countLayer(ctx context.Context, layer ocispec.Descriptor) (int64, error) {
	ra, err := s.cs.ReaderAt(layer.Digest)
	if err != nil {
		return 0, err
	}
	defer ra.Close()
	dec, err := archive.DecompressStream(&ctxReader{ctx, io.NewSectionReader(ra, 0, ra.Size())})
	if err != nil {
		return 0, err
	}
	defer dec.Close()
	return io.Copy(io.Discard, dec)
}

// verifier returns an error instead of io.EOF when what it read does not
// have digest d.
type verifier struct {
	r io.Reader
	d digest.Digest
	v digest.Verifier
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.v.Write(p[:n])
	if errors.Is(err, io.EOF) && !v.v.Verified() {
		return n, fmt.Errorf("content does not match its digest %s", v.d)
	}
	return n, err
}

// epoch is the modification time of every entry Save writes, so that the
// same images give the same archive.
var epoch = time.Unix(0, 0)

// tarSink writes files into a tar stream.
type tarSink struct {
	tw      *tar.Writer
	written map[string]bool
	dirs    map[string]bool
}

func (t *tarSink) has(name string) bool { return t.written[name] }

func (t *tarSink) file(name string, size int64, r io.Reader) error {
	if err := t.mkdirs(filepath.Dir(name)); err != nil {
		return err
	}
	hdr := &tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o444, Size: size, ModTime: epoch, Format: tar.FormatPAX}
	if err := t.tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.CopyN(t.tw, r, size)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s: %d bytes, %d expected", name, n, size)
		}
		return err
	}
	// Read on to EOF, where a verifying reader checks the digest.
	if extra, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	} else if extra > 0 {
		return fmt.Errorf("%s: more than the %d bytes expected", name, size)
	}
	t.written[name] = true
	return nil
}

func (t *tarSink) mkdirs(dir string) error {
	if dir == "." || t.dirs[dir] {
		return nil
	}
	if t.dirs == nil {
		t.dirs = map[string]bool{}
	}
	if err := t.mkdirs(filepath.Dir(dir)); err != nil {
		return err
	}
	t.dirs[dir] = true
	return t.tw.WriteHeader(&tar.Header{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX})
}

// dirSink writes files under a directory.
type dirSink struct {
	root    string
	written map[string]bool
}

func (d *dirSink) has(name string) bool { return d.written[name] }

func (d *dirSink) file(name string, size int64, r io.Reader) error {
	p := filepath.Join(d.root, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(r, size+1))
	if err == nil && n != size {
		err = fmt.Errorf("%s: %d bytes, %d expected", name, n, size)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	d.written[name] = true
	return nil
}
