package transfer

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// WriteFileAtomic writes path through fn into a temporary file beside it,
// synced and renamed over path only if fn succeeds. An existing file's
// permissions are kept; a new file gets perm.
func WriteFileAtomic(path string, perm fs.FileMode, fn func(io.Writer) error) (err error) {
	if st, err := os.Stat(path); err == nil {
		perm = st.Mode().Perm()
	}
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := fn(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Chmod(perm); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// writeFileBytes writes data to path atomically.
func writeFileBytes(path string, data []byte) error {
	return WriteFileAtomic(path, 0o644, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// syncTree fsyncs the directories of the tree at root (its files are
// synced as they are written).
func syncTree(root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		return f.Sync()
	})
}

// renameNoReplace renames a new directory into place, failing if dst
// appeared meanwhile.
func renameNoReplace(src, dst string) error {
	if err := unix.Renameat2(unix.AT_FDCWD, src, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE); err != nil {
		return fmt.Errorf("rename to %s: %w", dst, err)
	}
	return nil
}

// epoch is the modification time of the entries of the archives written,
// so that an image gives the same archive every time.
var epoch = time.Unix(0, 0)

// tarFile is one file of an archive being written: its name in the
// archive, and the file holding its content.
type tarFile struct {
	name string
	path string
}

// writeTar writes files to w as an uncompressed tar, with their parent
// directories.
func writeTar(w io.Writer, files []tarFile) error {
	tw := tar.NewWriter(w)
	dirs := map[string]bool{}
	var mkdirs func(dir string) error
	mkdirs = func(dir string) error {
		if dir == "." || dirs[dir] {
			return nil
		}
		if err := mkdirs(path.Dir(dir)); err != nil {
			return err
		}
		dirs[dir] = true
		return tw.WriteHeader(&tar.Header{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX})
	}
	for _, tf := range files {
		if err := mkdirs(path.Dir(tf.name)); err != nil {
			return err
		}
		if err := copyIntoTar(tw, tf); err != nil {
			return fmt.Errorf("%s: %w", tf.name, err)
		}
	}
	return tw.Close()
}

func copyIntoTar(tw *tar.Writer, tf tarFile) error {
	f, err := os.Open(tf.path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	hdr := &tar.Header{Name: tf.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: st.Size(), ModTime: epoch, Format: tar.FormatPAX}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// layoutFiles lists the files of the OCI layout at dir as tar entries:
// oci-layout, index.json, then the blobs in order.
func layoutFiles(dir string) ([]tarFile, error) {
	files := []tarFile{{"oci-layout", filepath.Join(dir, "oci-layout")}, {"index.json", filepath.Join(dir, "index.json")}}
	err := filepath.WalkDir(filepath.Join(dir, "blobs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		files = append(files, tarFile{filepath.ToSlash(rel), p})
		return nil
	})
	return files, err
}

// tarIndex is an uncompressed tar file opened for random access: the
// offset and size of each member, found by one pass over its headers
// (the content is skipped by seeking).
type tarIndex struct {
	path    string
	f       *os.File
	members map[string]tarMember
}

type tarMember struct {
	typ       byte
	off, size int64
	link      string
}

// memberName cleans an archive path: "./a//b" is "a/b".
func memberName(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

func openTarIndex(file, transport string) (*tarIndex, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("%s:%s: %w", transport, file, err)
	}
	t := &tarIndex{path: file, f: f, members: map[string]tarMember{}}
	if err := t.scan(); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s:%s: %w", transport, file, err)
	}
	return t, nil
}

func (t *tarIndex) scan() error {
	magic := make([]byte, 4)
	if n, _ := io.ReadFull(t.f, magic); n >= 2 && (magic[0] == 0x1f && magic[1] == 0x8b || n == 4 && string(magic) == "\x28\xb5\x2f\xfd") {
		return errors.New("a compressed archive: decompress it first (or use berth load)")
	}
	if _, err := t.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	tr := tar.NewReader(t.f)
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			if n == 0 {
				return errors.New("not a tar archive: no entries")
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		off, err := t.f.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		m := tarMember{typ: hdr.Typeflag, off: off, size: hdr.Size, link: hdr.Linkname}
		if hdr.Typeflag == tar.TypeReg || hdr.Typeflag == tar.TypeSymlink || hdr.Typeflag == tar.TypeLink {
			t.members[memberName(hdr.Name)] = m
		}
	}
}

// open opens the regular file name of the archive, following symbolic
// and hard links inside it, and returns it with its size.
func (t *tarIndex) open(name string) (io.ReadCloser, int64, error) {
	cur := memberName(name)
	for range 16 {
		m, ok := t.members[cur]
		if !ok {
			return nil, 0, fmt.Errorf("%s: no file %s in the archive", t.path, name)
		}
		switch m.typ {
		case tar.TypeReg:
			return io.NopCloser(io.NewSectionReader(t.f, m.off, m.size)), m.size, nil
		case tar.TypeLink:
			cur = memberName(m.link)
		case tar.TypeSymlink:
			if path.IsAbs(m.link) {
				cur = memberName(m.link)
			} else {
				cur = memberName(path.Join(path.Dir(cur), m.link))
			}
		}
	}
	return nil, 0, fmt.Errorf("%s: %s: too many links", t.path, name)
}

// readFile reads a whole member of at most limit bytes.
func (t *tarIndex) readFile(name string, limit int64) ([]byte, error) {
	rc, size, err := t.open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if size > limit {
		return nil, fmt.Errorf("%s: %s is %d bytes, more than the limit of %d", t.path, name, size, limit)
	}
	return io.ReadAll(rc)
}

func (t *tarIndex) Close() error { return t.f.Close() }
