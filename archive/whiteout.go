package archive

import (
	"errors"
	"fmt"
	"path"

	"golang.org/x/sys/unix"
)

// Whiteout names of the OCI image-spec (from AUFS).
const (
	// whiteoutPrefix marks a whiteout: ".wh.NAME" deletes NAME.
	whiteoutPrefix = ".wh."
	// whiteoutMetaPrefix marks AUFS metadata files, which are ignored.
	whiteoutMetaPrefix = whiteoutPrefix + whiteoutPrefix
	// opaqueMarker makes its directory opaque: the directory hides
	// everything lower layers hold in it.
	opaqueMarker = whiteoutMetaPrefix + ".opq"
)

// overlayfs' own marks.
const (
	overlayOpaqueXattr     = "trusted.overlay.opaque"
	overlayUserOpaqueXattr = "user.overlay.opaque"
)

// whiteout applies the whiteout entry base of the directory parent.
func (a *applier) whiteout(parent, base string) error {
	if base == opaqueMarker {
		if a.opts.Overlay {
			return a.opaqueOverlay(parent)
		}
		return a.opaqueNative(parent)
	}
	if len(base) >= len(whiteoutMetaPrefix) && base[:len(whiteoutMetaPrefix)] == whiteoutMetaPrefix {
		return nil // AUFS metadata (.wh..wh.plnk, .wh..wh.aufs)
	}
	target := base[len(whiteoutPrefix):]
	if target == "" || target == "." || target == ".." {
		return fmt.Errorf("invalid whiteout of %q", target)
	}
	if a.opts.Overlay {
		pdir, err := a.parents.get(a.root, parent, true)
		if err != nil {
			return fmt.Errorf("parent directory: %w", err)
		}
		if err := a.removeExisting(fd(pdir), target, false); err != nil {
			return err
		}
		if err := unix.Mknodat(fd(pdir), target, unix.S_IFCHR, 0); err != nil {
			return fmt.Errorf("overlay whiteout %q: %w", target, err)
		}
		return nil
	}
	name := path.Join(parent, target)
	if _, ok := a.layerPaths[name]; ok {
		return nil // a whiteout deletes from lower layers only
	}
	pdir, err := a.parents.get(a.root, parent, false)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil // nothing below to delete
		}
		return fmt.Errorf("parent directory: %w", err)
	}
	if err := a.removeExisting(fd(pdir), target, false); err != nil {
		return fmt.Errorf("whiteout %q: %w", target, err)
	}
	return nil
}

// opaqueOverlay marks the directory name opaque for overlayfs.
func (a *applier) opaqueOverlay(name string) error {
	d, err := a.parents.get(a.root, name, true)
	if err != nil {
		return fmt.Errorf("opaque directory: %w", err)
	}
	dfd, err := unix.Openat(fd(d), ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opaque directory: %w", err)
	}
	defer unix.Close(dfd)
	if err := unix.Fsetxattr(dfd, overlayOpaqueXattr, []byte("y"), 0); err != nil {
		return fmt.Errorf("opaque directory: set %s: %w", overlayOpaqueXattr, err)
	}
	return nil
}

// opaqueNative empties the directory name of everything this layer does
// not itself add.
func (a *applier) opaqueNative(name string) error {
	d, err := a.parents.get(a.root, name, false)
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil
		}
		return fmt.Errorf("opaque directory: %w", err)
	}
	a.parents.invalidate()
	if err := a.keepLayerPaths(fd(d), name); err != nil {
		return fmt.Errorf("opaque directory: %w", err)
	}
	return nil
}

// keepLayerPaths removes, below the directory dirfd named prefix,
// whatever is not in a.layerPaths.
func (a *applier) keepLayerPaths(dfd int, prefix string) error {
	names, err := readDirNames(dfd)
	if err != nil {
		return err
	}
	for _, n := range names {
		p := path.Join(prefix, n)
		if _, ok := a.layerPaths[p]; !ok {
			if err := removeAllAt(dfd, n); err != nil {
				return fmt.Errorf("remove %q: %w", p, err)
			}
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstatat(dfd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		cfd, err := unix.Openat(dfd, n, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		err = a.keepLayerPaths(cfd, p)
		unix.Close(cfd)
		if err != nil {
			return err
		}
	}
	return nil
}
