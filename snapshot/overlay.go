package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// maxOverlayLowers is overlayfs' limit of lower directories
// (OVL_MAX_STACK in the kernel).
const maxOverlayLowers = 500

// overlayMarker, in the root, records that a test overlay mount worked.
const overlayMarker = "overlay-supported"

// NewOverlay returns a snapshotter storing snapshots under root and
// stacking them with overlayfs.
//
// Mounts of an active snapshot are a read-write bind mount of its fs
// directory when it has no parent, else one overlay mount with
// upperdir=its fs, workdir=its work and lowerdir=the parents' fs
// directories, nearest first. Views are a read-only bind mount (no parent:
// an empty directory; one parent: the parent's fs) or, on two or more
// parents, a read-only overlay with lowerdir only.
//
// Overlay paths are absolute. When a long chain makes the option string
// exceed the mount data limit (one page), mount them with MountAll, which
// makes them relative to their common directory; Prepare and View refuse
// chains that would not fit even so, or that exceed overlayfs' 500 lower
// layers.
//
// NewOverlay first checks that overlayfs works on root with a test mount
// in a temporary directory under root, and remembers success in a marker
// file root/overlay-supported. On failure the error wraps
// errors.ErrUnsupported, so that callers can fall back to NewNative.
func NewOverlay(root string) (Snapshotter, error) {
	root, err := checkRoot(root)
	if err != nil {
		return nil, err
	}
	indexOff := overlayIndexDefaultOn()
	if err := checkOverlay(root, indexOff); err != nil {
		return nil, fmt.Errorf("overlay snapshotter %s: %w", root, err)
	}
	return open(root, func(s *snapshotter) driver { return &overlay{s: s, indexOff: indexOff} })
}

// overlayIndexDefaultOn tells whether overlayfs' index feature is on by
// default: it ties an upper directory to its lower ones, which breaks
// reusing committed layers, so mounts then say index=off.
func overlayIndexDefaultOn() bool {
	b, err := os.ReadFile("/sys/module/overlay/parameters/index")
	return err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("Y"))
}

// checkOverlay mounts an overlay with two lower layers under root, writes
// through it and checks the write landed in the upper directory.
// Checks run one at a time under a lock, so the check directories found
// under it were left by a process killed mid-check: their mounts are
// detached and the directories removed first.
func checkOverlay(root string, indexOff bool) error {
	marker := filepath.Join(root, overlayMarker)
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	unlock, err := flockFile(filepath.Join(root, "overlay-check.lock"), unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(marker); err == nil {
		return nil // another process checked while we waited
	}
	stale, _ := filepath.Glob(filepath.Join(root, "overlay-check-*"))
	for _, d := range stale {
		unix.Unmount(filepath.Join(d, "merged"), unix.MNT_DETACH)
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("remove a killed overlay check: %w", err)
		}
	}
	td, err := os.MkdirTemp(root, "overlay-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(td)
	for _, d := range []string{"l1", "l2", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(td, d), 0o700); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(td, "l1", "f"), []byte("lower"), 0o600); err != nil {
		return err
	}
	opts := []string{"workdir=" + filepath.Join(td, "work"), "upperdir=" + filepath.Join(td, "upper"),
		"lowerdir=" + filepath.Join(td, "l2") + ":" + filepath.Join(td, "l1")}
	if indexOff {
		opts = append(opts, "index=off")
	}
	merged := filepath.Join(td, "merged")
	if err := unix.Mount("overlay", merged, "overlay", 0, strings.Join(opts, ",")); err != nil {
		return fmt.Errorf("%w: overlayfs test mount: %w", errors.ErrUnsupported, err)
	}
	werr := os.WriteFile(filepath.Join(merged, "f"), []byte("upper"), 0o600)
	if err := unix.Unmount(merged, unix.MNT_DETACH); err != nil {
		return fmt.Errorf("overlayfs test unmount: %w", err)
	}
	if werr != nil {
		return fmt.Errorf("%w: write through overlayfs test mount: %w", errors.ErrUnsupported, werr)
	}
	if b, err := os.ReadFile(filepath.Join(td, "upper", "f")); err != nil || string(b) != "upper" {
		return fmt.Errorf("%w: overlayfs test mount: write did not reach the upper directory (%v)", errors.ErrUnsupported, err)
	}
	if b, err := os.ReadFile(filepath.Join(td, "l1", "f")); err != nil || string(b) != "lower" {
		return fmt.Errorf("%w: overlayfs test mount: write changed the lower directory (%v)", errors.ErrUnsupported, err)
	}
	return writeFileAtomic(marker, []byte("ok\n"), 0o600)
}

type overlay struct {
	s        *snapshotter
	indexOff bool
}

func (o *overlay) check(key string, kind Kind, id uint64, chain []uint64) error {
	lowers := len(chain)
	if kind == KindView && lowers < 2 {
		return nil
	}
	if lowers > maxOverlayLowers {
		return fmt.Errorf("%d parent layers exceed overlayfs' limit of %d lower directories", lowers, maxOverlayLowers)
	}
	// The shortest MountAll can make the options: paths relative to
	// root/snapshots.
	opts := o.options(kind, id, chain, func(id uint64) string { return strconv.FormatUint(id, 10) })
	if n := len(strings.Join(opts, ",")); n > mountDataMax() {
		return fmt.Errorf("overlay options for %d parent layers take %d bytes, more than the %d-byte mount data limit", lowers, n, mountDataMax())
	}
	return nil
}

func (o *overlay) create(key string, kind Kind, id uint64, chain []uint64) error {
	if err := os.Mkdir(o.s.fsDir(id), 0o755); err != nil {
		return err
	}
	if kind == KindActive {
		return os.Mkdir(o.s.workDir(id), 0o700)
	}
	return nil
}

func (o *overlay) mounts(r *record, chain []uint64) ([]specs.Mount, error) {
	switch {
	case len(chain) == 0 && r.Kind == KindActive:
		return []specs.Mount{bindMount(o.s.fsDir(r.ID), false)}, nil
	case len(chain) == 0:
		return []specs.Mount{bindMount(o.s.fsDir(r.ID), true)}, nil
	case len(chain) == 1 && r.Kind == KindView:
		return []specs.Mount{bindMount(o.s.fsDir(chain[0]), true)}, nil
	}
	opts := o.options(r.Kind, r.ID, chain, o.s.dir)
	return []specs.Mount{{Type: "overlay", Source: "overlay", Options: opts}}, nil
}

// options returns the overlay options of snapshot id on chain, with dir
// giving each snapshot's directory.
func (o *overlay) options(kind Kind, id uint64, chain []uint64, dir func(uint64) string) []string {
	var opts []string
	if kind == KindActive {
		opts = append(opts, "workdir="+filepath.Join(dir(id), "work"), "upperdir="+filepath.Join(dir(id), "fs"))
	} else {
		opts = append(opts, "ro")
	}
	lowers := make([]string, len(chain))
	for i, p := range chain {
		lowers[i] = filepath.Join(dir(p), "fs")
	}
	opts = append(opts, "lowerdir="+strings.Join(lowers, ":"))
	if o.indexOff {
		opts = append(opts, "index=off")
	}
	return opts
}

func (o *overlay) rebase() error { return nil }

func (o *overlay) committed(r *record) {
	// A committed snapshot is only ever a lower directory.
	os.RemoveAll(o.s.workDir(r.ID))
}

// bindMount describes a recursive bind mount of dir.
func bindMount(dir string, ro bool) specs.Mount {
	mode := "rw"
	if ro {
		mode = "ro"
	}
	return specs.Mount{Type: "bind", Source: dir, Options: []string{"rbind", mode}}
}
