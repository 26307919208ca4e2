package events

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/berth-project/berth/internal/flock"

	"github.com/moby/moby/api/types/events"
	"golang.org/x/sys/unix"
)

// DefaultMaxSize is the size past which the journal is rotated.
const DefaultMaxSize = 8 << 20

// Journal is the event journal in one directory: events.jsonl, the
// previous generation events.jsonl.1 and the lock file .lock. It is safe
// for concurrent use by many goroutines and processes.
type Journal struct {
	dir     string
	maxSize int64
	// Poll is how often Read looks for new events when following;
	// default 100ms.
	Poll time.Duration
}

// Open returns the journal in dir, created on the first append. maxSize
// <= 0 means DefaultMaxSize.
func Open(dir string, maxSize int64) *Journal {
	if maxSize <= 0 {
		maxSize = DefaultMaxSize
	}
	return &Journal{dir: dir, maxSize: maxSize}
}

func (j *Journal) path() string    { return filepath.Join(j.dir, "events.jsonl") }
func (j *Journal) oldPath() string { return j.path() + ".1" }

// lock takes a flock of kind how on the journal's lock file.
func (j *Journal) lock(how int) (func(), error) {
	unlock, err := flock.Lock(filepath.Join(j.dir, ".lock"), how)
	if err != nil {
		return nil, fmt.Errorf("lock event journal: %w", err)
	}
	return unlock, nil
}

// Append writes m as one line. A zero m.Time/m.TimeNano is set to now and
// an empty Scope to "local".
func (j *Journal) Append(m events.Message) error {
	if m.TimeNano == 0 {
		now := time.Now()
		m.Time, m.TimeNano = now.Unix(), now.UnixNano()
	} else if m.Time == 0 {
		m.Time = m.TimeNano / int64(time.Second)
	}
	if m.Scope == "" {
		m.Scope = "local"
	}
	line, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode event: %w", err)
	}
	line = append(line, '\n')
	if err := os.MkdirAll(j.dir, 0o700); err != nil {
		return fmt.Errorf("event journal: %w", err)
	}
	if err := j.rotateIfFull(); err != nil {
		return err
	}
	unlock, err := j.lock(unix.LOCK_SH)
	if err != nil {
		return err
	}
	defer unlock()
	f, err := os.OpenFile(j.path(), os.O_WRONLY|os.O_APPEND|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("event journal: %w", err)
	}
	defer f.Close()
	// One write: O_APPEND makes the offset and write atomic, so lines of
	// concurrent writers never mix.
	if _, err := f.Write(line); err != nil {
		return fmt.Errorf("append to %s: %w", j.path(), err)
	}
	return nil
}

// rotateIfFull renames the journal to its previous generation when it has
// reached the size cap.
func (j *Journal) rotateIfFull() error {
	if fi, err := os.Stat(j.path()); err != nil || fi.Size() < j.maxSize {
		return nil
	}
	unlock, err := j.lock(unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	fi, err := os.Stat(j.path())
	if err != nil || fi.Size() < j.maxSize {
		return nil // rotated by another process meanwhile
	}
	if err := os.Rename(j.path(), j.oldPath()); err != nil {
		return fmt.Errorf("rotate event journal: %w", err)
	}
	return nil
}

// ReadOptions select the events Read reports.
type ReadOptions struct {
	// Since: only events at or after it (zero: with Follow, only new
	// events; else all).
	Since time.Time
	// Until: only events before or at it. Following stops when it passes.
	Until time.Time
	// Follow keeps reading new events until ctx ends or Until passes.
	Follow bool
	// Filter, if set, keeps the events it matches.
	Filter *Filter
}

// Read calls fn for each event of the journal that opts select, oldest
// first. An error of fn stops Read and is returned.
func (j *Journal) Read(ctx context.Context, opts ReadOptions, fn func(events.Message) error) error {
	emit := func(m events.Message) (bool, error) {
		t := time.Unix(0, m.TimeNano)
		if !opts.Until.IsZero() && t.After(opts.Until) {
			return true, nil
		}
		if !opts.Since.IsZero() && t.Before(opts.Since) {
			return false, nil
		}
		if opts.Filter != nil && !opts.Filter.Match(m) {
			return false, nil
		}
		return false, fn(m)
	}
	skipPast := opts.Follow && opts.Since.IsZero()
	if !skipPast {
		if f, err := os.Open(j.oldPath()); err == nil {
			_, done, err := scan(f, emit)
			f.Close()
			if err != nil || done {
				return err
			}
		}
	}
	cur, err := os.Open(j.path())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read event journal: %w", err)
	}
	var off int64
	if cur != nil {
		defer func() { cur.Close() }()
		if skipPast {
			if off, err = cur.Seek(0, io.SeekEnd); err != nil {
				return err
			}
		} else {
			n, done, err := scan(cur, emit)
			if err != nil || done {
				return err
			}
			off = n
		}
	}
	if !opts.Follow {
		return nil
	}
	poll := j.Poll
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		if !opts.Until.IsZero() && time.Now().After(opts.Until) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if cur != nil {
			if _, err := cur.Seek(off, io.SeekStart); err != nil {
				return err
			}
			n, done, err := scan(cur, emit)
			if err != nil || done {
				return err
			}
			off += n
		}
		// Rotated (or created)? Finish the old file above, then switch.
		fi, err := os.Stat(j.path())
		if err != nil {
			continue
		}
		if cur != nil {
			if cfi, err := cur.Stat(); err == nil && os.SameFile(fi, cfi) {
				continue
			}
			cur.Close()
		}
		if cur, err = os.Open(j.path()); err != nil {
			cur = nil
			continue
		}
		off = 0
	}
}

// scan reads whole lines from r, decodes them and passes them to emit. It
// returns the bytes consumed (an incomplete last line is left for the
// next call) and whether emit said to stop.
func scan(r io.Reader, emit func(events.Message) (bool, error)) (int64, bool, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var n int64
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			n += int64(len(line))
			var m events.Message
			if jerr := json.Unmarshal(bytes.TrimSpace(line), &m); jerr == nil {
				done, ferr := emit(m)
				if ferr != nil || done {
					return n, done, ferr
				}
			}
		}
		if err == io.EOF {
			return n, false, nil
		}
		if err != nil {
			return n, false, fmt.Errorf("read event journal: %w", err)
		}
	}
}
