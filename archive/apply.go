package archive

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// Default limits of [ApplyOptions].
const (
	DefaultMaxEntries = 1 << 20
	DefaultMaxBytes   = 64 << 30
)

// maxNameLen bounds entry names and link targets: no path of a usable
// root filesystem is longer than PATH_MAX.
const maxNameLen = unix.PathMax

// ApplyOptions tune [Apply]. The zero value is ready to use.
type ApplyOptions struct {
	// MaxEntries caps the number of tar entries (headers) of the layer.
	// Zero or less means DefaultMaxEntries.
	MaxEntries int64
	// MaxBytes caps both the length of the uncompressed stream and the sum
	// of the entries' logical sizes (a sparse file counts with its full
	// size), so that neither a decompression bomb nor a sparse-file bomb
	// can fill the disk. Zero or less means DefaultMaxBytes.
	MaxBytes int64
	// Overlay writes whiteouts in overlayfs' format, for the upper
	// directory of a new overlay snapshot: ".wh.NAME" becomes a 0:0
	// character device NAME and ".wh..wh..opq" sets the xattr
	// trusted.overlay.opaque="y" on its directory. Without Overlay the
	// directory must already hold a copy of the lower layers; a whiteout
	// deletes its target and an opaque marker empties its directory of
	// everything this layer does not itself add.
	Overlay bool
	// Lowers lists, in overlay mode, the directories of the layers below
	// dir, topmost first. A hardlink whose target only a lower layer holds
	// then copies that file up into dir before linking to it, as
	// overlayfs itself would; without Lowers such a hardlink fails.
	Lowers []string
	// NoOwnership leaves files owned by the caller instead of the tar
	// header's uid and gid, and ignores EPERM on security.* and trusted.*
	// xattrs (for unprivileged unpacking).
	NoOwnership bool
	// SkipDeviceErrors skips, instead of failing on, character and block
	// devices that mknod(2) refuses with EPERM (as in a user namespace).
	SkipDeviceErrors bool
}

func (o ApplyOptions) withDefaults() ApplyOptions {
	if o.MaxEntries <= 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	return o
}

// ErrLinkToLower is wrapped by the error of [Apply] in overlay mode
// without [ApplyOptions.Lowers] when a hardlink's target is not in the
// layer: it may be in a lower layer, so the layer must be applied again
// with its lower layers given.
var ErrLinkToLower = errors.New("hardlink target is not in this layer (it may be in a lower one)")

// ErrTooLarge is wrapped by the errors of [Apply] when a layer exceeds
// [ApplyOptions.MaxBytes] or [ApplyOptions.MaxEntries].
var ErrTooLarge = errors.New("layer exceeds limit")

// Apply applies the uncompressed layer tar stream r on top of the existing
// directory dir and returns the layer's diff ID: the sha256 digest of the
// whole stream, computed while it is read. Apply reads r to its end, past
// the tar end-of-archive marker, so that the digest covers every byte.
//
// The caller must compare the returned diff ID with the image config's
// rootfs.diff_ids: a tar stream cut exactly between two entries is
// indistinguishable from a shorter layer.
//
// On error, dir is left partially applied; the caller (the snapshotter)
// must discard it. Errors name the tar entry at fault. Apply does not sync
// what it writes; call syncfs(2) on dir before committing it if needed.
//
// The tar entry of the root itself ("./") is ignored: the root directory
// belongs to the caller.
func Apply(ctx context.Context, dir string, r io.Reader, opts ApplyOptions) (digest.Digest, error) {
	opts = opts.withDefaults()
	root, err := os.OpenFile(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", fmt.Errorf("apply layer: %w", err)
	}
	defer root.Close()

	digester := digest.Canonical.Digester()
	counted := &limitReader{r: r, max: opts.MaxBytes}
	stream := bufio.NewReaderSize(io.TeeReader(counted, digester.Hash()), 128<<10)

	a := &applier{
		ctx:      ctx,
		root:     root,
		opts:     opts,
		dirTimes: map[string][2]unix.Timespec{},
		buf:      make([]byte, copyChunk),
		zero:     make([]byte, copyChunk),
	}
	if !opts.Overlay {
		a.layerPaths = map[string]struct{}{}
	}
	defer a.parents.close()

	tr := tar.NewReader(stream)
	var entries int64
	last := ""
	for {
		if err := ctx.Err(); err != nil {
			return "", fmt.Errorf("apply layer: after entry %q: %w", last, err)
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if last == "" {
				return "", fmt.Errorf("apply layer: reading first header: %w", err)
			}
			return "", fmt.Errorf("apply layer: reading header after entry %q: %w", last, err)
		}
		entries++
		if entries > opts.MaxEntries {
			return "", fmt.Errorf("apply layer: entry %q: %w: more than %d entries (MaxEntries)", hdr.Name, ErrTooLarge, opts.MaxEntries)
		}
		if err := a.entry(hdr, tr); err != nil {
			return "", fmt.Errorf("apply layer: entry %q: %w", hdr.Name, err)
		}
		last = hdr.Name
	}
	// Hash (and bound) the end-of-archive blocks and any padding after
	// them; this also makes gzip verify its trailer.
	if _, err := io.Copy(io.Discard, stream); err != nil {
		return "", fmt.Errorf("apply layer: after the last entry %q: %w", last, err)
	}
	if err := a.setDirTimes(); err != nil {
		return "", fmt.Errorf("apply layer: %w", err)
	}
	return digester.Digest(), nil
}

// limitReader fails once more than max bytes have been read from r.
type limitReader struct {
	r      io.Reader
	n, max int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n > l.max {
		return 0, l.err()
	}
	if room := l.max - l.n + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := l.r.Read(p)
	l.n += int64(n)
	if l.n > l.max {
		return n, l.err()
	}
	return n, err
}

func (l *limitReader) err() error {
	return fmt.Errorf("%w: uncompressed stream longer than %d bytes (MaxBytes)", ErrTooLarge, l.max)
}

// applier holds the state of one Apply call.
type applier struct {
	ctx  context.Context
	root *os.File
	opts ApplyOptions

	// parents caches the handle of the last parent directory resolved.
	parents parentCache
	// layerPaths holds every path this layer adds, with their parents
	// (native mode only): an opaque marker keeps those.
	layerPaths map[string]struct{}
	// dirTimes holds the times of the layer's directories, set once all
	// their children exist.
	dirTimes map[string][2]unix.Timespec
	// written sums the logical sizes of the regular files.
	written int64
	// buf is the copy buffer; zero is a chunk of zeros to compare with.
	buf, zero []byte
}

// cleanName turns a tar entry name (or hardlink target) into a path
// relative to the root: absolute names are taken as relative to it, names
// that climb out of it are refused. The root itself is "".
func cleanName(name string) (string, error) {
	if len(name) > maxNameLen {
		return "", fmt.Errorf("name longer than %d bytes", maxNameLen)
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", errors.New("name contains a NUL byte")
	}
	p := path.Clean(strings.TrimLeft(name, "/"))
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", fmt.Errorf("name %q climbs out of the layer root", name)
	}
	if p == "." {
		return "", nil
	}
	return p, nil
}

func splitName(name string) (parent, base string) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}

// entry applies one tar entry; r reads its content.
func (a *applier) entry(hdr *tar.Header, r io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // PAX defaults for later entries, which the reader applies
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "" {
		return nil // the root belongs to the caller
	}
	parent, base := splitName(name)
	if strings.HasPrefix(base, whiteoutPrefix) {
		return a.whiteout(parent, base)
	}
	if a.layerPaths != nil {
		a.recordLayerPath(name)
	}
	// A later entry of the same name replaces an earlier directory.
	delete(a.dirTimes, name)

	pdir, err := a.parents.get(a.root, parent, true)
	if err != nil {
		return fmt.Errorf("parent directory: %w", err)
	}
	return a.create(pdir, name, base, hdr, r)
}

func (a *applier) recordLayerPath(name string) {
	for name != "" {
		if _, ok := a.layerPaths[name]; ok {
			return
		}
		a.layerPaths[name] = struct{}{}
		name, _ = splitName(name)
	}
}

// setDirTimes sets the times of the layer's directories, now that nothing
// more is created in them.
func (a *applier) setDirTimes() error {
	for name, ts := range a.dirTimes {
		parent, base := splitName(name)
		pdir, err := a.parents.get(a.root, parent, false)
		if err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
				continue // removed by a later entry
			}
			return fmt.Errorf("entry %q: times: %w", name, err)
		}
		var st unix.Stat_t
		if err := unix.Fstatat(fd(pdir), base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue // removed or replaced by a later entry
		}
		if err := unix.UtimesNanoAt(fd(pdir), base, ts[:], unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("entry %q: times: %w", name, err)
		}
	}
	return nil
}
