package engine

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/archive"
	"github.com/berth-project/berth/metadata"
)

// Limits of an image archive read by Load.
const (
	maxArchiveEntries = 1 << 16
	// Files up to smallFileMax bytes (JSON documents, in practice) are
	// kept in memory, up to smallFilesMax bytes in all; larger files go
	// to the content store as they are read.
	smallFileMax  = 1 << 20
	smallFilesMax = 64 << 20
	maxLinkDepth  = 16
)

// spool is what Load read from an archive stream: the archive is read once,
// in order, and every file is kept, small ones in memory, large ones as
// blobs of the content store, so that manifest.json (which "docker save"
// writes last) can be read after the layers it names.
type spool struct {
	small map[string][]byte
	blobs map[string]ocispec.Descriptor // committed blobs (digest, size)
	links map[string]string             // symlinks and hardlinks: name → target name
}

// file is one file of the spool: its bytes, or the blob holding them.
type file struct {
	name  string
	data  []byte
	blob  ocispec.Descriptor
	small bool
}

// spoolArchive reads the archive (tar, possibly gzip or zstd compressed)
// from r. Every entry name must be a clean relative path; only
// directories, regular files and links are accepted. A file named
// blobs/<alg>/<hex> is verified against that digest as it is written; a
// blob already in the store is not written again.
func (l *loader) spoolArchive(r io.Reader) (*spool, error) {
	dec, err := archive.DecompressStream(r)
	if err != nil {
		return nil, fmt.Errorf("read archive: %w", err)
	}
	defer dec.Close()
	sp := &spool{small: map[string][]byte{}, blobs: map[string]ocispec.Descriptor{}, links: map[string]string{}}
	tr := tar.NewReader(&ctxReader{l.ctx, dec})
	seen := map[string]bool{}
	var smallTotal int64
	last := ""
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if n == 0 {
				return nil, errors.New("read archive: empty archive")
			}
			break
		}
		if err != nil {
			if last == "" {
				return nil, fmt.Errorf("read archive: %w", err)
			}
			return nil, fmt.Errorf("read archive: after entry %q: %w", last, err)
		}
		if n >= maxArchiveEntries {
			return nil, fmt.Errorf("read archive: more than %d entries", maxArchiveEntries)
		}
		last = hdr.Name
		name, err := archiveName(hdr.Name)
		if err != nil {
			return nil, fmt.Errorf("read archive: entry %q: %w", hdr.Name, err)
		}
		if name == "" {
			continue // "./"
		}
		if hdr.Typeflag != tar.TypeDir {
			if seen[name] {
				return nil, fmt.Errorf("read archive: entry %q appears twice", hdr.Name)
			}
			seen[name] = true
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
		case tar.TypeSymlink, tar.TypeLink:
			target := hdr.Linkname
			if hdr.Typeflag == tar.TypeSymlink && !path.IsAbs(target) {
				target = path.Join(path.Dir(name), target)
			}
			t, err := archiveName(target)
			if err != nil || t == "" {
				return nil, fmt.Errorf("read archive: link %q to %q: target is outside the archive", hdr.Name, hdr.Linkname)
			}
			sp.links[name] = t
		case tar.TypeReg:
			if d, ok := blobPathDigest(name); ok {
				desc, err := l.ingest(tr, d, hdr.Size)
				if err != nil {
					return nil, fmt.Errorf("read archive: entry %q: %w", hdr.Name, err)
				}
				sp.blobs[name] = desc
				continue
			}
			if hdr.Size <= smallFileMax && smallTotal+hdr.Size <= smallFilesMax {
				data, err := io.ReadAll(tr)
				if err != nil {
					return nil, fmt.Errorf("read archive: entry %q: %w", hdr.Name, err)
				}
				smallTotal += int64(len(data))
				sp.small[name] = data
				continue
			}
			desc, err := l.ingest(tr, "", hdr.Size)
			if err != nil {
				return nil, fmt.Errorf("read archive: entry %q: %w", hdr.Name, err)
			}
			sp.blobs[name] = desc
		default:
			return nil, fmt.Errorf("read archive: entry %q: unexpected type %q in an image archive", hdr.Name, hdr.Typeflag)
		}
	}
	// Padding after the end-of-archive blocks; this also makes gzip
	// check its trailer.
	if _, err := io.Copy(io.Discard, dec); err != nil {
		return nil, fmt.Errorf("read archive: after the last entry %q: %w", last, err)
	}
	return sp, nil
}

// archiveName cleans the name of an archive entry: relative, without
// "..", NUL or a leading "./". The root ("./") is "".
func archiveName(name string) (string, error) {
	if strings.IndexByte(name, 0) >= 0 {
		return "", errors.New("name contains a NUL byte")
	}
	if path.IsAbs(name) {
		return "", errors.New("absolute name")
	}
	c := path.Clean(name)
	if c == "." {
		return "", nil
	}
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", errors.New("name leaves the archive")
	}
	return c, nil
}

// blobPathDigest returns the digest a name of the form blobs/<alg>/<hex>
// (an OCI layout's, or a newer docker save's) stands for.
func blobPathDigest(name string) (digest.Digest, bool) {
	rest, ok := strings.CutPrefix(name, "blobs/")
	if !ok {
		return "", false
	}
	alg, enc, ok := strings.Cut(rest, "/")
	if !ok {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(alg), enc)
	if d.Validate() != nil {
		return "", false
	}
	return d, true
}

// lookup returns the file name of the archive, following links.
func (sp *spool) lookup(name string) (file, error) {
	orig := name
	for i := 0; ; i++ {
		if data, ok := sp.small[name]; ok {
			return file{name: name, data: data, small: true}, nil
		}
		if desc, ok := sp.blobs[name]; ok {
			return file{name: name, blob: desc}, nil
		}
		t, ok := sp.links[name]
		if !ok {
			return file{}, fmt.Errorf("file %q is missing from the archive", orig)
		}
		if i >= maxLinkDepth {
			return file{}, fmt.Errorf("file %q: too many levels of links", orig)
		}
		name = t
	}
}

// ingest writes the blob read from r (of size bytes, with digest d if
// known) to the content store under the load's lease and returns its
// descriptor.
func (l *loader) ingest(r io.Reader, d digest.Digest, size int64) (ocispec.Descriptor, error) {
	l.n++
	ref := l.lease + "-" + strconv.Itoa(l.n)
	if d != "" {
		// Known digest: lease it before looking (metadata's protocol);
		// an existing blob is not written again.
		if err := l.s.db.AddLeaseResource(l.ctx, l.lease, metadata.ResourceContent, d.String()); err != nil {
			return ocispec.Descriptor{}, err
		}
		if info, err := l.s.cs.Info(d); err == nil && info.Size == size {
			return ocispec.Descriptor{Digest: d, Size: size}, nil
		}
		if err := l.s.db.AddLeaseResource(l.ctx, l.lease, metadata.ResourceIngest, ref); err != nil {
			return ocispec.Descriptor{}, err
		}
		if err := l.s.cs.Ingest(l.ctx, ref, r, d, size); err != nil {
			l.s.cs.Abort(ref)
			return ocispec.Descriptor{}, err
		}
		return ocispec.Descriptor{Digest: d, Size: size}, nil
	}
	if err := l.s.db.AddLeaseResource(l.ctx, l.lease, metadata.ResourceIngest, ref); err != nil {
		return ocispec.Descriptor{}, err
	}
	w, err := l.s.cs.Writer(ref, "", size)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Close()
		l.s.cs.Abort(ref)
		return ocispec.Descriptor{}, err
	}
	desc := ocispec.Descriptor{Digest: w.Digest(), Size: w.Offset()}
	if err := l.s.db.AddLeaseResource(l.ctx, l.lease, metadata.ResourceContent, desc.Digest.String()); err != nil {
		w.Close()
		l.s.cs.Abort(ref)
		return ocispec.Descriptor{}, err
	}
	if err := w.Commit(); err != nil {
		w.Close()
		l.s.cs.Abort(ref)
		return ocispec.Descriptor{}, err
	}
	return desc, nil
}

// ingestBytes commits data as a blob (it must have digest d if d is
// given) under the load's lease.
func (l *loader) ingestBytes(data []byte, d digest.Digest) (ocispec.Descriptor, error) {
	if d == "" {
		d = digest.FromBytes(data)
	}
	return l.ingest(bytes.NewReader(data), d, int64(len(data)))
}

// read returns the bytes of f, at most limit of them.
func (l *loader) read(f file, limit int64) ([]byte, error) {
	if f.small {
		if int64(len(f.data)) > limit {
			return nil, fmt.Errorf("%s: %d bytes, more than the limit of %d", f.name, len(f.data), limit)
		}
		return f.data, nil
	}
	if f.blob.Size > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the limit of %d", f.name, f.blob.Size, limit)
	}
	return l.s.readBlob(f.blob, limit)
}

// blob returns the descriptor of f as a blob of the content store,
// committing it first if it is held in memory.
func (l *loader) blob(f file) (ocispec.Descriptor, error) {
	if !f.small {
		return f.blob, nil
	}
	return l.ingestBytes(f.data, "")
}
