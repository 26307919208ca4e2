package transfer

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/image"
)

// openOCIArchiveSource opens an OCI layout in a tar file, reading its
// members in place.
func openOCIArchiveSource(file, ref string, platform ocispec.Platform) (*layoutSource, error) {
	t, err := openTarIndex(file, OCIArchive)
	if err != nil {
		return nil, err
	}
	what := "oci-archive:" + file
	idx, err := readArchiveIndex(t)
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return &layoutSource{
		what: what, index: idx, ref: ref, platform: platform,
		blob: func(d digest.Digest) (io.ReadCloser, int64, error) {
			if err := d.Validate(); err != nil {
				return nil, 0, fmt.Errorf("blob digest %q: %w", d, err)
			}
			return t.open("blobs/" + d.Algorithm().String() + "/" + d.Encoded())
		},
		close: t.Close,
	}, nil
}

func readArchiveIndex(t *tarIndex) (*ocispec.Index, error) {
	data, err := t.readFile(ocispec.ImageLayoutFile, 64<<10)
	if err != nil {
		if _, _, merr := t.open("manifest.json"); merr == nil {
			return nil, fmt.Errorf("not an OCI archive but a docker archive (manifest.json): use docker-archive:")
		}
		return nil, err
	}
	if err := image.CheckLayoutVersion(data); err != nil {
		return nil, err
	}
	if data, err = t.readFile(ocispec.ImageIndexFile, image.MaxManifestSize); err != nil {
		return nil, err
	}
	idx, err := image.ParseIndex(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ocispec.ImageIndexFile, err)
	}
	return idx, nil
}

// ociArchiveDest builds an OCI layout in a temporary directory beside
// FILE and, at Commit, writes it as a tar to FILE (through a temporary
// file renamed over it).
type ociArchiveDest struct {
	file string
	ref  string
	w    layoutWriter
	desc ocispec.Descriptor
}

func newOCIArchiveDest(file, ref string) (*ociArchiveDest, error) {
	if st, err := os.Stat(file); err == nil && st.IsDir() {
		return nil, fmt.Errorf("oci-archive:%s: is a directory", file)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(file), "."+filepath.Base(file)+".layout-")
	if err != nil {
		return nil, fmt.Errorf("oci-archive:%s: %w", file, err)
	}
	return &ociArchiveDest{file: file, ref: ref, w: layoutWriter{dir: tmp}}, nil
}

func (d *ociArchiveDest) HasBlob(_ context.Context, desc ocispec.Descriptor) (bool, error) {
	return d.w.has(desc)
}

func (d *ociArchiveDest) PutBlob(_ context.Context, desc ocispec.Descriptor, open BlobOpener) error {
	rc, err := open(0)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := d.w.putBlob(desc, rc); err != nil {
		return fmt.Errorf("oci-archive:%s: %w", d.file, err)
	}
	return nil
}

func (d *ociArchiveDest) PutManifest(_ context.Context, desc ocispec.Descriptor, data []byte) error {
	if err := d.w.putBytes(desc, data); err != nil {
		return fmt.Errorf("oci-archive:%s: %w", d.file, err)
	}
	d.desc = desc
	return nil
}

func (d *ociArchiveDest) Commit(context.Context) (ocispec.Descriptor, error) {
	if d.desc.Digest == "" {
		return ocispec.Descriptor{}, fmt.Errorf("oci-archive:%s: commit without a manifest", d.file)
	}
	if err := addToIndex(d.w.dir, d.desc, d.ref); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("oci-archive:%s: %w", d.file, err)
	}
	files, err := layoutFiles(d.w.dir)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("oci-archive:%s: %w", d.file, err)
	}
	if err := WriteFileAtomic(d.file, 0o644, func(w io.Writer) error { return writeTar(w, files) }); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("oci-archive:%s: %w", d.file, err)
	}
	return d.desc, nil
}

func (d *ociArchiveDest) Close() error { return os.RemoveAll(d.w.dir) }
