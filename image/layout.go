package image

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// maxLayoutFileSize caps the oci-layout file.
const maxLayoutFileSize = 64 << 10

// Layout is an OCI image layout directory (oci-layout, index.json,
// blobs/<alg>/<encoded>) opened for reading. Every file is opened without
// leaving the directory (symlinks are resolved inside it), must be a
// regular file, and every blob is verified against its digest as it is read.
type Layout struct {
	dir   string
	index *ocispec.Index
}

// OpenLayout opens the OCI image layout at dir: it checks the oci-layout
// file's imageLayoutVersion (1.x) and reads and validates index.json
// ([ParseIndex], capped at [MaxManifestSize]).
func OpenLayout(dir string) (*Layout, error) {
	l := &Layout{dir: dir}
	data, err := l.readFile(ocispec.ImageLayoutFile, maxLayoutFileSize)
	if err != nil {
		return nil, err
	}
	if err := CheckLayoutVersion(data); err != nil {
		return nil, fmt.Errorf("oci layout %s: %w", dir, err)
	}
	data, err = l.readFile(ocispec.ImageIndexFile, MaxManifestSize)
	if err != nil {
		return nil, err
	}
	idx, err := ParseIndex(data)
	if err != nil {
		return nil, fmt.Errorf("oci layout %s: %s: %w", dir, ocispec.ImageIndexFile, err)
	}
	l.index = idx
	return l, nil
}

// CheckLayoutVersion checks the content of an oci-layout file: JSON with
// an imageLayoutVersion of 1.x.
func CheckLayoutVersion(data []byte) error {
	var ol ocispec.ImageLayout
	if err := json.Unmarshal(data, &ol); err != nil {
		return fmt.Errorf("%s: %w", ocispec.ImageLayoutFile, err)
	}
	if !strings.HasPrefix(ol.Version, "1.") {
		return fmt.Errorf("%s: unsupported imageLayoutVersion %q (want 1.x)", ocispec.ImageLayoutFile, ol.Version)
	}
	return nil
}

// Index returns the layout's index.json. The caller may modify the result.
func (l *Layout) Index() *ocispec.Index {
	idx := *l.index
	idx.Manifests = append([]ocispec.Descriptor(nil), l.index.Manifests...)
	return &idx
}

// Blob opens the blob with digest d and returns it with its size. The
// reader returns an error wrapping [ErrDigestMismatch] instead of io.EOF if
// the content does not have digest d, so a caller that reads to EOF has
// verified what it read. d is validated before it is used in a path.
func (l *Layout) Blob(d digest.Digest) (io.ReadCloser, int64, error) {
	if err := d.Validate(); err != nil {
		return nil, 0, fmt.Errorf("oci layout %s: blob digest %q: %w", l.dir, d, err)
	}
	f, size, err := l.open("blobs/" + d.Algorithm().String() + "/" + d.Encoded())
	if err != nil {
		return nil, 0, fmt.Errorf("oci layout %s: blob %s: %w", l.dir, d, err)
	}
	return newVerifyReader(f, d, size), size, nil
}

// ReadBlob reads and verifies the blob desc describes ([ReadBlob]), which
// must be at most limit bytes.
func (l *Layout) ReadBlob(desc ocispec.Descriptor, limit int64) ([]byte, error) {
	rc, _, err := l.Blob(desc.Digest)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := ReadBlob(rc, desc, limit)
	if err != nil {
		return nil, fmt.Errorf("oci layout %s: %w", l.dir, err)
	}
	return data, nil
}

func (l *Layout) readFile(name string, limit int64) ([]byte, error) {
	f, size, err := l.open(name)
	if err != nil {
		return nil, fmt.Errorf("oci layout %s: %s: %w", l.dir, name, err)
	}
	defer f.Close()
	if size > limit {
		return nil, fmt.Errorf("oci layout %s: %s is %d bytes, more than the limit of %d", l.dir, name, size, limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("oci layout %s: %s: %w", l.dir, name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("oci layout %s: %s is more than the limit of %d bytes", l.dir, name, limit)
	}
	return data, nil
}

// open opens the regular file at rel inside the layout, resolving symlinks
// within the layout directory, and returns it with its size.
func (l *Layout) open(rel string) (*os.File, int64, error) {
	h, err := pathrs.OpenInRoot(l.dir, rel)
	if err != nil {
		return nil, 0, err
	}
	defer h.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &st); err != nil {
		return nil, 0, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, 0, fmt.Errorf("not a regular file (mode %#o)", st.Mode)
	}
	f, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return nil, 0, err
	}
	return f, st.Size, nil
}
