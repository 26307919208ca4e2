package engine

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/image"
)

// annotationImageName is the annotation containerd and docker put on the
// entries of an OCI archive's index.json: the image's full name.
const annotationImageName = "io.containerd.image.name"

// LoadOptions tune Load and LoadLayout.
type LoadOptions struct {
	// Name is an extra name for the image when the archive holds exactly
	// one (an OCI layout whose index names it only by a tag, "latest",
	// gives it none).
	Name string
	// Platform is the platform chosen from an index; the zero value means
	// this machine's (image.DefaultPlatform).
	Platform ocispec.Platform
}

// Loaded is an image Load recorded.
type Loaded struct {
	// Names are the image's normalized names; none for an image recorded
	// by ID only.
	Names []string
	// ID is the digest of the image config.
	ID digest.Digest
	// Target is the manifest recorded.
	Target ocispec.Descriptor
}

// loader is one Load: its lease and the archive it reads.
type loader struct {
	s        *Store
	ctx      context.Context
	lease    string
	platform ocispec.Platform
	n        int // ingests started, for unique refs
	// ensure puts the blob desc into the content store, verified, under
	// the lease (OCI sources).
	ensure func(desc ocispec.Descriptor) error
}

// Load reads an image archive from r and records its images: a "docker
// save" archive (manifest.json, with layer tars and config files, as docker
// and podman write it) or an OCI image layout in a tar (oci-layout,
// index.json, blobs/), either of them uncompressed or gzip or zstd
// compressed. The archive is read once, front to back; every blob is
// verified before it is committed, every layer unpacked (side by side
// where the snapshotter allows) and checked against its diff ID.
//
// Images are recorded only after all of them are complete: on error no
// image is recorded or changed, and a garbage collection removes what the
// load had written, so the store is as it was before.
func (s *Store) Load(ctx context.Context, r io.Reader, opts LoadOptions) (_ []Loaded, err error) {
	l, done, err := s.newLoader(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer func() { done(err) }()
	sp, err := l.spoolArchive(r)
	if err != nil {
		return nil, err
	}
	var imgs []Loaded
	if f, err := sp.lookup("manifest.json"); err == nil {
		data, err := l.read(f, image.MaxManifestSize)
		if err != nil {
			return nil, fmt.Errorf("docker archive: %w", err)
		}
		m, err := image.ParseDockerArchiveManifest(data)
		if err != nil {
			return nil, fmt.Errorf("docker archive: %w", err)
		}
		if imgs, err = l.loadDocker(sp, m); err != nil {
			return nil, err
		}
	} else {
		idx, err := l.spoolIndex(sp)
		if err != nil {
			return nil, err
		}
		l.ensure = func(desc ocispec.Descriptor) error { return l.ensureSpooled(sp, desc) }
		if imgs, err = l.loadOCI(idx); err != nil {
			return nil, fmt.Errorf("oci archive: %w", err)
		}
	}
	return l.record(imgs, opts.Name)
}

// LoadLayout records the images of the OCI image layout directory dir, as
// Load does for an archive.
func (s *Store) LoadLayout(ctx context.Context, dir string, opts LoadOptions) (_ []Loaded, err error) {
	layout, err := image.OpenLayout(dir)
	if err != nil {
		return nil, err
	}
	l, done, err := s.newLoader(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer func() { done(err) }()
	l.ensure = func(desc ocispec.Descriptor) error { return l.ensureFromLayout(layout, desc) }
	imgs, err := l.loadOCI(layout.Index())
	if err != nil {
		return nil, fmt.Errorf("oci layout %s: %w", dir, err)
	}
	return l.record(imgs, opts.Name)
}

// newLoader starts a load under a new lease. The returned func ends it:
// it deletes the lease and, if the load failed, collects the garbage it
// left.
func (s *Store) newLoader(ctx context.Context, opts LoadOptions) (*loader, func(error), error) {
	platform := opts.Platform
	if platform.OS == "" {
		platform = image.DefaultPlatform()
	}
	lease, err := s.newLease(ctx, "load")
	if err != nil {
		return nil, nil, err
	}
	l := &loader{s: s, ctx: ctx, lease: lease, platform: platform}
	return l, func(err error) {
		ctx := context.WithoutCancel(ctx)
		s.db.DeleteLease(ctx, lease)
		if err != nil {
			s.GC(ctx)
		}
	}, nil
}

// record names the loaded images in the metadata database, all at the
// end, so that a failed load records none.
func (l *loader) record(imgs []Loaded, extra string) ([]Loaded, error) {
	if extra != "" {
		if len(imgs) != 1 {
			return nil, fmt.Errorf("a name (%s) can only be given to an archive of one image; this one has %d", extra, len(imgs))
		}
		name, err := NormalizeName(extra)
		if err != nil {
			return nil, err
		}
		imgs[0].Names = append(imgs[0].Names, name)
	}
	for _, img := range imgs {
		names := img.Names
		if len(names) == 0 {
			names = []string{""} // by ID, unless it has a name
		}
		for _, name := range names {
			if err := l.s.putName(l.ctx, name, img.Target, img.ID); err != nil {
				return nil, err
			}
			l.s.imageEvent(l.ctx, "load", img.ID.String(), name)
		}
	}
	return imgs, nil
}

// loadDocker loads the images of a docker-save archive: for each entry of
// manifest.json, its config and layer files become blobs and an OCI
// manifest is made for them.
func (l *loader) loadDocker(sp *spool, m image.DockerArchiveManifest) ([]Loaded, error) {
	var out []Loaded
	for i, e := range m {
		what := fmt.Sprintf("docker archive: image %d (config %s)", i, e.Config)
		if len(e.RepoTags) > 0 {
			what = fmt.Sprintf("docker archive: image %s", e.RepoTags[0])
		}
		img, err := l.loadDockerEntry(sp, e)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, img)
	}
	return out, nil
}

func (l *loader) loadDockerEntry(sp *spool, e image.DockerArchiveEntry) (Loaded, error) {
	var img Loaded
	for _, tag := range e.RepoTags {
		name, err := NormalizeName(tag)
		if err != nil {
			return img, fmt.Errorf("RepoTags: %w", err)
		}
		img.Names = append(img.Names, name)
	}
	cf, err := sp.lookup(e.Config)
	if err != nil {
		return img, fmt.Errorf("config: %w", err)
	}
	data, err := l.read(cf, image.MaxConfigSize)
	if err != nil {
		return img, fmt.Errorf("config: %w", err)
	}
	cfg, err := image.ParseConfig(data)
	if err != nil {
		return img, fmt.Errorf("config %s: %w", e.Config, err)
	}
	if len(e.Layers) != len(cfg.RootFS.DiffIDs) {
		return img, fmt.Errorf("manifest.json lists %d layers but config %s has %d rootfs.diff_ids", len(e.Layers), e.Config, len(cfg.RootFS.DiffIDs))
	}
	configDesc, err := l.ingestBytes(data, "")
	if err != nil {
		return img, fmt.Errorf("config %s: %w", e.Config, err)
	}
	// The manifest berth makes for a docker archive's image is an OCI
	// one, so that an OCI save of it is readable by OCI-only tools.
	configDesc.MediaType = ocispec.MediaTypeImageConfig
	mf := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    configDesc,
	}
	for _, name := range e.Layers {
		f, err := sp.lookup(name)
		if err != nil {
			return img, fmt.Errorf("layer: %w", err)
		}
		desc, err := l.blob(f)
		if err != nil {
			return img, fmt.Errorf("layer %s: %w", name, err)
		}
		if desc.MediaType, err = l.layerMediaType(desc.Digest); err != nil {
			return img, fmt.Errorf("layer %s: %w", name, err)
		}
		mf.Layers = append(mf.Layers, desc)
	}
	if err := l.s.unpackLayers(l.ctx, l.lease, mf.Layers, cfg.RootFS.DiffIDs); err != nil {
		return img, err
	}
	img.ID = configDesc.Digest
	img.Target, err = l.s.writeJSON(l.ctx, l.lease, mf.MediaType, mf)
	if err != nil {
		return img, fmt.Errorf("write manifest: %w", err)
	}
	return img, nil
}

// layerMediaType names the OCI media type of the layer blob d from its
// first bytes: gzip, zstd or a plain tar.
func (l *loader) layerMediaType(d digest.Digest) (string, error) {
	ra, err := l.s.cs.ReaderAt(d)
	if err != nil {
		return "", err
	}
	defer ra.Close()
	magic := make([]byte, 4)
	n, _ := ra.ReadAt(magic, 0)
	magic = magic[:n]
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		return ocispec.MediaTypeImageLayerGzip, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return ocispec.MediaTypeImageLayerZstd, nil
	}
	return ocispec.MediaTypeImageLayer, nil
}

// spoolIndex returns the index.json of an OCI archive, after checking its
// oci-layout file.
func (l *loader) spoolIndex(sp *spool) (*ocispec.Index, error) {
	lf, err := sp.lookup(ocispec.ImageLayoutFile)
	if err != nil {
		if _, ierr := sp.lookup(ocispec.ImageIndexFile); ierr != nil {
			return nil, fmt.Errorf("read archive: neither a docker archive (no manifest.json) nor an OCI archive (no index.json)")
		}
		return nil, fmt.Errorf("oci archive: %w", err)
	}
	data, err := l.read(lf, 64<<10)
	if err != nil {
		return nil, fmt.Errorf("oci archive: %w", err)
	}
	if err := image.CheckLayoutVersion(data); err != nil {
		return nil, fmt.Errorf("oci archive: %w", err)
	}
	f, err := sp.lookup(ocispec.ImageIndexFile)
	if err != nil {
		return nil, fmt.Errorf("oci archive: %w", err)
	}
	if data, err = l.read(f, image.MaxManifestSize); err != nil {
		return nil, fmt.Errorf("oci archive: %w", err)
	}
	idx, err := image.ParseIndex(data)
	if err != nil {
		return nil, fmt.Errorf("oci archive: index.json: %w", err)
	}
	return idx, nil
}

// ensureSpooled commits the blob desc from the archive's blobs/ files, or
// finds it in the store.
func (l *loader) ensureSpooled(sp *spool, desc ocispec.Descriptor) error {
	name := "blobs/" + desc.Digest.Algorithm().String() + "/" + desc.Digest.Encoded()
	f, err := sp.lookup(name)
	if err != nil {
		if ok, serr := l.inStore(desc); serr != nil || ok {
			return serr
		}
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	got, err := l.blob(f)
	if err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	if got.Digest != desc.Digest || got.Size != desc.Size {
		return fmt.Errorf("blob %s: the archive's file %s has digest %s and %d bytes, the descriptor says %d bytes", desc.Digest, f.name, got.Digest, got.Size, desc.Size)
	}
	return nil
}

// inStore reports whether the blob desc is already in the store, leasing
// it first (metadata's protocol) so that it stays there.
func (l *loader) inStore(desc ocispec.Descriptor) (bool, error) {
	return l.s.hasLeased(l.ctx, l.lease, desc)
}

// ensureFromLayout commits the blob desc from an OCI layout directory.
func (l *loader) ensureFromLayout(layout *image.Layout, desc ocispec.Descriptor) error {
	if ok, err := l.inStore(desc); err != nil || ok {
		return err
	}
	rc, size, err := layout.Blob(desc.Digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	if size != desc.Size {
		return fmt.Errorf("blob %s: file has %d bytes, the descriptor says %d", desc.Digest, size, desc.Size)
	}
	if _, err := l.ingest(rc, desc.Digest, size); err != nil {
		return fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	return nil
}

// loadOCI loads the images an OCI index.json lists, each resolved to the
// manifest of the load's platform.
func (l *loader) loadOCI(idx *ocispec.Index) ([]Loaded, error) {
	if len(idx.Manifests) == 0 {
		return nil, fmt.Errorf("index.json lists no images")
	}
	var out []Loaded
	for i, desc := range idx.Manifests {
		what := fmt.Sprintf("image %d (%s)", i, desc.Digest)
		if n := desc.Annotations[ocispec.AnnotationRefName]; n != "" {
			what = fmt.Sprintf("image %s (%s)", n, desc.Digest)
		}
		img, err := l.loadOCIImage(desc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, img)
	}
	return out, nil
}

func (l *loader) loadOCIImage(desc ocispec.Descriptor) (Loaded, error) {
	var img Loaded
	names, err := ociNames(desc.Annotations)
	if err != nil {
		return img, err
	}
	img.Names = names
	mdesc, err := l.resolve(desc, 0)
	if err != nil {
		return img, err
	}
	if err := l.ensure(mdesc); err != nil {
		return img, fmt.Errorf("manifest: %w", err)
	}
	data, err := l.s.readBlob(mdesc, image.MaxManifestSize)
	if err != nil {
		return img, fmt.Errorf("manifest %s: %w", mdesc.Digest, err)
	}
	mf, err := image.ParseManifest(data)
	if err != nil {
		return img, fmt.Errorf("manifest %s: %w", mdesc.Digest, err)
	}
	if err := l.ensure(mf.Config); err != nil {
		return img, fmt.Errorf("config: %w", err)
	}
	if data, err = l.s.readBlob(mf.Config, image.MaxConfigSize); err != nil {
		return img, fmt.Errorf("config %s: %w", mf.Config.Digest, err)
	}
	cfg, err := image.ParseConfig(data)
	if err != nil {
		return img, fmt.Errorf("config %s: %w", mf.Config.Digest, err)
	}
	if err := image.CheckLayers(mf, cfg); err != nil {
		return img, err
	}
	for i, layer := range mf.Layers {
		if err := l.ensure(layer); err != nil {
			return img, fmt.Errorf("layer %d: %w", i, err)
		}
	}
	if err := l.s.unpackLayers(l.ctx, l.lease, mf.Layers, cfg.RootFS.DiffIDs); err != nil {
		return img, err
	}
	img.ID, img.Target = mf.Config.Digest, mdesc
	img.Target.Annotations, img.Target.Platform = nil, nil
	return img, nil
}

// resolve returns the manifest desc stands for: desc itself, or the
// load's platform's entry of the index desc (nested up to maxIndexDepth).
func (l *loader) resolve(desc ocispec.Descriptor, depth int) (ocispec.Descriptor, error) {
	switch desc.MediaType {
	case image.MediaTypeOCIManifest, image.MediaTypeDockerManifest:
		return desc, nil
	case image.MediaTypeOCIIndex, image.MediaTypeDockerManifestList:
	default:
		return desc, fmt.Errorf("%s: media type %q is not an image manifest or index", desc.Digest, desc.MediaType)
	}
	if depth >= maxIndexDepth {
		return desc, fmt.Errorf("index %s: indexes nested more than %d deep", desc.Digest, maxIndexDepth)
	}
	if err := l.ensure(desc); err != nil {
		return desc, fmt.Errorf("index: %w", err)
	}
	data, err := l.s.readBlob(desc, image.MaxManifestSize)
	if err != nil {
		return desc, fmt.Errorf("index %s: %w", desc.Digest, err)
	}
	idx, err := image.ParseIndex(data)
	if err != nil {
		return desc, fmt.Errorf("index %s: %w", desc.Digest, err)
	}
	m, err := image.MatchIndex(idx, l.platform)
	if err != nil {
		return desc, fmt.Errorf("index %s: %w", desc.Digest, err)
	}
	return l.resolve(m, depth+1)
}

// ociNames returns the image names an index.json entry's annotations
// give: containerd's and docker's full name, else the OCI ref name when
// it is a reference ("busybox:1.36", "example.com/app") rather than a bare
// tag ("latest"), which names no repository.
func ociNames(ann map[string]string) ([]string, error) {
	if n := ann[annotationImageName]; n != "" {
		name, err := NormalizeName(n)
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %w", annotationImageName, err)
		}
		return []string{name}, nil
	}
	if n := ann[ocispec.AnnotationRefName]; strings.ContainsAny(n, "/:@") {
		name, err := NormalizeName(n)
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %w", ocispec.AnnotationRefName, err)
		}
		return []string{name}, nil
	}
	return nil, nil
}
