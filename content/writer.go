package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// Writer writes one blob through an ingest. It is not safe for concurrent
// use by multiple goroutines. Close keeps the ingest for a later resume;
// Commit verifies it and makes it a blob.
type Writer struct {
	s        *Store
	ref      string
	dir      string
	lock     *os.File // the ingest directory, flocked
	data     *os.File
	expected digest.Digest
	total    int64
	offset   int64
	digester digest.Digester
	started  time.Time
	done     bool
	// flushed is the offset up to which writeback has been started
	// (see Write); noFlush when the file system refused.
	flushed int64
	noFlush bool
}

// flushChunk is how much a Writer lets be written before it starts the
// data's writeback (sync_file_range, asynchronous): the disk writes
// while the rest arrives, and Commit's fsync waits only for the tail. A
// 256 MB push to berth's registry spent most of its commit time in that
// fsync.
const flushChunk = 2 << 20

// Writer opens the ingest of ref, a caller's key (for example
// "layer-sha256:…"), creating it or resuming it at its current offset.
// expected is the blob's digest ("" when unknown, then sha256 is computed)
// and size its length (0 when unknown). If the existing ingest of ref was
// started with another expected digest or size, or holds more than size
// bytes, it is restarted from offset 0.
//
// It returns ErrLocked if another Writer holds ref, and ErrAlreadyExists if
// the expected blob is already committed.
func (s *Store) Writer(ref string, expected digest.Digest, size int64) (*Writer, error) {
	if ref == "" {
		return nil, errors.New("content writer: empty ref")
	}
	if size < 0 {
		return nil, fmt.Errorf("content writer %q: negative size %d", ref, size)
	}
	alg := digest.Canonical
	if expected != "" {
		if err := validate(expected); err != nil {
			return nil, fmt.Errorf("content writer %q: %w", ref, err)
		}
		if _, err := os.Lstat(s.blobPath(expected)); err == nil {
			return nil, fmt.Errorf("content writer %q: blob %s: %w", ref, expected, ErrAlreadyExists)
		}
		alg = expected.Algorithm()
	}
	dir, lock, err := s.lockIngest(ref, true, expected, size)
	if err != nil {
		return nil, fmt.Errorf("content writer %q: %w", ref, err)
	}
	w := &Writer{s: s, ref: ref, dir: dir, lock: lock, expected: expected, total: size, digester: alg.Digester()}
	if err := w.resume(); err != nil {
		lock.Close()
		return nil, fmt.Errorf("content writer %q: %w", ref, err)
	}
	return w, nil
}

// resume opens the data file of a locked ingest and re-hashes what it
// holds, or restarts the ingest when it cannot be continued.
func (w *Writer) resume() error {
	st, err := readStatus(w.dir)
	if err != nil || st.Ref != w.ref || st.Expected != w.expected || st.Total != w.total {
		return w.restart()
	}
	f, err := os.OpenFile(filepath.Join(w.dir, dataFile), os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return w.restart() // a Commit renamed it away, then crashed
	}
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	// A data file with another link may be a committed blob (link(2)
	// fallback of a crashed Commit): never write to it.
	if sys, ok := fi.Sys().(*syscall.Stat_t); !ok || sys.Nlink != 1 || (w.total > 0 && fi.Size() > w.total) {
		f.Close()
		return w.restart()
	}
	n, err := io.Copy(w.digester.Hash(), f)
	if err != nil {
		f.Close()
		return fmt.Errorf("re-hash %s: %w", f.Name(), err)
	}
	w.data, w.offset, w.started, w.flushed = f, n, st.StartedAt, n
	return nil
}

// restart replaces the ingest's data and status with empty ones.
func (w *Writer) restart() error {
	name := filepath.Join(w.dir, dataFile)
	if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	w.started = time.Now().UTC()
	if err := writeStatus(w.dir, w.status()); err != nil {
		f.Close()
		return err
	}
	w.data, w.offset, w.flushed = f, 0, 0
	w.digester.Hash().Reset()
	return nil
}

func (w *Writer) status() status {
	return status{Ref: w.ref, Expected: w.expected, Total: w.total, Offset: w.offset, StartedAt: w.started, UpdatedAt: time.Now().UTC()}
}

// Write appends p to the ingest. Writing past the declared size (when it
// is known) writes nothing and returns an error wrapping ErrMismatch.
func (w *Writer) Write(p []byte) (int, error) {
	if w.done {
		return 0, fmt.Errorf("write ingest %q: writer closed", w.ref)
	}
	if w.total > 0 && w.offset+int64(len(p)) > w.total {
		return 0, fmt.Errorf("write ingest %q (expected %s): %w: %d bytes at offset %d exceed the declared size %d",
			w.ref, w.expected, ErrMismatch, len(p), w.offset, w.total)
	}
	n, err := w.data.Write(p)
	w.digester.Hash().Write(p[:n])
	w.offset += int64(n)
	if err != nil {
		return n, fmt.Errorf("write ingest %q: %w", w.ref, err)
	}
	if w.offset-w.flushed >= flushChunk && !w.noFlush && !w.s.noSync {
		// Only starts the writeback of what is written (no wait);
		// durability is still Commit's fsync.
		if unix.SyncFileRange(int(w.data.Fd()), w.flushed, w.offset-w.flushed, unix.SYNC_FILE_RANGE_WRITE) != nil {
			w.noFlush = true
		}
		w.flushed = w.offset
	}
	return n, nil
}

// Offset returns the number of bytes written so far, including those of a
// resumed ingest.
func (w *Writer) Offset() int64 { return w.offset }

// Digest returns the digest of the bytes written so far, in the expected
// digest's algorithm (sha256 when none was given).
func (w *Writer) Digest() digest.Digest { return w.digester.Digest() }

// Close releases the ingest and keeps it for a later resume (a Writer with
// the same ref). It is a no-op after Commit.
func (w *Writer) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	defer w.lock.Close()
	err := writeStatus(w.dir, w.status())
	if cerr := w.data.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("close ingest %q: %w", w.ref, err)
	}
	return nil
}

// discard removes the ingest and releases the writer.
func (w *Writer) discard() error {
	w.done = true
	w.data.Close()
	defer w.lock.Close()
	return w.s.removeIngest(w.dir)
}

// Commit verifies the written bytes against the expected size (when
// known) and digest (when known), fsyncs them and atomically makes them the
// blob blobs/<alg>/<hex>, then removes the ingest. If the blob already
// exists (another writer committed the same content), Commit drops the
// ingest and returns nil. On a size or digest mismatch it removes the
// ingest and returns an error wrapping ErrMismatch that names the expected
// and actual digest and size. On an I/O error the ingest is kept.
func (w *Writer) Commit() error {
	if w.done {
		return fmt.Errorf("commit ingest %q: writer closed", w.ref)
	}
	actual := w.digester.Digest()
	if (w.total > 0 && w.offset != w.total) || (w.expected != "" && actual != w.expected) {
		err := fmt.Errorf("commit ingest %q: %w: expected %s (size %d), got %s (size %d)",
			w.ref, ErrMismatch, w.expected, w.total, actual, w.offset)
		if derr := w.discard(); derr != nil {
			err = fmt.Errorf("%w (removing ingest: %v)", err, derr)
		}
		return err
	}
	if err := w.publish(actual); err != nil {
		w.Close()
		return fmt.Errorf("commit ingest %q as %s: %w", w.ref, actual, err)
	}
	if err := w.discard(); err != nil {
		return fmt.Errorf("commit ingest %q as %s: blob committed, removing ingest: %w", w.ref, actual, err)
	}
	return nil
}

// publish fsyncs the data file (unless the store is NoSync) and renames
// it, read-only, to the blob path of d without replacing an existing blob.
func (w *Writer) publish(d digest.Digest) (err error) {
	if !w.s.noSync {
		if err := w.data.Sync(); err != nil {
			return err
		}
	}
	now := time.Now()
	if err := os.Chtimes(w.data.Name(), now, now); err != nil {
		return err
	}
	if err := w.data.Chmod(0o444); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			w.data.Chmod(0o644) // keep the ingest resumable
		}
	}()
	src, dst := w.data.Name(), w.s.blobPath(d)
	err = unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// No RENAME_NOREPLACE on this file system: link(2) never
		// replaces either; the ingest's name is removed with it.
		err = os.Link(src, dst)
	}
	if errors.Is(err, unix.EEXIST) || errors.Is(err, os.ErrExist) {
		return nil // committed by someone else: same digest, same bytes
	}
	if err != nil || w.s.noSync {
		return err
	}
	return syncDir(filepath.Dir(dst))
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// Ingest writes the blob read from r under ref and commits it: Writer,
// copy, Commit. If the expected blob already exists it returns nil without
// reading r. If an earlier ingest of ref is resumed at offset N, the first
// N bytes of r are skipped (by Seek when r is an io.Seeker). When size is
// given, a reader that sends more bytes than size, or fewer, fails and its
// ingest is removed; so does content with the wrong digest. A read error or
// the cancellation of ctx keeps the ingest for a later resume.
func (s *Store) Ingest(ctx context.Context, ref string, r io.Reader, expected digest.Digest, size int64) error {
	w, err := s.Writer(ref, expected, size)
	if errors.Is(err, ErrAlreadyExists) {
		return nil
	}
	if err != nil {
		return err
	}
	if off := w.Offset(); off > 0 {
		if sk, ok := r.(io.Seeker); ok {
			_, err = sk.Seek(off, io.SeekStart)
		} else {
			_, err = io.CopyN(io.Discard, r, off)
		}
		if err != nil {
			w.Close()
			return fmt.Errorf("ingest %q: skip %d bytes already written: %w", ref, off, err)
		}
	}
	if err := copyCtx(ctx, w, r); err != nil {
		if errors.Is(err, ErrMismatch) {
			w.discard()
		} else {
			w.Close()
		}
		return fmt.Errorf("ingest %q: %w", ref, err)
	}
	return w.Commit()
}

// copyCtx copies r to w until EOF, checking ctx between reads.
func copyCtx(ctx context.Context, w io.Writer, r io.Reader) error {
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return fmt.Errorf("read: %w", rerr)
		}
	}
}

// Written returns a reader of the bytes written so far (those a resumed
// ingest already held, and any written since), for a caller that must
// process the whole blob from its start. It is valid until the Writer is
// committed or closed.
func (w *Writer) Written() io.Reader {
	return io.NewSectionReader(w.data, 0, w.offset)
}
