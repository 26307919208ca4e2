package engine

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/archive"
	"github.com/berth-project/berth/containers"
	"github.com/berth-project/berth/snapshot"
)

// ErrPathNotFound is wrapped by the errors of CopyIn and CopyOut when a
// path does not exist in the container (or on the host).
var ErrPathNotFound = errors.New("path not found")

// CopyOptions tune CopyIn and CopyOut, like docker cp's flags.
type CopyOptions struct {
	// Archive keeps the uid and gid of what is copied (-a); without it,
	// what is copied into a container is owned by root and what is
	// copied out by the caller.
	Archive bool
	// FollowLink follows a symlink given as the source (-L).
	FollowLink bool
}

// ctrFS maps the paths of a container to the host: the rootfs, with the
// container's bind and volume mounts over it.
type ctrFS struct {
	name   string // the container's name, for errors
	rootfs string
	mounts []fsMount // longest destination first
}

type fsMount struct {
	dest, source string
	readOnly     bool
}

func newCtrFS(c *containers.Container, rootfs string) *ctrFS {
	f := &ctrFS{name: c.Name, rootfs: rootfs}
	for _, m := range c.Mounts {
		if (m.Type == "bind" || m.Type == "volume") && m.Source != "" {
			f.mounts = append(f.mounts, fsMount{dest: path.Clean(m.Destination), source: m.Source, readOnly: m.ReadOnly})
		}
	}
	slices.SortFunc(f.mounts, func(a, b fsMount) int { return len(b.dest) - len(a.dest) })
	return f
}

// host returns the host directory that holds the clean absolute container
// path p, p's path relative to it ("" for the directory itself), and the
// mount, if any.
func (f *ctrFS) host(p string) (root, rel string, m *fsMount) {
	for i := range f.mounts {
		d := f.mounts[i].dest
		if p == d {
			return f.mounts[i].source, "", &f.mounts[i]
		}
		if strings.HasPrefix(p, d+"/") {
			return f.mounts[i].source, p[len(d)+1:], &f.mounts[i]
		}
	}
	return f.rootfs, strings.TrimPrefix(p, "/"), nil
}

// Lstat and Readlink make ctrFS the securejoin.VFS of the container's
// merged view: a path resolved through it never leaves the rootfs or a
// mount's source, whatever its symlinks say.
func (f *ctrFS) Lstat(p string) (os.FileInfo, error) {
	root, rel, _ := f.host(path.Clean("/" + p))
	return os.Lstat(filepath.Join(root, rel))
}

func (f *ctrFS) Readlink(p string) (string, error) {
	root, rel, _ := f.host(path.Clean("/" + p))
	return os.Readlink(filepath.Join(root, rel))
}

// resolve resolves the container path p, following every symlink (the
// last component's too when follow), and returns the resolved clean
// container path.
func (f *ctrFS) resolve(p string, follow bool) (string, error) {
	p = path.Clean("/" + p)
	dir, base := path.Split(p)
	if follow || p == "/" {
		dir, base = p, ""
	}
	r, err := securejoin.SecureJoinVFS("", dir, f)
	if err != nil {
		return "", fmt.Errorf("resolve %s in container %s: %w", p, f.name, err)
	}
	return path.Join("/", r, base), nil
}

// open opens the resolved container path p: an O_PATH handle of the
// directory that holds it and its last component ("" when p is the root
// of the rootfs or of a mount, which the handle then is). Each step is
// resolved again inside the host directory, so a symlink swapped in
// meanwhile cannot lead out of it.
func (f *ctrFS) open(p string) (*os.File, string, *fsMount, error) {
	root, rel, m := f.host(p)
	dir, base := path.Split(rel)
	if rel == "" {
		dir = ""
	}
	rh, err := os.OpenFile(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, "", nil, err
	}
	if dir == "" || dir == "/" {
		return rh, base, m, nil
	}
	defer rh.Close()
	h, err := pathrs.OpenatInRoot(rh, dir)
	if err != nil {
		return nil, "", nil, err
	}
	return h, base, m, nil
}

// withRootfs runs fn with the container's rootfs mounted, under the
// container's lock so that a start or cleanup cannot mount or unmount it
// meanwhile: a running container's mount is used, a stopped one's
// snapshot is mounted for the time of fn.
func (s *Store) withRootfs(ctx context.Context, ref string, fn func(c *containers.Container, f *ctrFS) error) error {
	c, err := s.Container(ctx, ref)
	if err != nil {
		return err
	}
	unlock, err := s.lockContainer(c.ID)
	if err != nil {
		return err
	}
	defer unlock()
	if c, err = s.Container(ctx, c.ID); err != nil {
		return err
	}
	rootfs := filepath.Join(s.containerDir(c.ID), "rootfs")
	switch c.State.Status {
	case containers.Running, containers.Paused, containers.Restarting:
	default:
		if err := s.mountRootfs(c.ID, rootfs, false); err != nil {
			return err
		}
		defer snapshot.Unmount(rootfs)
	}
	return fn(c, newCtrFS(c, rootfs))
}

func notFound(p, name string) error {
	return fmt.Errorf("Could not find the file %s in container %s: %w", p, name, ErrPathNotFound)
}

// splitCopyPath cleans a cp path and reports whether it names a
// directory's contents ("DIR/.") or must be a directory ("DIR/").
func splitCopyPath(p string) (clean string, contents, dirOnly bool) {
	contents = p == "." || strings.HasSuffix(p, "/.")
	dirOnly = strings.HasSuffix(p, "/")
	return path.Clean(p), contents, dirOnly || contents
}

// CopyOut copies src out of the container ref to the host path dst, with
// docker cp's rules: a file to a file or into a directory, a directory
// into an existing directory as dir/NAME or to a missing path as that
// path, "SRC/." the directory's contents. dst "-" writes a tar stream of
// src to stdout instead.
func (s *Store) CopyOut(ctx context.Context, ref, src, dst string, stdout io.Writer, opts CopyOptions) error {
	return s.withRootfs(ctx, ref, func(c *containers.Container, f *ctrFS) error {
		clean, contents, dirOnly := splitCopyPath(path.Join("/", src))
		if strings.HasSuffix(src, "/") || strings.HasSuffix(src, "/.") {
			contents, dirOnly = strings.HasSuffix(src, "/."), true
		}
		p, err := f.resolve(clean, opts.FollowLink || dirOnly)
		if err != nil {
			return err
		}
		dir, base, _, err := f.open(p)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return notFound(src, c.Name)
		}
		if err != nil {
			return fmt.Errorf("copy %s from container %s: %w", src, c.Name, err)
		}
		defer dir.Close()
		st, err := statAt(dir, base)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				return notFound(src, c.Name)
			}
			return fmt.Errorf("copy %s from container %s: %w", src, c.Name, err)
		}
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		if dirOnly && !isDir {
			return fmt.Errorf("copy %s from container %s: not a directory", src, c.Name)
		}
		srcName := path.Base(clean)
		if clean == "/" {
			srcName = "."
			contents = true
		}
		if dst == "-" {
			name := srcName
			if contents {
				name = ""
			}
			return writeTree(ctx, stdout, dir, base, name, tarOptions{keepOwner: true})
		}
		plan, err := planHostDest(dst, isDir, contents, srcName)
		if err != nil {
			return err
		}
		return extractInto(ctx, plan.dir, func(w io.Writer) error {
			return writeTree(ctx, w, dir, base, plan.name, tarOptions{keepOwner: true})
		}, !opts.Archive)
	})
}

// copyPlan says where a copy lands: the tar stream of the source, its
// root entry named name ("" for a directory's contents), is extracted into
// the directory dir.
type copyPlan struct {
	dir  *os.File
	name string
}

// planDest applies docker cp's rules to a destination whose state is
// known: exists (isDir) or not; the directory holding it is parent.
func planDest(dst string, exists, dstIsDir, srcIsDir, contents bool, srcName string) (name string, inside bool, err error) {
	switch {
	case exists && dstIsDir:
		if contents {
			return "", true, nil
		}
		return srcName, true, nil
	case exists:
		if srcIsDir {
			return "", false, fmt.Errorf("cannot copy a directory to a file: %s", dst)
		}
		return path.Base(path.Clean(dst)), false, nil
	default:
		if strings.HasSuffix(dst, "/") && !srcIsDir {
			return "", false, fmt.Errorf("destination directory %s does not exist", dst)
		}
		return path.Base(path.Clean(dst)), false, nil
	}
}

// planHostDest plans a copy out to the host path dst.
func planHostDest(dst string, srcIsDir, contents bool, srcName string) (copyPlan, error) {
	fi, err := os.Stat(dst)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return copyPlan{}, err
	}
	name, inside, err := planDest(dst, exists, exists && fi.IsDir(), srcIsDir, contents, srcName)
	if err != nil {
		return copyPlan{}, err
	}
	target := filepath.Dir(filepath.Clean(dst))
	if inside {
		target = dst
	}
	d, err := os.OpenFile(target, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return copyPlan{}, fmt.Errorf("destination directory %s: %w", target, err)
	}
	return copyPlan{dir: d, name: name}, nil
}

// extractInto applies the tar stream that write produces to the
// directory dir (closing it), with archive.Apply's safe extraction.
func extractInto(ctx context.Context, dir *os.File, write func(io.Writer) error, noOwnership bool) error {
	defer dir.Close()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := write(pw)
		pw.CloseWithError(err)
		done <- err
	}()
	// The O_PATH handle, reopened through /proc, is the directory itself
	// whatever happened to its path since.
	target := fmt.Sprintf("/proc/self/fd/%d", dir.Fd())
	_, err := archive.Apply(ctx, target, pr, archive.ApplyOptions{NoOwnership: noOwnership})
	pr.CloseWithError(errors.New("extraction stopped"))
	werr := <-done
	if werr != nil && (err == nil || !errors.Is(werr, io.ErrClosedPipe)) {
		return werr
	}
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	return nil
}

// CopyIn copies the host path src (or, for src "-", the tar stream read
// from stdin) into the container ref at dst, with docker cp's rules.
// What is copied is owned by root unless opts.Archive.
func (s *Store) CopyIn(ctx context.Context, ref, src string, stdin io.Reader, dst string, opts CopyOptions) error {
	var (
		srcDir  *os.File
		srcBase string
		srcIsDir,
		contents bool
		srcName string
	)
	if src != "-" {
		clean, cont, dirOnly := splitCopyPath(src)
		contents = cont
		hostPath := clean
		if opts.FollowLink || dirOnly {
			r, err := filepath.EvalSymlinks(clean)
			if err != nil {
				return fmt.Errorf("could not find the file %s: %w", src, ErrPathNotFound)
			}
			hostPath = r
		}
		fi, err := os.Lstat(hostPath)
		if err != nil {
			return fmt.Errorf("could not find the file %s: %w", src, ErrPathNotFound)
		}
		srcIsDir = fi.IsDir()
		if dirOnly && !srcIsDir {
			return fmt.Errorf("%s: not a directory", src)
		}
		if srcDir, err = os.OpenFile(filepath.Dir(hostPath), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			return err
		}
		defer srcDir.Close()
		srcBase, srcName = filepath.Base(hostPath), filepath.Base(clean)
		if hostPath == "/" {
			srcBase, contents = "", true
		}
	}
	return s.withRootfs(ctx, ref, func(c *containers.Container, f *ctrFS) error {
		p, err := f.resolve(dst, true)
		if err != nil {
			return err
		}
		dir, base, m, err := f.open(p)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return notFound(path.Dir(path.Clean("/"+dst)), c.Name)
		}
		if err != nil {
			return fmt.Errorf("copy to %s in container %s: %w", dst, c.Name, err)
		}
		if m != nil && m.readOnly {
			dir.Close()
			return fmt.Errorf("mounted volume is marked read-only: %s", m.dest)
		}
		st, err := statAt(dir, base)
		exists := err == nil
		if err != nil && !errors.Is(err, unix.ENOENT) {
			dir.Close()
			return fmt.Errorf("copy to %s in container %s: %w", dst, c.Name, err)
		}
		dstIsDir := exists && st.Mode&unix.S_IFMT == unix.S_IFDIR
		if src == "-" {
			if !dstIsDir {
				dir.Close()
				if !exists {
					return notFound(dst, c.Name)
				}
				return fmt.Errorf("extraction point is not a directory: %s", dst)
			}
			target, err := openDirAt(dir, base)
			dir.Close()
			if err != nil {
				return err
			}
			return extractInto(ctx, target, func(w io.Writer) error {
				// Owned by root unless -a, as docker's cp.
				return filterTar(w, stdin, func(h *tar.Header) bool {
					if !opts.Archive {
						h.Uid, h.Gid, h.Uname, h.Gname = 0, 0, "", ""
					}
					return true
				})
			}, false)
		}
		name, inside, err := planDest(dst, exists, dstIsDir, srcIsDir, contents, srcName)
		if err != nil {
			dir.Close()
			return err
		}
		target := dir
		if inside {
			target, err = openDirAt(dir, base)
			dir.Close()
			if err != nil {
				return err
			}
		}
		return extractInto(ctx, target, func(w io.Writer) error {
			return writeTree(ctx, w, srcDir, srcBase, name, tarOptions{keepOwner: opts.Archive})
		}, false)
	})
}

// openDirAt opens the directory base in dir ("" for dir itself) without
// following a symlink.
func openDirAt(dir *os.File, base string) (*os.File, error) {
	if base == "" {
		base = "."
	}
	fd, err := unix.Openat(int(dir.Fd()), base, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", base, err)
	}
	return os.NewFile(uintptr(fd), base), nil
}

func statAt(dir *os.File, base string) (*unix.Stat_t, error) {
	var st unix.Stat_t
	var err error
	if base == "" {
		err = unix.Fstat(int(dir.Fd()), &st)
	} else {
		err = unix.Fstatat(int(dir.Fd()), base, &st, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// tarOptions tune writeTree.
type tarOptions struct {
	// keepOwner keeps the files' uid and gid; else entries are owned by
	// root.
	keepOwner bool
	// skip, when set, leaves out the entries (and what is under them)
	// whose name it returns true for.
	skip func(name string) bool
}

// writeTree writes a tar stream of base in dir ("" for dir itself) to w:
// its root entry named name ("" leaves the root entry out and names its
// children from the top), then, for a directory, everything under it in
// lexical order. Every file is opened relative to its parent's handle
// without following symlinks, so a tree that changes while it is read
// cannot lead the walk out of it.
func writeTree(ctx context.Context, w io.Writer, dir *os.File, base, name string, opts tarOptions) error {
	tw := tar.NewWriter(w)
	t := &tarWalk{ctx: ctx, tw: tw, opts: opts, links: map[[2]uint64]string{}}
	if err := t.entry(int(dir.Fd()), base, name); err != nil {
		return err
	}
	return tw.Close()
}

type tarWalk struct {
	ctx   context.Context
	tw    *tar.Writer
	opts  tarOptions
	links map[[2]uint64]string
}

// entry writes the file base of dirfd ("" for dirfd itself) as name.
func (t *tarWalk) entry(dirfd int, base, name string) error {
	if err := t.ctx.Err(); err != nil {
		return err
	}
	if name != "" && t.opts.skip != nil && t.opts.skip(name) {
		return nil
	}
	var st unix.Stat_t
	var err error
	if base == "" {
		err = unix.Fstat(dirfd, &st)
	} else {
		err = unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(st.Mode & 0o7777),
		ModTime: time.Unix(st.Mtim.Unix()).UTC(),
		Format:  tar.FormatPAX,
	}
	if t.opts.keepOwner {
		hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
	}
	var f *os.File
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		if name != "" {
			hdr.Name = name + "/"
		}
	case unix.S_IFREG:
		key := [2]uint64{st.Dev, st.Ino}
		if first, ok := t.links[key]; ok && name != "" {
			hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
			return t.tw.WriteHeader(hdr)
		}
		if st.Nlink > 1 && name != "" {
			t.links[key] = name
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
		fd, err := openAt(dirfd, base, unix.O_RDONLY)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		f = os.NewFile(uintptr(fd), name)
		defer f.Close()
	case unix.S_IFLNK:
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(dirfd, base, buf)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, string(buf[:n])
	case unix.S_IFCHR:
		hdr.Typeflag = tar.TypeChar
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFBLK:
		hdr.Typeflag = tar.TypeBlock
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		hdr.Typeflag = tar.TypeFifo
	default:
		return nil // sockets
	}
	if name != "" || hdr.Typeflag != tar.TypeDir {
		if hdr.Name == "" {
			hdr.Name = "."
		}
		if err := t.tw.WriteHeader(hdr); err != nil {
			return err
		}
	}
	if f != nil {
		if _, err := io.CopyN(t.tw, f, hdr.Size); err != nil {
			return fmt.Errorf("%s: read: %w", name, err)
		}
		return nil
	}
	if hdr.Typeflag != tar.TypeDir {
		return nil
	}
	dfd, err := openAt(dirfd, base, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	d := os.NewFile(uintptr(dfd), name)
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	slices.Sort(names)
	for _, n := range names {
		child := n
		if name != "" {
			child = name + "/" + n
		}
		if err := t.entry(dfd, n, child); err != nil {
			return err
		}
	}
	return nil
}

// openAt opens base in dirfd ("" for dirfd itself) without following a
// symlink.
func openAt(dirfd int, base string, flags int) (int, error) {
	if base == "" {
		base = "."
	}
	return unix.Openat(dirfd, base, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// Export writes a tar stream of the container's whole file system (its
// merged rootfs, without its mounts) to w, like docker export.
func (s *Store) Export(ctx context.Context, ref string, w io.Writer) error {
	return s.withRootfs(ctx, ref, func(c *containers.Container, f *ctrFS) error {
		root, err := os.OpenFile(f.rootfs, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer root.Close()
		if err := writeTree(ctx, w, root, "", "", tarOptions{keepOwner: true}); err != nil {
			return fmt.Errorf("export container %s: %w", c.Name, err)
		}
		s.containerEvent(ctx, c, "export")
		return nil
	})
}
