package snapshot

import (
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// NewNative returns a snapshotter storing snapshots under root as full
// copies, for filesystems or kernels where overlayfs is unusable.
//
// Prepare copies the parent's tree into the new snapshot (reflinks where
// the filesystem supports them, else copy_file_range); its mounts are one
// read-write bind mount. A view is a read-only bind mount of the parent's
// tree (of an empty directory without parent): committed trees never
// change and cannot be removed while the view exists.
//
// The store's lock is held while a tree is copied, so other processes'
// Prepare, Commit and Remove on the same root wait for the copy.
func NewNative(root string) (Snapshotter, error) {
	root, err := checkRoot(root)
	if err != nil {
		return nil, err
	}
	return open(root, func(s *snapshotter) driver { return &native{s: s} })
}

type native struct{ s *snapshotter }

func (n *native) check(string, Kind, uint64, []uint64) error { return nil }

func (n *native) create(key string, kind Kind, id uint64, chain []uint64) error {
	if err := os.Mkdir(n.s.fsDir(id), 0o755); err != nil {
		return err
	}
	if kind != KindActive || len(chain) == 0 {
		return nil
	}
	if err := copyTree(n.s.fsDir(chain[0]), n.s.fsDir(id)); err != nil {
		return fmt.Errorf("copy parent tree: %w", err)
	}
	return nil
}

func (n *native) mounts(r *record, chain []uint64) ([]specs.Mount, error) {
	if r.Kind == KindView && len(chain) > 0 {
		return []specs.Mount{bindMount(n.s.fsDir(chain[0]), true)}, nil
	}
	return []specs.Mount{bindMount(n.s.fsDir(r.ID), r.Kind == KindView)}, nil
}

func (n *native) committed(*record) {}

func (n *native) rebase() error {
	return fmt.Errorf("native snapshots hold full copies of their parents and cannot change parent: %w", ErrFailedPrecondition)
}
