package archive

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Magic numbers of the compressions a layer may use.
var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicBzip2 = []byte("BZh")
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
)

// ErrUnsupportedCompression is returned by [DecompressStream] for a stream
// that is compressed in a format layers may not use (bzip2, xz).
var ErrUnsupportedCompression = errors.New("unsupported layer compression")

// DecompressStream returns the uncompressed bytes of a layer blob. The
// compression (gzip, zstd or none) is detected from the first bytes of r,
// whatever the media type claimed: a blob whose digest was verified is what
// it is. Gzip streams are checked against their CRC when their end is
// read, so the caller must read to EOF (as [Apply] does) to catch a
// corrupt trailer. Closing the result does not close r.
func DecompressStream(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic, err := br.Peek(len(magicXz))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("detect layer compression: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, magicGzip):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("open gzip layer: %w", err)
		}
		return zr, nil
	case bytes.HasPrefix(magic, magicZstd):
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("open zstd layer: %w", err)
		}
		return zr.IOReadCloser(), nil
	case bytes.HasPrefix(magic, magicBzip2):
		return nil, fmt.Errorf("%w: bzip2", ErrUnsupportedCompression)
	case bytes.HasPrefix(magic, magicXz):
		return nil, fmt.Errorf("%w: xz", ErrUnsupportedCompression)
	}
	return io.NopCloser(br), nil
}
