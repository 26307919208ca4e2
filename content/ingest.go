package content

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

const (
	dataFile   = "data"
	statusFile = "status.json"
	// lockAttempts bounds the retries when an ingest directory is removed
	// between opening and locking it.
	lockAttempts = 16
	// lockGraceAttempts and lockGraceDelay bound how long a held ingest
	// lock is retried before ErrLocked.
	lockGraceAttempts = 4
	lockGraceDelay    = 2 * time.Millisecond
	// staleStaging is the age after which Open removes a staging
	// directory (.new-*) left by a process that crashed creating an
	// ingest.
	staleStaging = time.Hour
)

// IngestStatus describes an in-progress (or abandoned) write.
type IngestStatus struct {
	Ref      string
	Expected digest.Digest // empty when unknown
	Total    int64         // expected size; 0 when unknown
	// Offset is the number of bytes written so far (the length of the
	// ingest's data file, which is authoritative).
	Offset    int64
	StartedAt time.Time
	UpdatedAt time.Time
	// Locked reports whether a Writer (in any process) holds the ingest.
	// An unlocked ingest is abandoned or closed for a later resume.
	Locked bool
}

// status is the on-disk status.json of an ingest.
type status struct {
	Ref       string        `json:"ref"`
	Expected  digest.Digest `json:"expected,omitempty"`
	Total     int64         `json:"total,omitempty"`
	Offset    int64         `json:"offset"`
	StartedAt time.Time     `json:"startedAt"`
	UpdatedAt time.Time     `json:"updatedAt"`
}

// ingestDir returns the ingest directory of ref: its sha256, so any string
// is a safe ref.
func (s *Store) ingestDir(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return filepath.Join(s.ingestRoot(), hex.EncodeToString(sum[:]))
}

func readStatus(dir string) (status, error) {
	var st status
	b, err := os.ReadFile(filepath.Join(dir, statusFile))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("%s: %w", filepath.Join(dir, statusFile), err)
	}
	return st, nil
}

// writeStatus atomically replaces dir/status.json. The caller either owns
// dir privately (staging) or holds its lock.
func writeStatus(dir string, st status) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, statusFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, statusFile))
}

// createIngest makes sure the ingest directory dir exists, creating it fully
// formed (status and empty data file) in a staging directory renamed into
// place, so that a directory named after a ref is never half made.
func (s *Store) createIngest(dir, ref string, expected digest.Digest, total int64) error {
	if _, err := os.Lstat(dir); err == nil || !errors.Is(err, os.ErrNotExist) {
		return err
	}
	tmp, err := os.MkdirTemp(s.ingestRoot(), ".new-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	now := time.Now().UTC()
	if err := writeStatus(tmp, status{Ref: ref, Expected: expected, Total: total, StartedAt: now, UpdatedAt: now}); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(tmp, dataFile), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	err = unix.Rename(tmp, dir)
	if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.ENOTEMPTY) {
		return nil // created concurrently by someone else
	}
	if err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, dir, err)
	}
	return nil
}

// lockIngest opens and exclusively locks the ingest directory of ref,
// creating it first when create is set. It returns ErrLocked if another
// holder has it and an error wrapping os.ErrNotExist if it does not exist
// (and create is not set).
func (s *Store) lockIngest(ref string, create bool, expected digest.Digest, total int64) (string, *os.File, error) {
	dir := s.ingestDir(ref)
	for range lockAttempts {
		if create {
			if err := s.createIngest(dir, ref, expected, total); err != nil {
				return "", nil, err
			}
		}
		f, err := os.Open(dir)
		if errors.Is(err, os.ErrNotExist) && create {
			continue // removed between create and open
		}
		if err != nil {
			return "", nil, err
		}
		if err := flockGrace(f); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return "", nil, ErrLocked
			}
			return "", nil, fmt.Errorf("flock %s: %w", dir, err)
		}
		// The previous holder may have removed (renamed away) the
		// directory before releasing the lock: check that dir still
		// names the directory we locked.
		same, err := namesFile(dir, f)
		if err != nil || !same {
			f.Close()
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				return "", nil, err
			}
			if !create {
				return "", nil, os.ErrNotExist
			}
			continue
		}
		return dir, f, nil
	}
	return "", nil, fmt.Errorf("%s: removed repeatedly while being locked", dir)
}

// flockGrace takes an exclusive flock on f without blocking, retrying for a
// few milliseconds so that the brief probe of ListIngests is not mistaken
// for a Writer holding the ingest.
func flockGrace(f *os.File) error {
	var err error
	for i := range lockGraceAttempts {
		if i > 0 {
			time.Sleep(lockGraceDelay)
		}
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if !errors.Is(err, unix.EWOULDBLOCK) {
			return err
		}
	}
	return err
}

// namesFile reports whether path currently names the open file f.
func namesFile(path string, f *os.File) (bool, error) {
	pfi, err := os.Lstat(path)
	if err != nil {
		return false, err
	}
	ffi, err := f.Stat()
	if err != nil {
		return false, err
	}
	return os.SameFile(pfi, ffi), nil
}

// removeIngest removes the ingest directory dir, whose lock the caller
// holds: it is first renamed (atomically, over an empty placeholder) out of
// the ref's name, so no one can find it half removed.
func (s *Store) removeIngest(dir string) error {
	tmp, err := os.MkdirTemp(s.ingestRoot(), ".del-")
	if err != nil {
		return err
	}
	// unix.Rename, not os.Rename: replacing an empty directory is the
	// point, and os.Rename refuses any existing directory.
	if err := unix.Rename(dir, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("rename %s: %w", dir, err)
	}
	return os.RemoveAll(tmp)
}

// Abort removes the ingest of ref. It returns ErrLocked if a Writer holds
// it and ErrNotFound if there is none.
func (s *Store) Abort(ref string) error {
	dir, lock, err := s.lockIngest(ref, false, "", 0)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("abort ingest %q: %w", ref, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("abort ingest %q: %w", ref, err)
	}
	defer lock.Close()
	if err := s.removeIngest(dir); err != nil {
		return fmt.Errorf("abort ingest %q: %w", ref, err)
	}
	return nil
}

// ListIngests returns the status of every ingest, in progress or abandoned,
// for cleanup and garbage collection. Abandoned ingests (Locked false) can
// be resumed with Writer or removed with Abort. Locked is found by briefly
// taking the ingest's lock; a Writer or Abort that meets this probe retries
// for a few milliseconds before it reports ErrLocked.
func (s *Store) ListIngests() ([]IngestStatus, error) {
	entries, err := os.ReadDir(s.ingestRoot())
	if err != nil {
		return nil, fmt.Errorf("list ingests: %w", err)
	}
	var out []IngestStatus
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || !e.IsDir() {
			continue
		}
		dir := filepath.Join(s.ingestRoot(), e.Name())
		st, err := readStatus(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("list ingests: %w", err)
		}
		is := IngestStatus{Ref: st.Ref, Expected: st.Expected, Total: st.Total, StartedAt: st.StartedAt, UpdatedAt: st.UpdatedAt}
		if fi, err := os.Stat(filepath.Join(dir, dataFile)); err == nil {
			is.Offset = fi.Size()
		}
		locked, err := isLocked(dir)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list ingests: %w", err)
		}
		is.Locked = locked
		out = append(out, is)
	}
	return out, nil
}

// isLocked probes the lock of an ingest directory.
func isLocked(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("flock %s: %w", dir, err)
	}
	return false, nil // closing f releases the probe lock
}
