package content

import (
	_ "crypto/sha256" // register sha256 for go-digest
	_ "crypto/sha512" // register sha512 for go-digest
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

var (
	// ErrNotFound is returned when a blob or an ingest does not exist.
	ErrNotFound = errors.New("content: not found")
	// ErrAlreadyExists is returned by Store.Writer when the expected blob
	// is already committed.
	ErrAlreadyExists = errors.New("content: already exists")
	// ErrLocked is returned when another Writer (in this or another
	// process) holds the ingest of the same ref.
	ErrLocked = errors.New("content: ingest locked")
	// ErrInvalidDigest is returned for malformed digests and for
	// algorithms other than sha256 and sha512.
	ErrInvalidDigest = errors.New("content: invalid digest")
	// ErrMismatch is returned when content does not match its expected
	// size or digest (Commit, Write past the declared size, Verify).
	ErrMismatch = errors.New("content: size or digest mismatch")
)

// algorithms lists the accepted digest algorithms, in Walk order.
var algorithms = [...]digest.Algorithm{digest.SHA256, digest.SHA512}

// Store is a content-addressed blob store rooted at a directory. It is safe
// for concurrent use by multiple goroutines and processes.
type Store struct {
	root   string
	noSync bool
}

// Options configure a Store.
type Options struct {
	// NoSync skips the fsyncs of Commit. A committed blob is still
	// verified and renamed into place whole, so it survives the death
	// of the process (page cache) but not necessarily a power loss: the
	// trade distribution and zot make by default, which berth's
	// registry server offers (its sync setting).
	NoSync bool
}

// Info describes a committed blob.
type Info struct {
	Digest digest.Digest
	Size   int64
	// CreatedAt is the time the blob was committed.
	CreatedAt time.Time
}

// ReaderAt reads a committed blob.
type ReaderAt interface {
	io.ReaderAt
	io.Closer
	// Size returns the size of the blob in bytes.
	Size() int64
}

// Open opens the store rooted at root, creating its directories as needed.
func Open(root string) (*Store, error) { return OpenWith(root, Options{}) }

// OpenWith is Open with options.
func OpenWith(root string, o Options) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open content store %q: %w", root, err)
	}
	s := &Store{root: abs, noSync: o.NoSync}
	dirs := []string{s.ingestRoot()}
	for _, alg := range algorithms {
		dirs = append(dirs, s.blobDir(alg))
	}
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("open content store %q: %w", root, err)
		}
	}
	s.removeDeleted()
	return s, nil
}

// removeDeleted removes what crashed processes left in ingest/: directories
// renamed away for removal (.del-*) and old staging directories (.new-*).
// Errors are ignored: a concurrent process may be removing the same ones.
func (s *Store) removeDeleted() {
	entries, err := os.ReadDir(s.ingestRoot())
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		stale := strings.HasPrefix(name, ".del-")
		if strings.HasPrefix(name, ".new-") {
			fi, err := e.Info()
			stale = err == nil && time.Since(fi.ModTime()) > staleStaging
		}
		if stale {
			_ = os.RemoveAll(filepath.Join(s.ingestRoot(), name))
		}
	}
}

func (s *Store) ingestRoot() string { return filepath.Join(s.root, "ingest") }

func (s *Store) blobDir(alg digest.Algorithm) string {
	return filepath.Join(s.root, "blobs", alg.String())
}

// blobPath returns the path of a validated digest.
func (s *Store) blobPath(d digest.Digest) string {
	return filepath.Join(s.blobDir(d.Algorithm()), d.Encoded())
}

// validate checks that d is a well-formed sha256 or sha512 digest.
func validate(d digest.Digest) error {
	if strings.IndexByte(string(d), ':') <= 0 {
		return fmt.Errorf("%w %q: want algorithm:hex", ErrInvalidDigest, string(d))
	}
	switch d.Algorithm() {
	case digest.SHA256, digest.SHA512:
	default:
		return fmt.Errorf("%w %q: unsupported algorithm (want sha256 or sha512)", ErrInvalidDigest, string(d))
	}
	if err := d.Validate(); err != nil {
		return fmt.Errorf("%w %q: %v", ErrInvalidDigest, string(d), err)
	}
	return nil
}

// Info returns the size and commit time of the blob d.
func (s *Store) Info(d digest.Digest) (Info, error) {
	if err := validate(d); err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(s.blobPath(d))
	if err != nil {
		return Info{}, blobError(d, err)
	}
	return Info{Digest: d, Size: fi.Size(), CreatedAt: fi.ModTime()}, nil
}

// blobError wraps a file system error about blob d, mapping a missing file
// to ErrNotFound.
func blobError(d digest.Digest, err error) error {
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("blob %s: %w", d, ErrNotFound)
	}
	return fmt.Errorf("blob %s: %w", d, err)
}

type blobReader struct {
	*os.File
	size int64
}

func (r *blobReader) Size() int64 { return r.size }

// ReaderAt opens the committed blob d. Only committed, verified blobs are
// ever visible; the content is not re-hashed (see Verify).
func (s *Store) ReaderAt(d digest.Digest) (ReaderAt, error) {
	if err := validate(d); err != nil {
		return nil, err
	}
	f, err := os.Open(s.blobPath(d))
	if err != nil {
		return nil, blobError(d, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, blobError(d, err)
	}
	return &blobReader{File: f, size: fi.Size()}, nil
}

// Delete removes the blob d. Readers that hold it open are not affected.
// See the package documentation for the race with a concurrent Commit.
func (s *Store) Delete(d digest.Digest) error {
	if err := validate(d); err != nil {
		return err
	}
	if err := os.Remove(s.blobPath(d)); err != nil {
		return fmt.Errorf("delete %w", blobError(d, err))
	}
	return nil
}

// Walk calls fn for every committed blob, sha256 blobs first, each
// algorithm in lexical order of the digests. Files under blobs/ that are
// not named by a valid digest are skipped, as are blobs deleted during the
// walk. An error from fn stops the walk and is returned.
func (s *Store) Walk(fn func(Info) error) error {
	for _, alg := range algorithms {
		dir := s.blobDir(alg)
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("walk %s: %w", dir, err)
		}
		for _, e := range entries {
			d := digest.NewDigestFromEncoded(alg, e.Name())
			if !e.Type().IsRegular() || d.Validate() != nil {
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("walk %w", blobError(d, err))
			}
			if err := fn(Info{Digest: d, Size: fi.Size(), CreatedAt: fi.ModTime()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// Verify re-hashes the committed blob d and returns an error wrapping
// ErrMismatch if its content no longer matches its digest (bit rot, or a
// change behind the store's back).
func (s *Store) Verify(d digest.Digest) error {
	ra, err := s.ReaderAt(d)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	defer ra.Close()
	dg := d.Algorithm().Digester()
	n, err := io.Copy(dg.Hash(), io.NewSectionReader(ra, 0, ra.Size()))
	if err != nil {
		return fmt.Errorf("verify blob %s: %w", d, err)
	}
	if actual := dg.Digest(); actual != d {
		return fmt.Errorf("verify blob %s: %w: content (%d bytes) hashes to %s", d, ErrMismatch, n, actual)
	}
	return nil
}
