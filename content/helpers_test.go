package content

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
)

// testData returns n deterministic pseudo-random bytes.
func testData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func newStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// readBlob reads the whole committed blob d.
func readBlob(t testing.TB, s *Store, d digest.Digest) []byte {
	t.Helper()
	ra, err := s.ReaderAt(d)
	if err != nil {
		t.Fatalf("ReaderAt(%s): %v", d, err)
	}
	defer ra.Close()
	b := make([]byte, ra.Size())
	if _, err := ra.ReadAt(b, 0); err != nil && ra.Size() > 0 {
		t.Fatalf("ReadAt(%s): %v", d, err)
	}
	return b
}

// blobs lists every committed blob, checking each one against Walk's info.
func blobs(t testing.TB, s *Store) []Info {
	t.Helper()
	var out []Info
	if err := s.Walk(func(i Info) error { out = append(out, i); return nil }); err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return out
}

// assertEmpty checks that blobs/ holds no file at all (not even a
// temporary one) and ingest/ no entry at all.
func assertEmpty(t testing.TB, s *Store) {
	t.Helper()
	for _, dir := range []string{s.blobDir(digest.SHA256), s.blobDir(digest.SHA512), s.ingestRoot()} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			t.Errorf("unexpected leftover %s", filepath.Join(dir, e.Name()))
		}
	}
}

func assertNotFound(t testing.TB, s *Store, d digest.Digest) {
	t.Helper()
	if _, err := s.Info(d); !errors.Is(err, ErrNotFound) {
		t.Errorf("Info(%s) = %v, want ErrNotFound", d, err)
	}
	if ra, err := s.ReaderAt(d); !errors.Is(err, ErrNotFound) {
		if err == nil {
			ra.Close()
		}
		t.Errorf("ReaderAt(%s) = %v, want ErrNotFound", d, err)
	}
}
