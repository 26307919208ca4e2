package content

import (
	"bytes"
	"context"
	"testing"

	"github.com/opencontainers/go-digest"
)

// BenchmarkIngest measures a 64 MiB ingest (hash, write, fsync, rename)
// into a store on the test's temporary file system.
func BenchmarkIngest(b *testing.B) {
	s := newStore(b)
	data := testData(64<<20, 30)
	d := digest.FromBytes(data)
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if err := s.Ingest(ctx, "bench", bytes.NewReader(data), d, int64(len(data))); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.Delete(d); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
