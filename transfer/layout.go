package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/image"
)

// layoutSource reads one image of an OCI image layout, in a directory or
// a tar: the index.json entry whose ref name is ref (or the only entry).
type layoutSource struct {
	what     string // "oci:DIR", for errors
	index    *ocispec.Index
	ref      string
	platform ocispec.Platform
	// blob opens blob d with its size; the content is not yet verified.
	blob  func(d digest.Digest) (io.ReadCloser, int64, error)
	close func() error
}

func openLayoutSource(dir, ref string, platform ocispec.Platform) (*layoutSource, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("oci:%s: %w", dir, err)
	}
	l, err := image.OpenLayout(dir)
	if err != nil {
		return nil, err
	}
	return &layoutSource{
		what: "oci:" + dir, index: l.Index(), ref: ref, platform: platform,
		blob:  l.Blob,
		close: func() error { return nil },
	}, nil
}

// entry returns the index.json entry the source reads.
func (s *layoutSource) entry() (ocispec.Descriptor, error) {
	ms := s.index.Manifests
	if s.ref == "" {
		if len(ms) != 1 {
			return ocispec.Descriptor{}, fmt.Errorf("%s holds %d images; name one as %s:REF (%s)", s.what, len(ms), s.what, strings.Join(refNames(ms), ", "))
		}
		return ms[0], nil
	}
	for _, m := range ms {
		if m.Annotations[ocispec.AnnotationRefName] == s.ref {
			return m, nil
		}
	}
	return ocispec.Descriptor{}, fmt.Errorf("%s: no image with ref name %q in index.json (it has: %s)", s.what, s.ref, strings.Join(refNames(ms), ", "))
}

func refNames(ms []ocispec.Descriptor) []string {
	var out []string
	for _, m := range ms {
		if n := m.Annotations[ocispec.AnnotationRefName]; n != "" {
			out = append(out, n)
		} else {
			out = append(out, "(unnamed "+m.Digest.String()+")")
		}
	}
	if len(out) == 0 {
		return []string{"no images"}
	}
	return out
}

func (s *layoutSource) readDoc(desc ocispec.Descriptor) ([]byte, error) {
	rc, _, err := s.blob(desc.Digest)
	if err != nil {
		return nil, err
	}
	return readAllVerified(rc, desc, image.MaxManifestSize)
}

func (s *layoutSource) Manifest(context.Context) (ocispec.Descriptor, []byte, error) {
	e, err := s.entry()
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	desc := ocispec.Descriptor{MediaType: e.MediaType, Digest: e.Digest, Size: e.Size}
	data, err := s.readDoc(desc)
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%s: %w", s.what, err)
	}
	desc, data, err = resolveManifest(desc, data, s.platform, s.readDoc)
	if err != nil {
		return ocispec.Descriptor{}, nil, fmt.Errorf("%s: %w", s.what, err)
	}
	return desc, data, nil
}

func (s *layoutSource) Blob(_ context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	rc, size, err := s.blob(desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.what, err)
	}
	if size != desc.Size {
		rc.Close()
		return nil, fmt.Errorf("%s: blob %s has %d bytes, its descriptor says %d: %w", s.what, desc.Digest, size, desc.Size, image.ErrDigestMismatch)
	}
	return rc, nil
}

func (s *layoutSource) Close() error { return s.close() }

// layoutWriter writes blobs and index.json into an OCI layout directory.
// Blobs go through a temporary file in blobs/ALG/, renamed into place once
// verified; the files it created are listed so that an abandoned copy
// can remove them.
type layoutWriter struct {
	dir     string
	created []string
}

func blobPath(dir string, d digest.Digest) string {
	return filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
}

func (w *layoutWriter) has(desc ocispec.Descriptor) (bool, error) {
	if err := desc.Digest.Validate(); err != nil {
		return false, err
	}
	st, err := os.Lstat(blobPath(w.dir, desc.Digest))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// A file of the wrong size is replaced; its content is trusted as the
	// layout's own otherwise, as skopeo does.
	return st.Mode().IsRegular() && st.Size() == desc.Size, nil
}

// putBlob writes r, which must verify itself, as the blob desc.
func (w *layoutWriter) putBlob(desc ocispec.Descriptor, r io.Reader) error {
	if err := desc.Digest.Validate(); err != nil {
		return err
	}
	path := blobPath(w.dir, desc.Digest)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := WriteFileAtomic(path, 0o644, func(f io.Writer) error {
		n, err := io.Copy(f, r)
		if err == nil && n != desc.Size {
			err = fmt.Errorf("wrote %d bytes, want %d", n, desc.Size)
		}
		return err
	}); err != nil {
		return err
	}
	w.created = append(w.created, path)
	return nil
}

func (w *layoutWriter) putBytes(desc ocispec.Descriptor, data []byte) error {
	if ok, err := w.has(desc); err != nil || ok {
		return err
	}
	return w.putBlob(desc, newVerifyReader(strings.NewReader(string(data)), desc))
}

// removeCreated removes the blobs the writer created.
func (w *layoutWriter) removeCreated() {
	for _, p := range w.created {
		os.Remove(p)
		// Directories the writer made are removed too when left empty.
		os.Remove(filepath.Dir(p))
		os.Remove(filepath.Dir(filepath.Dir(p)))
	}
	w.created = nil
}

// readIndex reads the layout's index.json, or returns an empty index when
// there is none.
func readIndex(dir string) (*ocispec.Index, error) {
	data, err := os.ReadFile(filepath.Join(dir, ocispec.ImageIndexFile))
	if errors.Is(err, fs.ErrNotExist) {
		return &ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex}, nil
	}
	if err != nil {
		return nil, err
	}
	return image.ParseIndex(data)
}

// addToIndex writes index.json and oci-layout with desc as the image
// named ref: an entry with the same ref name is replaced (without a ref,
// an unnamed entry of the same manifest).
func addToIndex(dir string, desc ocispec.Descriptor, ref string) error {
	idx, err := readIndex(dir)
	if err != nil {
		return fmt.Errorf("%s: %w", ocispec.ImageIndexFile, err)
	}
	entry := ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}
	if ref != "" {
		entry.Annotations = map[string]string{ocispec.AnnotationRefName: ref}
	}
	kept := idx.Manifests[:0]
	for _, m := range idx.Manifests {
		name := m.Annotations[ocispec.AnnotationRefName]
		if name == ref && (ref != "" || m.Digest == desc.Digest) {
			continue
		}
		kept = append(kept, m)
	}
	idx.Manifests = append(kept, entry)
	if idx.MediaType == "" {
		idx.MediaType = ocispec.MediaTypeImageIndex
	}
	data, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	layout := filepath.Join(dir, ocispec.ImageLayoutFile)
	if _, err := os.Stat(layout); errors.Is(err, fs.ErrNotExist) {
		if err := writeFileBytes(layout, []byte(`{"imageLayoutVersion":"`+ocispec.ImageLayoutVersion+`"}`)); err != nil {
			return err
		}
	}
	return writeFileBytes(filepath.Join(dir, ocispec.ImageIndexFile), data)
}

// layoutDest writes an image into an OCI layout directory: into a new
// directory built beside DIR and renamed to it by Commit, or, when DIR is
// a layout already (or an empty directory), into it, index.json last.
type layoutDest struct {
	final   string // DIR
	ref     string
	w       layoutWriter
	inPlace bool
	desc    ocispec.Descriptor
	done    bool
}

func newLayoutDest(dir, ref string) (*layoutDest, error) {
	d := &layoutDest{final: dir, ref: ref}
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		tmp, err := os.MkdirTemp(filepath.Dir(dir), "."+filepath.Base(dir)+".tmp-")
		if err != nil {
			return nil, fmt.Errorf("oci:%s: %w", dir, err)
		}
		if err := os.Chmod(tmp, 0o755); err != nil {
			os.RemoveAll(tmp)
			return nil, fmt.Errorf("oci:%s: %w", dir, err)
		}
		d.w.dir = tmp
		return d, nil
	case err != nil:
		return nil, fmt.Errorf("oci:%s: %w", dir, err)
	case !st.IsDir():
		return nil, fmt.Errorf("oci:%s: not a directory", dir)
	}
	if data, err := os.ReadFile(filepath.Join(dir, ocispec.ImageLayoutFile)); err == nil {
		if err := image.CheckLayoutVersion(data); err != nil {
			return nil, fmt.Errorf("oci:%s: %w", dir, err)
		}
	} else if ents, err := os.ReadDir(dir); err != nil || len(ents) > 0 {
		return nil, fmt.Errorf("oci:%s: exists and is neither an OCI layout nor empty", dir)
	}
	d.w.dir, d.inPlace = dir, true
	return d, nil
}

func (d *layoutDest) HasBlob(_ context.Context, desc ocispec.Descriptor) (bool, error) {
	return d.w.has(desc)
}

func (d *layoutDest) PutBlob(_ context.Context, desc ocispec.Descriptor, open BlobOpener) error {
	rc, err := open(0)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := d.w.putBlob(desc, rc); err != nil {
		return fmt.Errorf("oci:%s: %w", d.final, err)
	}
	return nil
}

func (d *layoutDest) PutManifest(_ context.Context, desc ocispec.Descriptor, data []byte) error {
	if err := d.w.putBytes(desc, data); err != nil {
		return fmt.Errorf("oci:%s: %w", d.final, err)
	}
	d.desc = desc
	return nil
}

func (d *layoutDest) Commit(context.Context) (ocispec.Descriptor, error) {
	if d.desc.Digest == "" {
		return ocispec.Descriptor{}, fmt.Errorf("oci:%s: commit without a manifest", d.final)
	}
	if err := addToIndex(d.w.dir, d.desc, d.ref); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("oci:%s: %w", d.final, err)
	}
	if !d.inPlace {
		if err := syncTree(d.w.dir); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("oci:%s: %w", d.final, err)
		}
		if err := renameNoReplace(d.w.dir, d.final); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("oci:%s: %w", d.final, err)
		}
	}
	d.done = true
	return d.desc, nil
}

func (d *layoutDest) Close() error {
	if d.done {
		return nil
	}
	d.done = true
	if !d.inPlace {
		return os.RemoveAll(d.w.dir)
	}
	d.w.removeCreated()
	return nil
}
