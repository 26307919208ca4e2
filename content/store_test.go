package content

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestCommitAndRead(t *testing.T) {
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA512} {
		t.Run(alg.String(), func(t *testing.T) {
			s := newStore(t)
			data := testData(300_000, 1)
			d := alg.FromBytes(data)
			w, err := s.Writer("blob-"+alg.String(), d, int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			// Several writes, to exercise the running digest.
			for _, chunk := range [][]byte{data[:1], data[1:4096], data[4096:]} {
				if n, err := w.Write(chunk); err != nil || n != len(chunk) {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if w.Offset() != int64(len(data)) || w.Digest() != d {
				t.Fatalf("Offset %d Digest %s, want %d %s", w.Offset(), w.Digest(), len(data), d)
			}
			if err := w.Commit(); err != nil {
				t.Fatal(err)
			}
			if got := readBlob(t, s, d); !bytes.Equal(got, data) {
				t.Fatal("read back differs from what was written")
			}
			info, err := s.Info(d)
			if err != nil || info.Digest != d || info.Size != int64(len(data)) || info.CreatedAt.IsZero() {
				t.Fatalf("Info = %+v, %v", info, err)
			}
			fi, err := os.Stat(s.blobPath(d))
			if err != nil || fi.Mode().Perm() != 0o444 {
				t.Fatalf("blob mode %v, %v; want 0444", fi.Mode(), err)
			}
			if got := blobs(t, s); len(got) != 1 || got[0].Digest != d {
				t.Fatalf("Walk = %+v", got)
			}
			if ings, err := s.ListIngests(); err != nil || len(ings) != 0 {
				t.Fatalf("ListIngests after commit = %+v, %v", ings, err)
			}
			if err := s.Verify(d); err != nil {
				t.Fatal(err)
			}
			// Committed: a new Writer for it says so.
			if _, err := s.Writer("again", d, 0); !errors.Is(err, ErrAlreadyExists) {
				t.Fatalf("Writer of a committed blob = %v, want ErrAlreadyExists", err)
			}
		})
	}
}

func TestCommitUnknownDigest(t *testing.T) {
	s := newStore(t)
	data := testData(1000, 2)
	w, err := s.Writer("unknown", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	d := w.Digest()
	if d != digest.FromBytes(data) {
		t.Fatalf("Digest = %s, want %s", d, digest.FromBytes(data))
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readBlob(t, s, d), data) {
		t.Fatal("content differs")
	}
}

func TestMalformedDigests(t *testing.T) {
	s := newStore(t)
	bad := []digest.Digest{
		"sha256:xyz",
		"md5:d41d8cd98f00b204e9800998ecf8427e",
		"sha384:" + digest.Digest(strings.Repeat("a", 96)),
		"sha256:" + digest.Digest(strings.ToUpper(digest.FromString("x").Encoded())),
		"sha256:../../../etc/passwd",
		"nocolon",
		"",
	}
	for _, d := range bad {
		check := func(op string, err error) {
			t.Helper()
			if !errors.Is(err, ErrInvalidDigest) || !strings.Contains(err.Error(), `"`+string(d)+`"`) {
				t.Errorf("%s(%q) = %v, want ErrInvalidDigest naming the digest", op, d, err)
			}
		}
		_, err := s.Info(d)
		check("Info", err)
		_, err = s.ReaderAt(d)
		check("ReaderAt", err)
		check("Delete", s.Delete(d))
		check("Verify", s.Verify(d))
		if d != "" { // "" means unknown to Writer
			_, err = s.Writer("ref", d, 0)
			check("Writer", err)
			check("Ingest", s.Ingest(context.Background(), "ref", strings.NewReader("x"), d, 1))
		}
	}
	assertEmpty(t, s)
}

func TestVerifyDetectsBitRot(t *testing.T) {
	s := newStore(t)
	data := testData(64<<10, 3)
	d := digest.FromBytes(data)
	if err := s.Ingest(context.Background(), "rot", bytes.NewReader(data), d, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(d); err != nil {
		t.Fatalf("Verify of an intact blob: %v", err)
	}
	p := s.blobPath(d)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte{0}
	f.ReadAt(b, 12345)
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, 12345); err != nil {
		t.Fatal(err)
	}
	f.Close()
	err = s.Verify(d)
	if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), d.String()) {
		t.Fatalf("Verify of a flipped blob = %v, want ErrMismatch naming %s", err, d)
	}
	if err := s.Verify(digest.FromString("absent")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Verify of a missing blob = %v, want ErrNotFound", err)
	}
}

func TestDeleteWithOpenReader(t *testing.T) {
	s := newStore(t)
	data := testData(200_000, 4)
	d := digest.FromBytes(data)
	if err := s.Ingest(context.Background(), "del", bytes.NewReader(data), d, int64(len(data))); err != nil {
		t.Fatal(err)
	}
	ra, err := s.ReaderAt(d)
	if err != nil {
		t.Fatal(err)
	}
	defer ra.Close()
	if err := s.Delete(d); err != nil {
		t.Fatal(err)
	}
	assertNotFound(t, s, d)
	got := make([]byte, ra.Size())
	if _, err := ra.ReadAt(got, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("open reader after Delete: %v, equal=%v", err, bytes.Equal(got, data))
	}
	if err := s.Delete(d); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), d.String()) {
		t.Fatalf("second Delete = %v, want ErrNotFound naming the digest", err)
	}
	if len(blobs(t, s)) != 0 {
		t.Fatal("Walk still lists the deleted blob")
	}
}

func TestWalkSkipsForeignFiles(t *testing.T) {
	s := newStore(t)
	a, b := testData(10, 5), testData(20, 6)
	da, db := digest.SHA512.FromBytes(a), digest.FromBytes(b)
	ctx := context.Background()
	if err := s.Ingest(ctx, "a", bytes.NewReader(a), da, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Ingest(ctx, "b", bytes.NewReader(b), db, 0); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(s.blobDir(digest.SHA256)+"/not-a-digest", nil, 0o644)
	got := blobs(t, s)
	if len(got) != 2 || got[0].Digest != db || got[1].Digest != da || got[0].Size != 20 || got[1].Size != 10 {
		t.Fatalf("Walk = %+v", got)
	}
	stop := errors.New("stop")
	n := 0
	if err := s.Walk(func(Info) error { n++; return stop }); err != stop || n != 1 {
		t.Fatalf("Walk with a failing fn = %v after %d calls", err, n)
	}
}
