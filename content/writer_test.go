package content

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

func TestCommitWrongDigest(t *testing.T) {
	s := newStore(t)
	data := testData(5000, 10)
	wrong := digest.FromString("something else")
	w, err := s.Writer("wrong-digest", wrong, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	err = w.Commit()
	actual := digest.FromBytes(data)
	if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), wrong.String()) || !strings.Contains(err.Error(), actual.String()) {
		t.Fatalf("Commit = %v, want ErrMismatch naming %s and %s", err, wrong, actual)
	}
	assertNotFound(t, s, actual)
	assertNotFound(t, s, wrong)
	assertEmpty(t, s)
	if _, err := w.Write([]byte("x")); err == nil {
		t.Fatal("Write after a failed Commit succeeded")
	}
}

func TestCommitWrongSize(t *testing.T) {
	s := newStore(t)
	data := testData(5000, 11)
	d := digest.FromBytes(data)

	// Declared larger than written.
	w, err := s.Writer("too-short", d, int64(len(data))+1)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	err = w.Commit()
	if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), "size 5001") || !strings.Contains(err.Error(), "size 5000") {
		t.Fatalf("Commit = %v, want ErrMismatch naming both sizes", err)
	}
	assertNotFound(t, s, d)
	assertEmpty(t, s)

	// Declared smaller than sent: Write refuses, Ingest removes the ingest.
	w, err = s.Writer("too-long", d, int64(len(data))-1)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := w.Write(data); n != 0 || !errors.Is(err, ErrMismatch) {
		t.Fatalf("Write past the declared size = %d, %v", n, err)
	}
	w.Close()
	if err := s.Abort("too-long"); err != nil {
		t.Fatal(err)
	}
	err = s.Ingest(context.Background(), "too-long", bytes.NewReader(data), d, int64(len(data))-1)
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("Ingest of a reader sending too much = %v, want ErrMismatch", err)
	}
	// Ingest with fewer bytes than declared.
	err = s.Ingest(context.Background(), "short", bytes.NewReader(data[:100]), d, int64(len(data)))
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("Ingest of a short reader = %v, want ErrMismatch", err)
	}
	assertNotFound(t, s, d)
	assertEmpty(t, s)
}

// A reader never sees a partial blob: until Commit the digest is absent.
func TestNoPartialBlob(t *testing.T) {
	s := newStore(t)
	data := testData(1<<20, 12)
	d := digest.FromBytes(data)
	w, err := s.Writer("partial", d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data[:len(data)/2])
	assertNotFound(t, s, d)
	if len(blobs(t, s)) != 0 {
		t.Fatal("Walk lists an uncommitted blob")
	}
	w.Write(data[len(data)/2:])
	assertNotFound(t, s, d) // fully written but not committed
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readBlob(t, s, d), data) {
		t.Fatal("content differs")
	}
}

func TestSameRefLocked(t *testing.T) {
	s := newStore(t)
	d := digest.FromString("locked")
	w1, err := s.Writer("same", d, 6)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Writer("same", d, 6); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Writer = %v, want ErrLocked", err)
	}
	if err := s.Abort("same"); !errors.Is(err, ErrLocked) {
		t.Fatalf("Abort of a held ingest = %v, want ErrLocked", err)
	}
	ings, err := s.ListIngests()
	if err != nil || len(ings) != 1 || !ings[0].Locked || ings[0].Ref != "same" || ings[0].Expected != d || ings[0].Total != 6 {
		t.Fatalf("ListIngests = %+v, %v", ings, err)
	}
	w1.Write([]byte("locked"))
	if err := w1.Commit(); err != nil {
		t.Fatal(err)
	}
	// Released by Commit: the ref is free again (and the blob known).
	if _, err := s.Writer("same", d, 6); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("Writer after Commit = %v, want ErrAlreadyExists", err)
	}
	w3, err := s.Writer("same", "", 0)
	if err != nil {
		t.Fatalf("Writer after Commit: %v", err)
	}
	w3.Close()
}

func TestResume(t *testing.T) {
	s := newStore(t)
	data := testData(3<<20+17, 13)
	d := digest.FromBytes(data)
	half := len(data) / 2
	w, err := s.Writer("resume", d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data[:half])
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	ings, err := s.ListIngests()
	if err != nil || len(ings) != 1 || ings[0].Offset != int64(half) || ings[0].Locked || ings[0].StartedAt.IsZero() {
		t.Fatalf("ListIngests after Close = %+v, %v", ings, err)
	}
	if st, err := readStatus(s.ingestDir("resume")); err != nil || st.Offset != int64(half) {
		t.Fatalf("status.json = %+v, %v", st, err)
	}

	w, err = s.Writer("resume", d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != int64(half) || w.Digest() != digest.FromBytes(data[:half]) {
		t.Fatalf("resumed at %d with digest %s, want %d", w.Offset(), w.Digest(), half)
	}
	w.Write(data[half:])
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readBlob(t, s, d), data) {
		t.Fatal("resumed blob differs")
	}
	assertNoIngests(t, s)
}

// assertNoIngests checks that no ingest is left.
func assertNoIngests(t *testing.T, s *Store) {
	t.Helper()
	if ings, err := s.ListIngests(); err != nil || len(ings) != 0 {
		t.Fatalf("ListIngests = %+v, %v; want none", ings, err)
	}
}

// A resumed ingest started for another digest restarts at 0.
func TestResumeOtherExpectationRestarts(t *testing.T) {
	s := newStore(t)
	data := testData(1000, 14)
	w, _ := s.Writer("ref", digest.FromString("other"), 0)
	w.Write(data[:500])
	w.Close()
	d := digest.FromBytes(data)
	w, err := s.Writer("ref", d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 0 {
		t.Fatalf("Offset = %d, want 0", w.Offset())
	}
	w.Write(data)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

// nonSeeker hides an io.Seeker.
type nonSeeker struct{ io.Reader }

func TestIngestResume(t *testing.T) {
	for _, seek := range []bool{true, false} {
		t.Run(fmt.Sprint("seeker=", seek), func(t *testing.T) {
			s := newStore(t)
			data := testData(2<<20, 15)
			d := digest.FromBytes(data)
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := s.Ingest(ctx, "r", bytes.NewReader(data), d, int64(len(data))); !errors.Is(err, context.Canceled) {
				t.Fatalf("Ingest with a cancelled ctx = %v", err)
			}
			w, err := s.Writer("r", d, int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			w.Write(data[:777_777])
			w.Close()
			var r io.Reader = bytes.NewReader(data)
			if !seek {
				r = nonSeeker{r}
			}
			if err := s.Ingest(context.Background(), "r", r, d, int64(len(data))); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(readBlob(t, s, d), data) {
				t.Fatal("content differs")
			}
			assertNoIngests(t, s)
		})
	}
}

func TestAbort(t *testing.T) {
	s := newStore(t)
	if err := s.Abort("nothing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Abort of an unknown ref = %v", err)
	}
	w, _ := s.Writer("x", "", 0)
	w.Write([]byte("abc"))
	w.Close()
	if err := s.Abort("x"); err != nil {
		t.Fatal(err)
	}
	assertEmpty(t, s)
}

// Goroutines committing the same content under different refs all succeed
// and leave one intact blob.
func TestConcurrentCommitGoroutines(t *testing.T) {
	s := newStore(t)
	data := testData(4<<20, 16)
	d := digest.FromBytes(data)
	const n = 8
	var written, wg sync.WaitGroup
	start := make(chan struct{})
	errs := make([]error, n)
	written.Add(n)
	for i := range n {
		wg.Go(func() {
			w, err := s.Writer(fmt.Sprint("g", i), d, int64(len(data)))
			if err != nil {
				errs[i] = err
				written.Done()
				return
			}
			_, errs[i] = w.Write(data)
			written.Done()
			<-start
			if errs[i] == nil {
				errs[i] = w.Commit()
			}
		})
	}
	written.Wait()
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	checkOneBlob(t, s, d, data)

	// The same through Ingest, racing from the start.
	d2 := digest.SHA512.FromBytes(data)
	for i := range n {
		wg.Go(func() {
			errs[i] = s.Ingest(context.Background(), fmt.Sprint("i", i), bytes.NewReader(data), d2, int64(len(data)))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Ingest %d: %v", i, err)
		}
	}
	if got := blobs(t, s); len(got) != 2 {
		t.Fatalf("Walk = %+v, want 2 blobs", got)
	}
	if err := s.Verify(d2); err != nil {
		t.Fatal(err)
	}
}

func checkOneBlob(t *testing.T, s *Store, d digest.Digest, data []byte) {
	t.Helper()
	if got := blobs(t, s); len(got) != 1 || got[0].Digest != d || got[0].Size != int64(len(data)) {
		t.Fatalf("Walk = %+v, want just %s", got, d)
	}
	if err := s.Verify(d); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readBlob(t, s, d), data) {
		t.Fatal("content differs")
	}
	if ings, err := s.ListIngests(); err != nil || len(ings) != 0 {
		t.Fatalf("ListIngests = %+v, %v; want none", ings, err)
	}
}

// An ingest whose data file is also linked as a blob (a Commit that used
// the link(2) fallback and crashed before removing the ingest) restarts
// rather than appending to the committed blob.
func TestResumeNeverWritesIntoABlob(t *testing.T) {
	s := newStore(t)
	data := testData(1000, 17)
	d := digest.FromBytes(data)
	w, _ := s.Writer("linked", "", 0)
	w.Write(data)
	w.Close()
	if err := os.Link(s.ingestDir("linked")+"/"+dataFile, s.blobPath(d)); err != nil {
		t.Fatal(err)
	}
	w, err := s.Writer("linked", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 0 {
		t.Fatalf("resumed at %d from a data file that is a blob", w.Offset())
	}
	w.Write([]byte("more"))
	w.Close()
	if err := s.Verify(d); err != nil {
		t.Fatal(err)
	}
}

// A lock held only briefly (the probe of ListIngests) does not make a
// Writer fail with ErrLocked.
func TestBriefLockIsNotErrLocked(t *testing.T) {
	s := newStore(t)
	w, _ := s.Writer("brief", "", 0)
	w.Close()
	f, err := os.Open(s.ingestDir("brief"))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(time.Millisecond)
		f.Close()
	}()
	w, err = s.Writer("brief", "", 0)
	if err != nil {
		t.Fatalf("Writer after a brief lock: %v", err)
	}
	w.Close()
}

func TestOpenRemovesLeftovers(t *testing.T) {
	s := newStore(t)
	mk := func(name string, age time.Duration) string {
		p := filepath.Join(s.ingestRoot(), name)
		if err := os.MkdirAll(filepath.Join(p, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		old := time.Now().Add(-age)
		os.Chtimes(p, old, old)
		return p
	}
	del, staleNew, freshNew := mk(".del-1", 0), mk(".new-1", 2*staleStaging), mk(".new-2", 0)
	if _, err := Open(s.root); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{del: false, staleNew: false, freshNew: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s exists=%v, want %v", p, err == nil, want)
		}
	}
}

// A Writer starts the writeback of what it has written every flushChunk
// bytes, from where a resumed ingest began.
func TestWriterStartsWriteback(t *testing.T) {
	s := newStore(t)
	w, err := s.Writer("wb", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for i := 0; i < 3*flushChunk/len(chunk)+1; i++ {
		if _, err := w.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if w.noFlush || w.flushed != 3*flushChunk {
		t.Fatalf("after %d bytes: writeback started up to %d (refused: %v), want %d", w.offset, w.flushed, w.noFlush, 3*flushChunk)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w, err = s.Writer("wb", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.flushed != w.offset || w.offset != 3*flushChunk+int64(len(chunk)) {
		t.Fatalf("resumed at %d with writeback from %d", w.offset, w.flushed)
	}
}

// A NoSync store (the registry server's default) skips only the fsyncs:
// a commit is still verified, and a good one is readable at once.
func TestNoSyncStillVerifies(t *testing.T) {
	s, err := OpenWith(t.TempDir(), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	data := testData(3*flushChunk/2, 12)
	d := digest.FromBytes(data)
	w, err := s.Writer("wrong", digest.FromString("other"), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Commit(); !errors.Is(err, ErrMismatch) {
		t.Fatalf("Commit of the wrong digest: %v, want ErrMismatch", err)
	}
	assertNotFound(t, s, d)
	w, err = s.Writer("right", d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if w.flushed != 0 {
		t.Errorf("a NoSync writer started writeback up to %d", w.flushed)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := readBlob(t, s, d); !bytes.Equal(got, data) {
		t.Fatal("committed blob differs from what was written")
	}
	if left, _ := os.ReadDir(s.ingestRoot()); len(left) != 0 {
		t.Errorf("ingests left after the commits: %d", len(left))
	}
}
