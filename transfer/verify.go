package transfer

import (
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/image"
)

// verifyReader passes a blob through, hashing it, and at its end returns
// an error wrapping image.ErrDigestMismatch instead of io.EOF when the
// content does not have the descriptor's size and digest. It never hands
// out bytes past the descriptor's size.
type verifyReader struct {
	r    io.Reader
	desc ocispec.Descriptor
	dg   digest.Digester
	n    int64
	err  error
}

func newVerifyReader(r io.Reader, desc ocispec.Descriptor) *verifyReader {
	return &verifyReader{r: io.LimitReader(r, desc.Size+1), desc: desc, dg: desc.Digest.Algorithm().Digester()}
}

func (v *verifyReader) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	n, err := v.r.Read(p)
	if v.n+int64(n) > v.desc.Size {
		n = int(v.desc.Size - v.n)
		err = fmt.Errorf("blob %s: more than its %d bytes: %w", v.desc.Digest, v.desc.Size, image.ErrDigestMismatch)
	}
	v.n += int64(n)
	v.dg.Hash().Write(p[:n])
	if err == io.EOF {
		if v.n != v.desc.Size {
			err = fmt.Errorf("blob %s: %d bytes, want %d: %w", v.desc.Digest, v.n, v.desc.Size, image.ErrDigestMismatch)
		} else if got := v.dg.Digest(); got != v.desc.Digest {
			err = fmt.Errorf("blob %s: content has digest %s: %w", v.desc.Digest, got, image.ErrDigestMismatch)
		}
	}
	if err != nil {
		v.err = err
	}
	return n, err
}

// readAllVerified reads a whole blob of at most limit bytes and checks it.
func readAllVerified(rc io.ReadCloser, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	defer rc.Close()
	return image.ReadBlob(rc, desc, limit)
}
