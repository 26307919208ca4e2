package logs

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"time"
)

// Entry is one log message.
type Entry struct {
	Stream string // "stdout" or "stderr"
	Time   time.Time
	Line   []byte // the text as written, with its newline
}

// ReadOptions select the entries Read gives.
type ReadOptions struct {
	Since, Until time.Time // zero: no bound
	Tail         int       // the last Tail entries only; -1 for all
	Follow       bool      // keep reading what is written later
	// Done, when closed, ends following.
	Done <-chan struct{}
	// Stop, optional, ends following once it returns true and all that
	// was written before is read (for example: the container exited).
	Stop func() bool
}

// pollInterval is how often a following Read looks for new lines.
const pollInterval = 20 * time.Millisecond

// maxRotated bounds the rotated files Read looks for.
const maxRotated = 1000

// errUntil ends reading at the first entry after ReadOptions.Until.
var errUntil = errors.New("past until")

type rawEntry struct {
	Log    string    `json:"log"`
	Stream string    `json:"stream"`
	Time   time.Time `json:"time"`
}

// logFile is one open file of a log.
type logFile struct {
	name string
	f    *os.File
	info os.FileInfo
	br   *bufio.Reader
}

func openLog(name string) (*logFile, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", name, err)
	}
	return &logFile{name: name, f: f, info: info}, nil
}

// snapshot opens the log's files: the rotated ones oldest first, then
// the live one, cur (nil when there is none yet), last in files. The
// live file is opened first and checked to still be the live file after
// the rotated ones are open, so all of them are older than it; a
// rotation in between makes it start over.
func snapshot(path string) (cur *logFile, files []*logFile, err error) {
	for attempt := 0; ; attempt++ {
		cur, err = openLog(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("open log: %w", err)
		}
		files = files[:0]
		missing := 0
		for i := 1; i <= maxRotated && missing < 2; i++ {
			l, err := openLog(path + "." + strconv.Itoa(i))
			if errors.Is(err, fs.ErrNotExist) {
				missing++ // a hole the writer's renames leave for a moment
				continue
			}
			if err != nil {
				closeAll(files)
				if cur != nil {
					cur.f.Close()
				}
				return nil, nil, fmt.Errorf("open log: %w", err)
			}
			missing = 0
			dup := cur != nil && os.SameFile(l.info, cur.info)
			for _, f := range files {
				dup = dup || os.SameFile(l.info, f.info)
			}
			if dup { // renamed up while the scan went up
				l.f.Close()
				continue
			}
			files = append([]*logFile{l}, files...)
		}
		st, err := os.Stat(path)
		stable := (cur == nil && errors.Is(err, fs.ErrNotExist)) || (cur != nil && err == nil && os.SameFile(st, cur.info))
		if stable || attempt >= 100 {
			if cur != nil {
				files = append(files, cur)
			}
			return cur, files, nil
		}
		closeAll(files)
		if cur != nil {
			cur.f.Close()
		}
	}
}

func (l *logFile) seek(off int64) error {
	if _, err := l.f.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("seek %s: %w", l.name, err)
	}
	l.br = bufio.NewReaderSize(l.f, 64*1024)
	return nil
}

func closeAll(files []*logFile) {
	for _, l := range files {
		if l != nil {
			l.f.Close()
		}
	}
}

// Read calls fn for the entries of the log at path (and its rotated files
// path.1 ... path.N), oldest first, as opts selects. An error from fn
// ends Read with that error. Lines that are not valid entries, such as
// the partial line of a writer that crashed, are skipped.
func Read(ctx context.Context, path string, opts ReadOptions, fn func(Entry) error) error {
	cur, files, err := snapshot(path)
	if err != nil {
		return err
	}
	defer func() { closeAll(files) }()

	r := &reader{opts: opts, fn: fn}
	start, off, err := tailStart(files, opts.Tail)
	if err != nil {
		return err
	}
	for i := start; i < len(files); i++ {
		o := int64(0)
		if i == start {
			o = off
		}
		if err := files[i].seek(o); err != nil {
			return err
		}
		live := opts.Follow && files[i] == cur
		if err := r.readLines(files[i], !live); err != nil {
			if errors.Is(err, errUntil) {
				return nil
			}
			return err
		}
	}
	if !opts.Follow {
		return nil
	}
	// Without a live file yet, following starts at its beginning once it
	// exists.
	if cur != nil && start == len(files) {
		// Tail 0: follow from the end of what is there now.
		if err := cur.seek(cur.info.Size()); err != nil {
			return err
		}
		r.partial = r.partial[:0]
	}
	err = r.follow(ctx, path, cur)
	if errors.Is(err, errUntil) {
		return nil
	}
	return err
}

type reader struct {
	opts    ReadOptions
	fn      func(Entry) error
	partial []byte // the unterminated end of the live file
}

// readLines reads l's complete lines from its reader. The unterminated
// rest is kept for the next call, or dropped when final (a file no one
// writes any more: its partial line is a crash's leftover).
func (r *reader) readLines(l *logFile, final bool) error {
	for {
		chunk, err := l.br.ReadSlice('\n')
		if err == nil {
			line := chunk
			if len(r.partial) > 0 {
				r.partial = append(r.partial, chunk...)
				line = r.partial
			}
			if err := r.emit(line); err != nil {
				return err
			}
			r.partial = r.partial[:0]
			continue
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			r.partial = append(r.partial, chunk...)
			continue
		}
		if errors.Is(err, io.EOF) {
			r.partial = append(r.partial, chunk...)
			if final {
				r.partial = r.partial[:0]
			}
			return nil
		}
		return fmt.Errorf("read %s: %w", l.name, err)
	}
}

func (r *reader) emit(line []byte) error {
	var raw rawEntry
	if err := json.Unmarshal(bytes.TrimSpace(line), &raw); err != nil || raw.Time.IsZero() {
		return nil // not an entry: skipped
	}
	if !r.opts.Since.IsZero() && raw.Time.Before(r.opts.Since) {
		return nil
	}
	if !r.opts.Until.IsZero() && raw.Time.After(r.opts.Until) {
		return errUntil
	}
	return r.fn(Entry{Stream: raw.Stream, Time: raw.Time, Line: []byte(raw.Log)})
}

// follow reads what is appended to the live file cur (nil: not there
// yet), switching to the new file when the writer rotates.
func (r *reader) follow(ctx context.Context, path string, cur *logFile) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	defer func() {
		if cur != nil {
			cur.f.Close() // a file opened here; closing twice is harmless
		}
	}()
	for {
		// Stop is asked before the read: what was written before it said
		// so is read in this pass.
		stopping := r.opts.Stop != nil && r.opts.Stop()
		if cur != nil {
			if err := r.readLines(cur, false); err != nil {
				return err
			}
		}
		st, err := os.Stat(path)
		switch {
		case err == nil && cur == nil:
			next, err := openLog(path)
			if errors.Is(err, fs.ErrNotExist) {
				break
			}
			if err != nil {
				return fmt.Errorf("follow log: %w", err)
			}
			if err := next.seek(0); err != nil {
				next.f.Close()
				return err
			}
			cur = next
			continue
		case err == nil && !os.SameFile(st, cur.info):
			// Rotated: the writer is done with cur; read the rest of it,
			// then go on in the file written after it, which is the live
			// file or, after several rotations, a rotated one.
			if err := r.readLines(cur, true); err != nil {
				return err
			}
			r.partial = r.partial[:0]
			next, err := successor(path, cur)
			if err != nil {
				return err
			}
			if next == nil {
				break // between the writer's renames: look again soon
			}
			cur.f.Close()
			cur = next
			continue
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("follow log: %w", err)
		}
		if stopping {
			return nil
		}
		if !r.opts.Until.IsZero() && time.Now().After(r.opts.Until) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.opts.Done:
			return nil
		case <-t.C:
		}
	}
}

// tailStart finds where the last n complete lines of files begin: the
// index of the file and the offset in it. n < 0 means everything; when n
// is 0 the index is len(files).
func tailStart(files []*logFile, n int) (int, int64, error) {
	if n < 0 {
		return 0, 0, nil
	}
	if n == 0 {
		return len(files), 0, nil
	}
	for i := len(files) - 1; i >= 0; i-- {
		off, found, err := lastLines(files[i], n)
		if err != nil {
			return 0, 0, err
		}
		if found == n {
			return i, off, nil
		}
		n -= found
	}
	return 0, 0, nil
}

// lastLines reads l backwards in blocks for the start of its last n
// complete lines; it returns that offset and how many lines it found
// (fewer than n when the file has fewer; the offset is then 0).
func lastLines(l *logFile, n int) (int64, int, error) {
	const block = 64 * 1024
	buf := make([]byte, block)
	pos := l.info.Size()
	newlines := 0
	for pos > 0 {
		size := int64(block)
		if pos < size {
			size = pos
		}
		pos -= size
		if _, err := l.f.ReadAt(buf[:size], pos); err != nil && !errors.Is(err, io.EOF) {
			return 0, 0, fmt.Errorf("read %s: %w", l.name, err)
		}
		for i := size - 1; i >= 0; i-- {
			if buf[i] != '\n' {
				continue
			}
			// The k-th newline from the end ends the k-th line from the
			// end; line n starts after newline n+1.
			newlines++
			if newlines == n+1 {
				return pos + i + 1, n, nil
			}
		}
	}
	return 0, newlines, nil
}

// rotatedIndex returns N when the file of info is path.N now, 0 when it
// is not among the rotated files. A rotation renames from the oldest
// down, so at most one index is missing at a time; two missing in a row
// end the search.
func rotatedIndex(path string, info os.FileInfo) (int, error) {
	missing := 0
	for i := 1; i <= maxRotated && missing < 2; i++ {
		st, err := os.Stat(path + "." + strconv.Itoa(i))
		if errors.Is(err, fs.ErrNotExist) {
			missing++
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("follow log: %w", err)
		}
		missing = 0
		if os.SameFile(st, info) {
			return i, nil
		}
	}
	return 0, nil
}

// successor opens the file the writer wrote after cur, which has been
// rotated away: path.(N-1) when cur is path.N, path when it is path.1.
// It returns nil when that file is not there yet (the writer is between
// renaming and creating). When cur was rotated out altogether (deleted
// past the writer's max-file), the oldest rotated file is next.
func successor(path string, cur *logFile) (*logFile, error) {
	for attempt := 0; attempt < 100; attempt++ {
		k, err := rotatedIndex(path, cur.info)
		if err != nil {
			return nil, err
		}
		name := path
		switch {
		case k > 1:
			name = path + "." + strconv.Itoa(k-1)
		case k == 0:
			oldest := 0
			for i := 1; i <= maxRotated; i++ {
				if _, err := os.Stat(path + "." + strconv.Itoa(i)); err != nil {
					break
				}
				oldest = i
			}
			if oldest > 0 {
				name = path + "." + strconv.Itoa(oldest)
			}
		}
		next, err := openLog(name)
		if errors.Is(err, fs.ErrNotExist) {
			if k == 1 {
				return nil, nil
			}
			continue // renamed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("follow log: %w", err)
		}
		// cur still at k means next was its successor when opened: the
		// writer renames oldest first.
		if k2, err := rotatedIndex(path, cur.info); err != nil || k2 != k || os.SameFile(next.info, cur.info) {
			next.f.Close()
			if err != nil {
				return nil, err
			}
			continue
		}
		if err := next.seek(0); err != nil {
			next.f.Close()
			return nil, err
		}
		return next, nil
	}
	return nil, nil
}
