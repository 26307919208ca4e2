package archive

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// DiffOverlayUpper writes to w an uncompressed layer tar of the changes
// that the overlayfs upper directory upper holds over its lower layers:
// its entries in lexical order, with overlayfs' whiteouts (0:0 character
// devices) written as ".wh.NAME" entries and opaque directories (xattr
// trusted.overlay.opaque or user.overlay.opaque = "y") followed by a
// ".wh..wh..opq" entry. Files hardlinked together inside upper become tar
// hardlinks to the first of their names. Sockets are left out, as are
// overlayfs' own xattrs and SELinux labels.
//
// The upper directory must not change while it is read (the container
// must be stopped or paused); files are opened without following symlinks.
func DiffOverlayUpper(w io.Writer, upper string) error {
	tw := tar.NewWriter(w)
	links := map[[2]uint64]string{}
	err := filepath.WalkDir(upper, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(upper, p)
		if err != nil || rel == "." {
			return err
		}
		if err := diffEntry(tw, p, filepath.ToSlash(rel), links); err != nil {
			return fmt.Errorf("entry %q: %w", rel, err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("diff overlay upper %s: %w", upper, err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("diff overlay upper %s: %w", upper, err)
	}
	return nil
}

func diffEntry(tw *tar.Writer, p, name string, links map[[2]uint64]string) error {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return err
	}
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		Uid:     int(st.Uid),
		Gid:     int(st.Gid),
		ModTime: time.Unix(st.Mtim.Unix()),
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		if st.Rdev == 0 {
			dir, base := splitName(name)
			return tw.WriteHeader(&tar.Header{
				Typeflag: tar.TypeReg,
				Name:     joinName(dir, whiteoutPrefix+base),
				ModTime:  hdr.ModTime,
			})
		}
		hdr.Typeflag = tar.TypeChar
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFBLK:
		hdr.Typeflag = tar.TypeBlock
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	case unix.S_IFSOCK:
		return nil
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
	case unix.S_IFDIR:
		hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
	case unix.S_IFREG:
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := links[key]; ok {
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
			return tw.WriteHeader(hdr)
		}
		if st.Nlink > 1 {
			links[key] = name
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
	default:
		return fmt.Errorf("unknown file type %#o", st.Mode&unix.S_IFMT)
	}
	xattrs, opaque, err := readXattrs(p)
	if err != nil {
		return err
	}
	if len(xattrs) > 0 {
		hdr.PAXRecords = xattrs
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeReg {
		if err := copyFileTo(tw, p, hdr.Size); err != nil {
			return err
		}
	}
	if opaque && hdr.Typeflag == tar.TypeDir {
		return tw.WriteHeader(&tar.Header{
			Typeflag: tar.TypeReg,
			Name:     joinName(name, opaqueMarker),
			ModTime:  hdr.ModTime,
		})
	}
	return nil
}

func joinName(dir, base string) string {
	if dir == "" {
		return base
	}
	return dir + "/" + base
}

func copyFileTo(w io.Writer, p string, size int64) error {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.CopyN(w, f, size); err != nil {
		return fmt.Errorf("read content: %w", err)
	}
	return nil
}

// readXattrs returns the xattrs of p to record as PAX records, and whether
// overlayfs marked p opaque.
func readXattrs(p string) (map[string]string, bool, error) {
	names, err := listXattrs(p)
	if err != nil {
		return nil, false, err
	}
	var (
		recs   map[string]string
		opaque bool
	)
	for _, k := range names {
		v, err := getXattr(p, k)
		if err != nil {
			return nil, false, fmt.Errorf("xattr %q: %w", k, err)
		}
		if k == overlayOpaqueXattr || k == overlayUserOpaqueXattr {
			opaque = opaque || string(v) == "y"
		}
		if skipXattr(k) {
			continue
		}
		if recs == nil {
			recs = map[string]string{}
		}
		recs[xattrPrefix+k] = string(v)
	}
	return recs, opaque, nil
}

func listXattrs(p string) ([]string, error) {
	return listXattrsWith(func(b []byte) (int, error) { return unix.Llistxattr(p, b) })
}

func getXattr(p, k string) ([]byte, error) {
	return getXattrWith(func(b []byte) (int, error) { return unix.Lgetxattr(p, k, b) })
}

// listXattrsWith lists xattr names with list (llistxattr or flistxattr).
func listXattrsWith(list func([]byte) (int, error)) ([]string, error) {
	for size := 1024; ; size *= 4 {
		buf := make([]byte, size)
		n, err := list(buf)
		if errors.Is(err, unix.ERANGE) && size < 1<<20 {
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("list xattrs: %w", err)
		}
		var names []string
		for _, k := range strings.Split(string(buf[:n]), "\x00") {
			if k != "" {
				names = append(names, k)
			}
		}
		return names, nil
	}
}

// getXattrWith reads one xattr value with get (lgetxattr or fgetxattr).
func getXattrWith(get func([]byte) (int, error)) ([]byte, error) {
	for size := 256; ; size *= 4 {
		buf := make([]byte, size)
		n, err := get(buf)
		if errors.Is(err, unix.ERANGE) && size < 1<<20 {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
