package volume

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"github.com/berth-project/berth/internal/flock"
	"golang.org/x/sys/unix"
)

// ErrNotFound is returned, wrapped, for a volume that does not exist.
var ErrNotFound = errors.New("no such volume")

// ErrInUse is returned, wrapped, when a volume in use is to be removed.
var ErrInUse = errors.New("volume is in use")

// Driver is the only volume driver berth has: docker's "local".
const Driver = "local"

// Volume is one volume's record.
type Volume struct {
	Name       string
	Driver     string
	Mountpoint string // the directory mounted into containers
	CreatedAt  time.Time
	Labels     map[string]string `json:",omitempty"`
	Options    map[string]string `json:",omitempty"`
	Anonymous  bool              // made for one container (-v /dst); prune removes it
}

// CreateOptions are the settings of a new volume.
type CreateOptions struct {
	Labels    map[string]string
	Options   map[string]string
	Anonymous bool
}

// Store is the volumes under one root directory. Its methods are safe
// for concurrent use, also from several processes.
type Store struct {
	dir string // ROOT/volumes
}

const recordName = "volume.json"

// Open opens (creating if needed) the volume store under root.
func Open(root string) (*Store, error) {
	dir := filepath.Join(root, "volumes")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create volume store %s: %w", dir, err)
	}
	return &Store{dir: dir}, nil
}

// ValidName checks a volume name against docker's
// [a-zA-Z0-9][a-zA-Z0-9_.-]+.
func ValidName(name string) error {
	ok := len(name) >= 2
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		ok = alnum || (i > 0 && (c == '_' || c == '.' || c == '-'))
	}
	if !ok {
		return fmt.Errorf("invalid volume name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at least two characters", name)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail
	return hex.EncodeToString(b)
}

func (s *Store) path(name string) string { return filepath.Join(s.dir, name) }

// lock takes the store's lock file (.lock in the store's directory)
// shared (unix.LOCK_SH) or exclusive (unix.LOCK_EX), and returns
// the function that releases it. Create holds it shared, Remove and Prune
// exclusive, so a remove cannot take a volume away between a container
// being recorded as its user and the container's create finding it: the
// remove either sees the user, or finishes before the create, which then
// makes the volume anew.
func (s *Store) lock(how int) (func(), error) {
	unlock, err := flock.Lock(filepath.Join(s.dir, ".lock"), how)
	if err != nil {
		return nil, fmt.Errorf("volume store lock: %w", err)
	}
	return unlock, nil
}

// Create makes the volume name (a random 64-hex name when name is "" and
// opts.Anonymous). Like docker's, create is idempotent: for an existing
// name it returns that volume and created false.
func (s *Store) Create(name string, opts CreateOptions) (v Volume, created bool, err error) {
	if name == "" {
		if !opts.Anonymous {
			return Volume{}, false, errors.New("create volume: a volume needs a name unless it is anonymous")
		}
		name = randomHex(32)
	}
	if err := ValidName(name); err != nil {
		return Volume{}, false, fmt.Errorf("create volume: %w", err)
	}
	unlock, err := s.lock(unix.LOCK_SH)
	if err != nil {
		return Volume{}, false, err
	}
	defer unlock()
	if v, err := s.Get(name); err == nil {
		return v, false, nil
	} else if !errors.Is(err, ErrNotFound) {
		return Volume{}, false, err
	}
	tmp, err := os.MkdirTemp(s.dir, ".tmp-"+name+"-")
	if err != nil {
		return Volume{}, false, fmt.Errorf("create volume %s: %w", name, err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	final := s.path(name)
	v = Volume{
		Name:       name,
		Driver:     Driver,
		Mountpoint: filepath.Join(final, "_data"),
		CreatedAt:  time.Now().UTC().Truncate(time.Second),
		Labels:     opts.Labels,
		Options:    opts.Options,
		Anonymous:  opts.Anonymous,
	}
	if err := os.Mkdir(filepath.Join(tmp, "_data"), 0o755); err != nil {
		return Volume{}, false, fmt.Errorf("create volume %s: %w", name, err)
	}
	if err := writeRecord(tmp, v); err != nil {
		return Volume{}, false, fmt.Errorf("create volume %s: %w", name, err)
	}
	if err := os.Chmod(tmp, 0o701); err != nil {
		return Volume{}, false, fmt.Errorf("create volume %s: %w", name, err)
	}
	if err := os.Rename(tmp, final); err != nil {
		// Another process made it first: its rename won, ours cannot
		// replace a non-empty directory.
		if errors.Is(err, syscall.EEXIST) || errors.Is(err, syscall.ENOTEMPTY) {
			v, err := s.Get(name)
			return v, false, err
		}
		return Volume{}, false, fmt.Errorf("create volume %s: %w", name, err)
	}
	if err := syncDir(s.dir); err != nil {
		return Volume{}, false, fmt.Errorf("create volume %s: %w", name, err)
	}
	return v, true, nil
}

// writeRecord writes dir/volume.json atomically.
func writeRecord(dir string, v Volume) error {
	data, err := json.MarshalIndent(v, "", "\t")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".volume.json-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), filepath.Join(dir, recordName)); err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// Get returns the volume name.
func (s *Store) Get(name string) (Volume, error) {
	if ValidName(name) != nil {
		return Volume{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	file := filepath.Join(s.path(name), recordName)
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return Volume{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	}
	if err != nil {
		return Volume{}, fmt.Errorf("read volume %s: %w", name, err)
	}
	var v Volume
	if err := json.Unmarshal(data, &v); err != nil {
		return Volume{}, fmt.Errorf("read volume %s: %s: %w", name, file, err)
	}
	// The record's mountpoint is where it was made; the store may have moved.
	v.Mountpoint = filepath.Join(s.path(name), "_data")
	return v, nil
}

// List returns all volumes, by name.
func (s *Store) List() ([]Volume, error) {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	var out []Volume
	for _, e := range entries {
		if !e.IsDir() || ValidName(e.Name()) != nil {
			continue // .tmp- and .trash- entries of other processes
		}
		v, err := s.Get(e.Name())
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove deletes the volume name and its content. It refuses when
// inUse(name) says a container uses it (inUse may be nil).
func (s *Store) Remove(name string, inUse func(name string) bool) error {
	unlock, err := s.lock(unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := s.Get(name); err != nil {
		return err
	}
	if inUse != nil && inUse(name) {
		return fmt.Errorf("remove volume %s: %w", name, ErrInUse)
	}
	return s.remove(name)
}

func (s *Store) remove(name string) error {
	trash := filepath.Join(s.dir, ".trash-"+name+"-"+randomHex(8))
	if err := os.Rename(s.path(name), trash); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}

// Prune removes the unused anonymous volumes, and with all the unused
// named ones too. It returns the names removed and the bytes freed.
func (s *Store) Prune(inUse func(string) bool, all bool) (removed []string, bytes int64, err error) {
	unlock, err := s.lock(unix.LOCK_EX)
	if err != nil {
		return nil, 0, err
	}
	defer unlock()
	vols, err := s.List()
	if err != nil {
		return nil, 0, err
	}
	for _, v := range vols {
		if !v.Anonymous && !all {
			continue
		}
		if inUse != nil && inUse(v.Name) {
			continue
		}
		n, err := s.Size(v.Name)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return removed, bytes, err
		}
		if err := s.remove(v.Name); err != nil {
			if errors.Is(err, ErrNotFound) {
				continue // another prune was quicker
			}
			return removed, bytes, err
		}
		removed = append(removed, v.Name)
		bytes += n
	}
	return removed, bytes, nil
}

// Size returns the bytes the volume's files take, a file with several
// links counted once.
func (s *Store) Size(name string) (int64, error) {
	v, err := s.Get(name)
	if err != nil {
		return 0, err
	}
	return dirSize(v.Mountpoint)
}

func dirSize(dir string) (int64, error) {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]bool{}
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 && !d.IsDir() {
			k := inode{uint64(st.Dev), st.Ino}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		if !d.IsDir() {
			total += info.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", dir, err)
	}
	return total, nil
}

// isEmptyDir reports whether dir has no entries.
func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	names, err := f.Readdirnames(1)
	if len(names) > 0 {
		return false, nil
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	return true, nil
}
