package engine

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/berth-project/berth/content"
	"github.com/berth-project/berth/internal/topdir"
	"github.com/berth-project/berth/metadata"
	"github.com/berth-project/berth/snapshot"
)

// DefaultRoot is the default root directory of berth's image store.
const DefaultRoot = "/var/lib/berth"

// ErrNotFound is returned (wrapped, naming the image) when an image does
// not exist.
var ErrNotFound = errors.New("not found")

// Store is berth's image store opened on a root directory: content,
// metadata and snapshots. It is safe for concurrent use by many goroutines
// and many processes sharing the root.
type Store struct {
	layout
	cs      *content.Store
	db      *metadata.DB
	sn      snapshot.Snapshotter
	overlay bool

	earlyMu sync.Mutex
	early   map[string]*earlyLaunch // by container ID: see launchEarly
}

// Options tune OpenWith.
type Options struct {
	// Snapshotter is "overlay", "native", or "" for overlay where
	// overlayfs works on the root's file system, else native.
	Snapshotter string
	// RunRoot is where running containers keep what lasts one boot: the
	// runtime's state, monitors' sockets and exit files. Default
	// DefaultRunRoot; a tmpfs, so that a reboot clears it.
	RunRoot string
	// Exe is the berth binary that runs monitors and the runtime for
	// containers; default: this process's executable.
	Exe string
}

// DefaultRunRoot is the default run root (see Options.RunRoot).
const DefaultRunRoot = "/run/berth/engine"

// Open opens (creating as needed) the image store rooted at root with the
// default options.
func Open(root string) (*Store, error) { return OpenWith(root, Options{}) }

// OpenWith opens (creating as needed) the image store rooted at root.
func OpenWith(root string, opts Options) (*Store, error) {
	switch opts.Snapshotter {
	case "", "overlay", "native":
	default:
		return nil, fmt.Errorf("unknown snapshotter %q (overlay or native)", opts.Snapshotter)
	}
	l, err := newLayout(root, opts)
	if err != nil {
		return nil, err
	}
	root = l.root
	cs, err := content.Open(filepath.Join(root, "content"))
	if err != nil {
		return nil, fmt.Errorf("open content store: %w", err)
	}
	db, err := metadata.Open(filepath.Join(root, "metadata.db"))
	if err != nil {
		return nil, fmt.Errorf("open metadata: %w", err)
	}
	var sn snapshot.Snapshotter
	overlay := opts.Snapshotter != "native"
	if overlay {
		sn, err = snapshot.NewOverlay(filepath.Join(root, "snapshots", "overlay"))
		if errors.Is(err, errors.ErrUnsupported) && opts.Snapshotter == "" {
			overlay = false
		}
	}
	if !overlay {
		sn, err = snapshot.NewNative(filepath.Join(root, "snapshots", "native"))
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open snapshotter: %w", err)
	}
	// Each container's files go to a block group of their own (see
	// topdir): the directories are made by the first container.
	for _, d := range []string{filepath.Join(root, "containers"), filepath.Join(l.runRoot, "containers"), l.runtimeRoot()} {
		topdir.Mark(d)
	}
	return &Store{layout: l, cs: cs, db: db, sn: sn, overlay: overlay}, nil
}

// layout is where a store keeps what, known before it is open: enough to
// start a container's monitor (see BeginPrelaunch).
type layout struct {
	root     string // absolute
	runRoot  string // absolute
	berthExe string // Options.Exe
}

func newLayout(root string, opts Options) (layout, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return layout{}, err
	}
	runRoot := opts.RunRoot
	if runRoot == "" {
		runRoot = DefaultRunRoot
	}
	if runRoot, err = filepath.Abs(runRoot); err != nil {
		return layout{}, err
	}
	return layout{root: root, runRoot: runRoot, berthExe: opts.Exe}, nil
}

// Close releases the store's snapshotter and database.
func (s *Store) Close() error {
	s.earlyMu.Lock()
	ids := make([]string, 0, len(s.early))
	for id := range s.early {
		ids = append(ids, id)
	}
	s.earlyMu.Unlock()
	for _, id := range ids {
		s.dropEarly(id)
	}
	return errors.Join(s.sn.Close(), s.db.Close())
}

// Root returns the store's absolute root directory.
func (s *Store) Root() string { return s.root }

// Content returns the store's content store.
func (s *Store) Content() *content.Store { return s.cs }

// DB returns the store's metadata database.
func (s *Store) DB() *metadata.DB { return s.db }

// Snapshotter returns the store's snapshotter.
func (s *Store) Snapshotter() snapshot.Snapshotter { return s.sn }
