package transfer

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/archive"
	"github.com/berth-project/berth/engine"
	"github.com/berth-project/berth/image"
)

// annotationImageName is the index.json annotation docker and containerd
// give an image's full name.
const annotationImageName = "io.containerd.image.name"

// dockerManifest makes the Docker schema2 manifest of an image of a
// docker archive: its config and its uncompressed layers.
func dockerManifest(config ocispec.Descriptor, layers []ocispec.Descriptor) (ocispec.Descriptor, []byte, error) {
	mf := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: image.MediaTypeDockerManifest,
		Config:    ocispec.Descriptor{MediaType: image.MediaTypeDockerConfig, Digest: config.Digest, Size: config.Size},
		Layers:    []ocispec.Descriptor{},
	}
	for _, l := range layers {
		mf.Layers = append(mf.Layers, ocispec.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size})
	}
	data, err := json.Marshal(mf)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	return ocispec.Descriptor{MediaType: mf.MediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}, data, nil
}

// dockerArchiveSource reads one image of a docker save archive, with a
// Docker schema2 manifest made for it.
type dockerArchiveSource struct {
	what  string
	t     *tarIndex
	files map[digest.Digest]string // blob digest -> archive member
	desc  ocispec.Descriptor
	data  []byte
}

func openDockerArchiveSource(file, name string) (_ *dockerArchiveSource, err error) {
	t, err := openTarIndex(file, DockerArchive)
	if err != nil {
		return nil, err
	}
	s := &dockerArchiveSource{what: "docker-archive:" + file, t: t, files: map[digest.Digest]string{}}
	defer func() {
		if err != nil {
			t.Close()
			err = fmt.Errorf("%s: %w", s.what, err)
		}
	}()
	data, err := t.readFile("manifest.json", image.MaxManifestSize)
	if err != nil {
		if _, _, lerr := t.open(ocispec.ImageLayoutFile); lerr == nil {
			return nil, fmt.Errorf("not a docker archive (no manifest.json) but an OCI archive: use oci-archive:")
		}
		return nil, err
	}
	m, err := image.ParseDockerArchiveManifest(data)
	if err != nil {
		return nil, err
	}
	e, err := pickDockerEntry(m, name)
	if err != nil {
		return nil, err
	}
	cdata, err := t.readFile(e.Config, image.MaxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := image.ParseConfig(cdata)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", e.Config, err)
	}
	if len(e.Layers) != len(cfg.RootFS.DiffIDs) {
		return nil, fmt.Errorf("manifest.json lists %d layers but config %s has %d rootfs.diff_ids", len(e.Layers), e.Config, len(cfg.RootFS.DiffIDs))
	}
	config := ocispec.Descriptor{Digest: digest.FromBytes(cdata), Size: int64(len(cdata))}
	s.files[config.Digest] = e.Config
	var layers []ocispec.Descriptor
	for i, p := range e.Layers {
		l, err := s.layer(p)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", p, err)
		}
		if l.MediaType == image.MediaTypeDockerLayer && l.Digest != cfg.RootFS.DiffIDs[i] {
			return nil, fmt.Errorf("layer %s: content has digest %s, but the config's diff_id %d is %s", p, l.Digest, i, cfg.RootFS.DiffIDs[i])
		}
		s.files[l.Digest] = p
		layers = append(layers, l)
	}
	if s.desc, s.data, err = dockerManifest(config, layers); err != nil {
		return nil, err
	}
	return s, nil
}

// pickDockerEntry returns the archive's image named name, or its only
// one when name is "".
func pickDockerEntry(m image.DockerArchiveManifest, name string) (image.DockerArchiveEntry, error) {
	var tags []string
	for _, e := range m {
		tags = append(tags, e.RepoTags...)
	}
	if name == "" {
		if len(m) != 1 {
			return image.DockerArchiveEntry{}, fmt.Errorf("the archive holds %d images; name one as docker-archive:FILE:NAME (%s)", len(m), strings.Join(tags, ", "))
		}
		return m[0], nil
	}
	want, err := engine.NormalizeName(name)
	if err != nil {
		return image.DockerArchiveEntry{}, err
	}
	for _, e := range m {
		for _, tag := range e.RepoTags {
			if n, err := engine.NormalizeName(tag); err == nil && n == want {
				return e, nil
			}
		}
	}
	return image.DockerArchiveEntry{}, fmt.Errorf("no image %s in manifest.json (it has: %s)", name, strings.Join(tags, ", "))
}

// layer describes the layer file p: its digest (from its name when it is
// blobs/sha256/HEX, as docker 25 writes it, verified when copied; else
// counted) and its media type from its first bytes.
func (s *dockerArchiveSource) layer(p string) (ocispec.Descriptor, error) {
	rc, size, err := s.t.open(p)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	defer rc.Close()
	desc := ocispec.Descriptor{MediaType: image.MediaTypeDockerLayer, Size: size}
	magic := make([]byte, 4)
	n, _ := io.ReadFull(rc, magic)
	switch {
	case n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		desc.MediaType = image.MediaTypeDockerLayerGzip
	case n == 4 && bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		desc.MediaType = image.MediaTypeDockerLayerZstd
	}
	if hex, ok := strings.CutPrefix(p, "blobs/sha256/"); ok {
		if d := digest.NewDigestFromEncoded(digest.SHA256, hex); d.Validate() == nil {
			desc.Digest = d
			return desc, nil
		}
	}
	dg := digest.Canonical.Digester()
	dg.Hash().Write(magic[:n])
	if _, err := io.Copy(dg.Hash(), rc); err != nil {
		return ocispec.Descriptor{}, err
	}
	desc.Digest = dg.Digest()
	return desc, nil
}

func (s *dockerArchiveSource) Manifest(context.Context) (ocispec.Descriptor, []byte, error) {
	return s.desc, s.data, nil
}

func (s *dockerArchiveSource) Blob(_ context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	p, ok := s.files[desc.Digest]
	if !ok {
		return nil, fmt.Errorf("%s: no blob %s", s.what, desc.Digest)
	}
	rc, _, err := s.t.open(p)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.what, err)
	}
	return rc, nil
}

func (s *dockerArchiveSource) Close() error { return s.t.Close() }

// dockerArchiveDest writes an image as a docker save archive, in the form
// docker 25 and berth save write: the config and the uncompressed layers
// as blobs/sha256/ files, an OCI manifest and index.json for OCI readers,
// and manifest.json (last) for docker-archive readers. Blobs are kept in
// a temporary directory beside FILE until Commit writes the archive.
type dockerArchiveDest struct {
	file string
	name string // normalized docker reference, or ""
	w    layoutWriter
	desc ocispec.Descriptor
	data []byte
}

func newDockerArchiveDest(file, name string) (*dockerArchiveDest, error) {
	if name != "" {
		n, err := engine.NormalizeName(name)
		if err != nil {
			return nil, fmt.Errorf("docker-archive:%s: %w", file, err)
		}
		name = n
	}
	if st, err := os.Stat(file); err == nil && st.IsDir() {
		return nil, fmt.Errorf("docker-archive:%s: is a directory", file)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(file), "."+filepath.Base(file)+".blobs-")
	if err != nil {
		return nil, fmt.Errorf("docker-archive:%s: %w", file, err)
	}
	return &dockerArchiveDest{file: file, name: name, w: layoutWriter{dir: tmp}}, nil
}

func (d *dockerArchiveDest) HasBlob(_ context.Context, desc ocispec.Descriptor) (bool, error) {
	return d.w.has(desc)
}

func (d *dockerArchiveDest) PutBlob(_ context.Context, desc ocispec.Descriptor, open BlobOpener) error {
	rc, err := open(0)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := d.w.putBlob(desc, rc); err != nil {
		return fmt.Errorf("docker-archive:%s: %w", d.file, err)
	}
	return nil
}

func (d *dockerArchiveDest) PutManifest(_ context.Context, desc ocispec.Descriptor, data []byte) error {
	d.desc, d.data = desc, data
	return nil
}

func (d *dockerArchiveDest) Commit(ctx context.Context) (ocispec.Descriptor, error) {
	desc, err := d.commit(ctx)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("docker-archive:%s: %w", d.file, err)
	}
	return desc, nil
}

func (d *dockerArchiveDest) commit(ctx context.Context) (ocispec.Descriptor, error) {
	mf, err := image.ParseManifest(d.data)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("manifest %s: %w", d.desc.Digest, err)
	}
	f, err := os.Open(blobPath(d.w.dir, mf.Config.Digest))
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("config: %w", err)
	}
	cdata, err := readAllVerified(f, mf.Config, image.MaxConfigSize)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("config: %w", err)
	}
	cfg, err := image.ParseConfig(cdata)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("config %s: %w", mf.Config.Digest, err)
	}
	if err := image.CheckLayers(mf, cfg); err != nil {
		return ocispec.Descriptor{}, err
	}
	config := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: mf.Config.Digest, Size: mf.Config.Size}
	files := []tarFile{{blobName(config.Digest), blobPath(d.w.dir, config.Digest)}}
	entry := image.DockerArchiveEntry{Config: blobName(config.Digest), RepoTags: []string{}}
	var layers []ocispec.Descriptor
	written := map[digest.Digest]int64{}
	for i, l := range mf.Layers {
		diffID := cfg.RootFS.DiffIDs[i]
		size, ok := written[diffID]
		if !ok {
			if err := ctx.Err(); err != nil {
				return ocispec.Descriptor{}, err
			}
			path := filepath.Join(d.w.dir, "uncompressed-"+diffID.Encoded())
			if size, err = decompressLayer(blobPath(d.w.dir, l.Digest), path, diffID); err != nil {
				return ocispec.Descriptor{}, fmt.Errorf("layer %d (%s): %w", i, l.Digest, err)
			}
			written[diffID] = size
			files = append(files, tarFile{blobName(diffID), path})
		}
		layers = append(layers, ocispec.Descriptor{MediaType: image.MediaTypeDockerLayer, Digest: diffID, Size: size})
		entry.Layers = append(entry.Layers, blobName(diffID))
	}
	// The OCI manifest docker 25 writes beside manifest.json.
	ociLayers := make([]ocispec.Descriptor, len(layers))
	for i, l := range layers {
		ociLayers[i] = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: l.Digest, Size: l.Size}
	}
	ociMf, err := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: config, Layers: ociLayers})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	ociDesc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(ociMf), Size: int64(len(ociMf))}
	if err := d.w.putBytes(ociDesc, ociMf); err != nil {
		return ocispec.Descriptor{}, err
	}
	files = append(files, tarFile{blobName(ociDesc.Digest), blobPath(d.w.dir, ociDesc.Digest)})
	entryDesc := ociDesc
	entryDesc.Platform = &ocispec.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant}
	if d.name != "" {
		repo, tag := engine.SplitName(d.name)
		entry.RepoTags = append(entry.RepoTags, repo+":"+tag)
		entryDesc.Annotations = map[string]string{annotationImageName: d.name, ocispec.AnnotationRefName: tag}
	}
	idx, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{entryDesc}})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	manifestJSON, err := json.Marshal(image.DockerArchiveManifest{entry})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	for name, data := range map[string][]byte{
		ocispec.ImageLayoutFile: []byte(`{"imageLayoutVersion":"` + ocispec.ImageLayoutVersion + `"}`),
		ocispec.ImageIndexFile:  idx,
		"manifest.json":         manifestJSON,
	} {
		if err := os.WriteFile(filepath.Join(d.w.dir, name), data, 0o644); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	for _, name := range []string{ocispec.ImageLayoutFile, ocispec.ImageIndexFile, "manifest.json"} {
		files = append(files, tarFile{name, filepath.Join(d.w.dir, name)})
	}
	if err := WriteFileAtomic(d.file, 0o644, func(w io.Writer) error { return writeTar(w, files) }); err != nil {
		return ocispec.Descriptor{}, err
	}
	desc, _, err := dockerManifest(config, layers)
	return desc, err
}

// decompressLayer writes the layer blob at src uncompressed to dst and
// checks it against diffID; it returns the uncompressed size.
func decompressLayer(src, dst string, diffID digest.Digest) (int64, error) {
	f, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	dec, err := archive.DecompressStream(f)
	if err != nil {
		return 0, err
	}
	defer dec.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	dg := diffID.Algorithm().Digester()
	n, err := io.Copy(io.MultiWriter(out, dg.Hash()), dec)
	if err != nil {
		return 0, fmt.Errorf("decompress: %w", err)
	}
	if got := dg.Digest(); got != diffID {
		return 0, fmt.Errorf("uncompressed content has digest %s, but the config's diff_id is %s: %w", got, diffID, image.ErrDigestMismatch)
	}
	return n, out.Close()
}

func blobName(d digest.Digest) string {
	return "blobs/" + d.Algorithm().String() + "/" + d.Encoded()
}

func (d *dockerArchiveDest) Close() error { return os.RemoveAll(d.w.dir) }
