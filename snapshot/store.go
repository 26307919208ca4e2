package snapshot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/berth-project/berth/internal/flock"

	"golang.org/x/sys/unix"
)

// record is the metadata of one snapshot.
type record struct {
	ID       uint64            `json:"id"`
	Key      string            `json:"key"`
	Kind     Kind              `json:"kind"`
	Parent   string            `json:"parent,omitempty"`
	ParentID uint64            `json:"parentID,omitempty"`
	Created  time.Time         `json:"created"`
	Labels   map[string]string `json:"labels,omitempty"`
	// Usage is a committed snapshot's disk usage, measured when it was
	// committed (its files never change after): Usage reads it instead
	// of walking the tree. Nil for active snapshots and for records
	// written before it was kept.
	Usage *usage `json:"usage,omitempty"`
	// Volatile records live in volatile.json, written without fsync
	// (WithVolatileRecord); info.json takes precedence over it.
	Volatile bool `json:"-"`
}

// usage is what Snapshotter.Usage reports: bytes allocated and inodes.
type usage struct {
	Size   int64 `json:"size"`
	Inodes int64 `json:"inodes"`
}

func (r *record) info() Info {
	i := Info{Key: r.Key, Parent: r.Parent, Kind: r.Kind, Created: r.Created, Volatile: r.Volatile}
	if len(r.Labels) > 0 {
		i.Labels = make(map[string]string, len(r.Labels))
		for k, v := range r.Labels {
			i.Labels[k] = v
		}
	}
	return i
}

// metaStore keeps the snapshot records. It is the seam where the engine's
// embedded database will replace the JSON files; the snapshot directories
// stay where they are.
type metaStore interface {
	// update runs fn in an exclusive transaction: no other process or
	// goroutine reads or writes the records meanwhile.
	update(fn func(metaTx) error) error
	// view runs fn in a shared (read-only) transaction.
	view(fn func(metaTx) error) error
}

// metaTx is the view of the records inside a transaction. Every put and del
// is durable and atomic when it returns.
type metaTx interface {
	get(key string) (*record, bool)
	byID(id uint64) (*record, bool)
	list() []*record // sorted by id
	nextID(volatile bool) (uint64, error)
	put(r *record) error // creates or replaces record r.ID (keys are unique)
	del(id uint64) error
}

// fileStore stores each snapshot's record as root/snapshots/<id>/info.json,
// written atomically (temp file, fsync, rename, fsync dir), or for a
// volatile record as root/snapshots/<id>/volatile.json (temp file and
// rename, no fsync), and serialises mutations among processes with
// flock(2) on root/lock.
type fileStore struct {
	root string // the snapshotter root
}

const (
	snapshotsDir = "snapshots"
	infoFile     = "info.json"
	volatileFile = "volatile.json"
	lockFile     = "lock"
	lastIDFile   = "last-id"
)

func (s *fileStore) dir() string { return filepath.Join(s.root, snapshotsDir) }

func (s *fileStore) update(fn func(metaTx) error) error { return s.run(unix.LOCK_EX, fn) }
func (s *fileStore) view(fn func(metaTx) error) error   { return s.run(unix.LOCK_SH, fn) }

func (s *fileStore) run(how int, fn func(metaTx) error) error {
	unlock, err := flockFile(filepath.Join(s.root, lockFile), how)
	if err != nil {
		return err
	}
	defer unlock()
	tx := &fileTx{s: s, write: how == unix.LOCK_EX, keys: map[string]*record{}, ids: map[uint64]*record{}}
	if err := tx.load(); err != nil {
		return err
	}
	return fn(tx)
}

// flockFile takes flock(2) on path (created if missing); how is LOCK_EX or
// LOCK_SH. Each call opens its own file description, so goroutines of one
// process exclude each other like separate processes do.
func flockFile(path string, how int) (func(), error) {
	unlock, err := flock.Lock(path, how)
	if err != nil {
		return nil, fmt.Errorf("snapshot store lock: %w", err)
	}
	return unlock, nil
}

type fileTx struct {
	s     *fileStore
	write bool
	keys  map[string]*record
	ids   map[uint64]*record
}

// load reads every record. Numeric directories without a record are left
// over by a crash (or belong to a snapshot being created, when not under
// the exclusive lock) and are skipped, as are those whose volatile record
// a crash of the host tore.
func (t *fileTx) load() error {
	ents, err := os.ReadDir(t.s.dir())
	if err != nil {
		return fmt.Errorf("snapshot store: %w", err)
	}
	for _, e := range ents {
		id, ok := parseID(e.Name())
		if !ok || !e.IsDir() {
			continue
		}
		r, p, err := t.s.readRecord(e.Name())
		if err != nil {
			return fmt.Errorf("snapshot store: %w", err)
		}
		if r == nil {
			continue
		}
		if r.ID != id || r.Key == "" {
			return fmt.Errorf("snapshot store: %s: record id %d key %q does not match its directory", p, r.ID, r.Key)
		}
		if o, dup := t.keys[r.Key]; dup {
			return fmt.Errorf("snapshot store: key %q used by snapshots %d and %d", r.Key, o.ID, r.ID)
		}
		t.keys[r.Key] = r
		t.ids[r.ID] = r
	}
	return nil
}

// readRecord reads the record in snapshots/<name>: info.json, else
// volatile.json. It returns nil (and no error) when there is none or the
// volatile one does not parse, and the path it read.
func (s *fileStore) readRecord(name string) (*record, string, error) {
	volatile := false
	p := filepath.Join(s.dir(), name, infoFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		volatile = true
		p = filepath.Join(s.dir(), name, volatileFile)
		b, err = os.ReadFile(p)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, p, nil
	}
	if err != nil {
		return nil, p, err
	}
	r := &record{Volatile: volatile}
	if err := json.Unmarshal(b, r); err != nil {
		if volatile {
			return nil, p, nil // torn by a crash of the host: an orphan
		}
		return nil, p, fmt.Errorf("%s: %w", p, err)
	}
	return r, p, nil
}

func parseID(name string) (uint64, bool) {
	if name == "" || name[0] == '0' {
		return 0, false
	}
	id, err := strconv.ParseUint(name, 10, 64)
	return id, err == nil
}

func (t *fileTx) get(key string) (*record, bool) { r, ok := t.keys[key]; return r, ok }
func (t *fileTx) byID(id uint64) (*record, bool) { r, ok := t.ids[id]; return r, ok }

func (t *fileTx) list() []*record {
	out := make([]*record, 0, len(t.ids))
	for _, r := range t.ids {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// nextID allocates an id never used before in this root: one more than
// both the last allocated id (root/last-id) and every directory present.
// A volatile snapshot's id is not recorded in last-id (which would cost
// its fsyncs): it is unique among the snapshots present, and may be given
// again once that snapshot is removed.
func (t *fileTx) nextID(volatile bool) (uint64, error) {
	if !t.write {
		return 0, errors.New("snapshot store: nextID in a read transaction")
	}
	var last uint64
	p := filepath.Join(t.s.root, lastIDFile)
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		if last, err = strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err != nil {
			return 0, fmt.Errorf("snapshot store: %s: %w", p, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return 0, fmt.Errorf("snapshot store: %w", err)
	}
	ents, err := os.ReadDir(t.s.dir())
	if err != nil {
		return 0, fmt.Errorf("snapshot store: %w", err)
	}
	for _, e := range ents {
		if id, ok := parseID(e.Name()); ok && id > last {
			last = id
		}
	}
	id := last + 1
	if volatile {
		return id, nil
	}
	if err := writeFileAtomic(p, []byte(strconv.FormatUint(id, 10)+"\n"), 0o600); err != nil {
		return 0, fmt.Errorf("snapshot store: %w", err)
	}
	return id, nil
}

func (t *fileTx) put(r *record) error {
	if !t.write {
		return errors.New("snapshot store: put in a read transaction")
	}
	if o, ok := t.keys[r.Key]; ok && o.ID != r.ID {
		return fmt.Errorf("snapshot %q: %w", r.Key, ErrAlreadyExists)
	}
	b, err := json.MarshalIndent(r, "", "\t")
	if err != nil {
		return fmt.Errorf("snapshot %q: encode record: %w", r.Key, err)
	}
	d := filepath.Join(t.s.dir(), strconv.FormatUint(r.ID, 10))
	if r.Volatile {
		err = writeFileUnsynced(filepath.Join(d, volatileFile), append(b, '\n'), 0o600)
	} else {
		err = writeFileAtomic(filepath.Join(d, infoFile), append(b, '\n'), 0o600)
	}
	if err != nil {
		return fmt.Errorf("snapshot %q: write record: %w", r.Key, err)
	}
	if o, ok := t.ids[r.ID]; ok {
		if o.Volatile && !r.Volatile {
			// info.json, durable now, takes precedence anyway.
			os.Remove(filepath.Join(d, volatileFile))
		}
		delete(t.keys, o.Key)
	}
	t.keys[r.Key] = r
	t.ids[r.ID] = r
	return nil
}

func (t *fileTx) del(id uint64) error {
	if !t.write {
		return errors.New("snapshot store: del in a read transaction")
	}
	r, ok := t.ids[id]
	if !ok {
		return nil
	}
	d := filepath.Join(t.s.dir(), strconv.FormatUint(id, 10))
	for _, name := range []string{infoFile, volatileFile} {
		if err := os.Remove(filepath.Join(d, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("snapshot %q: remove record: %w", r.Key, err)
		}
	}
	if !r.Volatile {
		if err := syncDir(d); err != nil {
			return fmt.Errorf("snapshot %q: remove record: %w", r.Key, err)
		}
	}
	delete(t.ids, id)
	delete(t.keys, r.Key)
	return nil
}

// writeFileAtomic replaces path with data: readers see the old or the new
// content, never a mix, also after a crash.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	return replaceFile(path, data, perm, true)
}

// writeFileUnsynced replaces path with data atomically for other
// processes (temporary file and rename) but syncs nothing: a crash of
// the host may leave the old content, the new, or a torn file.
func writeFileUnsynced(path string, data []byte, perm os.FileMode) error {
	return replaceFile(path, data, perm, false)
}

// replaceFile writes data to a temporary file beside path and renames it
// over path; durable syncs the file before the rename and the directory
// after it.
func replaceFile(path string, data []byte, perm os.FileMode, durable bool) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if durable {
		if err = f.Sync(); err != nil {
			return err
		}
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	if !durable {
		return nil
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
