package archive

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/berth-project/berth/internal/testimage"
)

// BenchmarkApplyBusybox applies the busybox layer again and again; MB/s
// counts uncompressed layer bytes.
func BenchmarkApplyBusybox(b *testing.B) {
	images := testimage.Build(b, "busybox")
	img := loadImage(b, filepath.Join(images, "busybox"))
	blob, err := os.ReadFile(img.blob(img.layers[0].Digest))
	if err != nil {
		b.Fatal(err)
	}
	rc, err := DecompressStream(bytes.NewReader(blob))
	if err != nil {
		b.Fatal(err)
	}
	raw, err := io.ReadAll(rc)
	if err != nil {
		b.Fatal(err)
	}

	feeds := map[string]func() (io.ReadCloser, error){
		// The tar stream already in memory: the cost of Apply alone.
		"uncompressed": func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil },
		// Decompressing in the same goroutine as Apply.
		"gzip": func() (io.ReadCloser, error) { return DecompressStream(bytes.NewReader(blob)) },
		// Decompressing in another goroutine, handing Apply the bytes
		// through a pipe, so both cores work.
		"gzip-pipelined": func() (io.ReadCloser, error) {
			zr, err := DecompressStream(bytes.NewReader(blob))
			if err != nil {
				return nil, err
			}
			pr, pw := io.Pipe()
			go func() {
				_, err := io.CopyBuffer(pw, zr, make([]byte, 256<<10))
				zr.Close()
				pw.CloseWithError(err)
			}()
			return pr, nil
		},
	}
	for _, name := range []string{"uncompressed", "gzip", "gzip-pipelined"} {
		feed := feeds[name]
		b.Run(name, func(b *testing.B) {
			base := b.TempDir()
			b.SetBytes(int64(len(raw)))
			for i := 0; b.Loop(); i++ {
				dir := filepath.Join(base, strconv.Itoa(i))
				if err := os.Mkdir(dir, 0o755); err != nil {
					b.Fatal(err)
				}
				r, err := feed()
				if err != nil {
					b.Fatal(err)
				}
				d, err := Apply(context.Background(), dir, r, ApplyOptions{})
				r.Close()
				if err != nil {
					b.Fatal(err)
				}
				if d != img.config.RootFS.DiffIDs[0] {
					b.Fatalf("diff ID %s", d)
				}
				b.StopTimer()
				os.RemoveAll(dir)
				b.StartTimer()
			}
		})
	}
}
