package progress_test

import (
	"bytes"
	"io"
	"sync/atomic"
	"testing"

	"github.com/berth-project/berth/progress"
)

// onlyReader and onlyWriter hide WriterTo and ReaderFrom, so that every
// case below copies through io.Copy's 32 KiB buffer, the way a network
// body is read.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

// BenchmarkReader copies 256 MiB from memory with and without Reader; the
// ns/op of the three cases should match within noise.
func BenchmarkReader(b *testing.B) {
	const size = 256 << 20
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i)
	}
	var events atomic.Int64
	counting := progress.Func(func(progress.Event) { events.Add(1) })
	for _, bc := range []struct {
		name string
		wrap func(io.Reader) io.Reader
	}{
		{"plain", func(r io.Reader) io.Reader { return r }},
		{"discard", func(r io.Reader) io.Reader {
			return progress.Reader(r, progress.Discard, "aaaaaaaaaaaa", progress.StatusDownloading, size)
		}},
		{"func", func(r io.Reader) io.Reader {
			return progress.Reader(r, counting, "aaaaaaaaaaaa", progress.StatusDownloading, size)
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				r := bc.wrap(onlyReader{bytes.NewReader(data)})
				if n, err := io.Copy(onlyWriter{io.Discard}, r); err != nil || n != size {
					b.Fatalf("copied %d, %v", n, err)
				}
			}
		})
	}
}
