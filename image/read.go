package image

import (
	"errors"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ReadBlob reads the blob desc describes from r, refusing it before reading
// if desc.Size is over limit and while reading if more than limit bytes
// arrive, and checks that what was read has desc's size and digest. Use it
// with [MaxManifestSize] or [MaxConfigSize] to read a JSON document.
func ReadBlob(r io.Reader, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("read blob: digest %q: %w", desc.Digest, err)
	}
	if desc.Size < 0 {
		return nil, fmt.Errorf("read blob %s: negative size %d", desc.Digest, desc.Size)
	}
	if desc.Size > limit {
		return nil, fmt.Errorf("read blob %s: size %d is more than the limit of %d bytes", desc.Digest, desc.Size, limit)
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read blob %s: %w", desc.Digest, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("read blob %s: more than the limit of %d bytes", desc.Digest, limit)
	}
	if int64(len(data)) != desc.Size {
		return nil, fmt.Errorf("read blob %s: got %d bytes, want %d", desc.Digest, len(data), desc.Size)
	}
	if got := desc.Digest.Algorithm().FromBytes(data); got != desc.Digest {
		return nil, fmt.Errorf("read blob %s: content has digest %s", desc.Digest, got)
	}
	return data, nil
}

// ErrDigestMismatch is matched (errors.Is) by the error a verifying reader
// returns when the content it read does not have the expected digest or size.
var ErrDigestMismatch = errors.New("content does not match its digest")

// verifyReader passes r through, hashing it, and at EOF returns an error
// instead of io.EOF if the content's size or digest is not the expected one.
// It never reads more than size+1 bytes from r.
type verifyReader struct {
	r        io.Reader
	rc       io.Closer
	d        digest.Digest
	size     int64
	n        int64
	verifier digest.Verifier
	err      error
}

func newVerifyReader(rc io.ReadCloser, d digest.Digest, size int64) *verifyReader {
	return &verifyReader{
		r:        io.LimitReader(rc, size+1),
		rc:       rc,
		d:        d,
		size:     size,
		verifier: d.Verifier(),
	}
}

func (v *verifyReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	v.n += int64(n)
	v.verifier.Write(p[:n])
	if v.n > v.size {
		n -= int(v.n - v.size) // never hand out bytes past the expected size
		v.err = fmt.Errorf("blob %s: more than its %d bytes: %w", v.d, v.size, ErrDigestMismatch)
		return n, v.err
	}
	if err == io.EOF {
		switch {
		case v.n != v.size:
			err = fmt.Errorf("blob %s: %d bytes, want %d: %w", v.d, v.n, v.size, ErrDigestMismatch)
		case !v.verifier.Verified():
			err = fmt.Errorf("blob %s: %w", v.d, ErrDigestMismatch)
		}
	}
	if err != nil {
		v.err = err
	}
	return n, err
}

func (v *verifyReader) Close() error { return v.rc.Close() }
