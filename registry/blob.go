package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// OpenBlob returns the content of blob desc from byte offset on. If the
// download breaks before desc.Size bytes arrived, it continues with a
// Range request from where it broke (up to the client's retry count, the
// count starting afresh whenever bytes arrive), so the reader delivers
// each byte once, in order. It does not verify the digest: the caller
// hashes what it stores. It fails if the registry sends more than
// desc.Size bytes.
func (r *Repository) OpenBlob(ctx context.Context, desc ocispec.Descriptor, offset int64) (io.ReadCloser, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("blob %q: %w", desc.Digest, err)
	}
	b := &blobReader{r: r, ctx: ctx, desc: desc, off: offset}
	var errs []error
	for i, ep := range r.endpoints {
		b.ep = ep
		err := b.open()
		if err == nil {
			b.eps = r.endpoints[i:]
			return b, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		errs = append(errs, err)
		if !ep.Mirror {
			break
		}
	}
	return nil, fmt.Errorf("blob %s: %w", desc.Digest, errors.Join(errs...))
}

type blobReader struct {
	r     *Repository
	ctx   context.Context
	desc  ocispec.Descriptor
	ep    Endpoint
	eps   []Endpoint
	body  io.ReadCloser
	off   int64
	fails int // consecutive failed resumes
	total int // resumes in all
}

// maxResumes bounds the resumes of one download whatever progress each
// makes, so that a server that cuts every answer short ends the pull.
const maxResumes = 100

// open requests the blob from b.off on.
func (b *blobReader) open() error {
	req := &request{method: http.MethodGet, path: "blobs/" + b.desc.Digest.String()}
	if b.off > 0 {
		req.hdr = http.Header{"Range": {"bytes=" + strconv.FormatInt(b.off, 10) + "-"}}
	}
	resp, err := b.r.do(b.ctx, b.ep, req)
	if err != nil {
		return err
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		if b.off > 0 { // no Range support: skip what we have
			if _, err := io.CopyN(io.Discard, resp.Body, b.off); err != nil {
				resp.Body.Close()
				return fmt.Errorf("skip %d bytes already read: %w", b.off, err)
			}
		}
	case resp.StatusCode == http.StatusPartialContent && b.off > 0:
		start, ok := rangeStart(resp.Header.Get("Content-Range"))
		if !ok || start != b.off {
			resp.Body.Close()
			return fmt.Errorf("asked for bytes from %d, the registry sent Content-Range %q", b.off, resp.Header.Get("Content-Range"))
		}
	default:
		return newError(resp)
	}
	b.body = resp.Body
	return nil
}

func rangeStart(cr string) (int64, bool) {
	rest, ok := strings.CutPrefix(cr, "bytes ")
	if !ok {
		return 0, false
	}
	s, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

func (b *blobReader) Read(p []byte) (int, error) {
	for {
		if b.body == nil {
			return 0, fmt.Errorf("blob %s: read after close", b.desc.Digest)
		}
		if b.desc.Size > 0 && b.off >= b.desc.Size {
			// All the bytes arrived; anything more is an error.
			var one [1]byte
			if n, _ := b.body.Read(one[:]); n > 0 {
				return 0, fmt.Errorf("blob %s: the registry sent more than its %d bytes", b.desc.Digest, b.desc.Size)
			}
			return 0, io.EOF
		}
		if b.desc.Size > 0 && int64(len(p)) > b.desc.Size-b.off {
			p = p[:b.desc.Size-b.off]
		}
		n, err := b.body.Read(p)
		b.off += int64(n)
		if n > 0 {
			b.fails = 0
		}
		if err == nil || (err == io.EOF && (b.desc.Size <= 0 || b.off == b.desc.Size)) {
			if n > 0 || err == nil {
				return n, nil
			}
			return 0, io.EOF
		}
		if n > 0 {
			return n, nil // report the error on the next read
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		if rerr := b.resume(err); rerr != nil {
			return 0, rerr
		}
	}
}

// resume reopens a broken download at b.off, waiting as for a retry.
func (b *blobReader) resume(cause error) error {
	b.body.Close()
	b.body = nil
	c := b.r.c
	for {
		if b.ctx.Err() != nil {
			return b.ctx.Err()
		}
		if b.fails >= c.opts.Retries || b.total >= maxResumes {
			return fmt.Errorf("blob %s: download broke at byte %d of %d: %w", b.desc.Digest, b.off, b.desc.Size, cause)
		}
		if err := c.wait(b.ctx, "resume blob "+b.desc.Digest.Encoded()[:12], b.fails, 0, cause); err != nil {
			return err
		}
		b.fails++
		b.total++
		err := b.open()
		if err == nil {
			return nil
		}
		cause = err
	}
}

func (b *blobReader) Close() error {
	if b.body == nil {
		return nil
	}
	err := b.body.Close()
	b.body = nil
	return err
}

// BlobExists asks the registry whether it has blob d in this repository.
func (r *Repository) BlobExists(ctx context.Context, d digest.Digest) (bool, error) {
	resp, err := r.do(ctx, r.primary(), &request{method: http.MethodHead, path: "blobs/" + d.String(), push: true})
	if err != nil {
		return false, err
	}
	switch resp.StatusCode {
	case http.StatusOK:
		drain(resp)
		return true, nil
	case http.StatusNotFound:
		drain(resp)
		return false, nil
	}
	return false, newError(resp)
}

// PushResult says how a blob reached the registry.
type PushResult int

const (
	// Uploaded: the bytes were sent.
	Uploaded PushResult = iota
	// Exists: the repository had the blob already.
	Exists
	// Mounted: the registry linked it from another repository.
	Mounted
)

// PushBlob puts blob desc into the repository unless it is there: a HEAD
// first; then, if from names another repository of the same registry
// that has it, a cross-repository mount; else an upload of the bytes
// open returns (from an offset, so a broken chunked upload resumes where
// the registry says it stands). Blobs larger than the chunk size go in
// chunks, smaller ones in one PUT. progress, when set, is told the bytes
// sent so far.
func (r *Repository) PushBlob(ctx context.Context, desc ocispec.Descriptor, from string, open func(offset int64) (io.ReadCloser, error), progress func(int64)) (PushResult, error) {
	ok, err := r.BlobExists(ctx, desc.Digest)
	if err != nil {
		return 0, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	if ok {
		return Exists, nil
	}
	q := url.Values{}
	if from != "" && from != r.primary().Path {
		q.Set("mount", desc.Digest.String())
		q.Set("from", from)
	}
	resp, err := r.do(ctx, r.primary(), &request{method: http.MethodPost, path: "blobs/uploads/", query: q, push: true, from: q.Get("from"),
		body: func() (io.ReadCloser, int64, error) { return http.NoBody, 0, nil }})
	if err != nil {
		return 0, fmt.Errorf("blob %s: start upload: %w", desc.Digest, err)
	}
	switch resp.StatusCode {
	case http.StatusCreated:
		drain(resp)
		return Mounted, nil
	case http.StatusAccepted:
	default:
		return 0, fmt.Errorf("blob %s: start upload: %w", desc.Digest, newError(resp))
	}
	drain(resp)
	loc, err := location(resp)
	if err != nil {
		return 0, fmt.Errorf("blob %s: start upload: %w", desc.Digest, err)
	}
	if r.c.opts.ChunkSize < 0 || desc.Size <= r.c.opts.ChunkSize {
		err = r.putMonolithic(ctx, loc, desc, open, progress)
	} else {
		err = r.putChunked(ctx, loc, desc, open, progress)
	}
	if err != nil {
		return 0, fmt.Errorf("blob %s: %w", desc.Digest, err)
	}
	return Uploaded, nil
}

// location resolves the Location header of an upload response.
func location(resp *http.Response) (*url.URL, error) {
	l := resp.Header.Get("Location")
	if l == "" {
		return nil, fmt.Errorf("%s %s: the registry sent no Location", resp.Request.Method, redact(resp.Request.URL.String()))
	}
	u, err := resp.Request.URL.Parse(l)
	if err != nil {
		return nil, fmt.Errorf("bad upload Location %q: %w", l, err)
	}
	return u, nil
}

func withDigest(loc *url.URL, d digest.Digest) *url.URL {
	u := *loc
	q := u.Query()
	q.Set("digest", d.String())
	u.RawQuery = q.Encode()
	return &u
}

// counting reports the bytes read through it.
type counting struct {
	io.ReadCloser
	base int64
	n    int64
	fn   func(int64)
}

func (c *counting) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	if c.fn != nil && n > 0 {
		c.fn(c.base + c.n)
	}
	return n, err
}

func (r *Repository) putMonolithic(ctx context.Context, loc *url.URL, desc ocispec.Descriptor, open func(int64) (io.ReadCloser, error), progress func(int64)) error {
	resp, err := r.do(ctx, r.primary(), &request{method: http.MethodPut, url: withDigest(loc, desc.Digest), push: true,
		hdr: http.Header{"Content-Type": {"application/octet-stream"}},
		body: func() (io.ReadCloser, int64, error) {
			rc, err := open(0)
			if err != nil {
				return nil, 0, err
			}
			return &counting{ReadCloser: rc, fn: progress}, desc.Size, nil
		}})
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("upload: %w", newError(resp))
	}
	drain(resp)
	return nil
}

// putChunked sends the blob in PATCH requests of the chunk size, each
// acknowledged with the upload's new Location, then the closing PUT. A
// failed chunk asks the registry where the upload stands (GET on the
// location) and goes on from there.
func (r *Repository) putChunked(ctx context.Context, loc *url.URL, desc ocispec.Descriptor, open func(int64) (io.ReadCloser, error), progress func(int64)) error {
	chunk := r.c.opts.ChunkSize
	var off int64
	fails := 0
	for off < desc.Size {
		n := min(chunk, desc.Size-off)
		start := off
		resp, err := r.do(ctx, r.primary(), &request{method: http.MethodPatch, url: loc, push: true, noRetry: true,
			hdr: http.Header{"Content-Type": {"application/octet-stream"},
				"Content-Range": {fmt.Sprintf("%d-%d", start, start+n-1)}},
			body: func() (io.ReadCloser, int64, error) {
				rc, err := open(start)
				if err != nil {
					return nil, 0, err
				}
				return struct {
					io.Reader
					io.Closer
				}{io.LimitReader(&counting{ReadCloser: rc, base: start, fn: progress}, n), rc}, n, nil
			}})
		if err == nil && resp.StatusCode == http.StatusAccepted {
			drain(resp)
			if loc, err = location(resp); err != nil {
				return err
			}
			off += n
			fails = 0
			continue
		}
		if err == nil {
			err = newError(resp)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if fails >= r.c.opts.Retries {
			return fmt.Errorf("upload chunk at %d: %w", start, err)
		}
		if werr := r.c.wait(ctx, "upload chunk", fails, 0, err); werr != nil {
			return werr
		}
		fails++
		if off, loc, err = r.uploadStatus(ctx, loc); err != nil {
			return fmt.Errorf("upload chunk at %d failed, then: %w", start, err)
		}
	}
	resp, err := r.do(ctx, r.primary(), &request{method: http.MethodPut, url: withDigest(loc, desc.Digest), push: true,
		body: func() (io.ReadCloser, int64, error) { return http.NoBody, 0, nil }})
	if err != nil {
		return fmt.Errorf("finish upload: %w", err)
	}
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("finish upload: %w", newError(resp))
	}
	drain(resp)
	return nil
}

// uploadStatus asks where an upload stands: the offset after the last
// byte the registry holds, and the location to go on with.
func (r *Repository) uploadStatus(ctx context.Context, loc *url.URL) (int64, *url.URL, error) {
	resp, err := r.do(ctx, r.primary(), &request{method: http.MethodGet, url: loc, push: true})
	if err != nil {
		return 0, nil, fmt.Errorf("upload status: %w", err)
	}
	if resp.StatusCode != http.StatusNoContent {
		return 0, nil, fmt.Errorf("upload status: %w", newError(resp))
	}
	drain(resp)
	next := loc
	if resp.Header.Get("Location") != "" {
		if next, err = location(resp); err != nil {
			return 0, nil, err
		}
	}
	rng := resp.Header.Get("Range")
	_, end, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, next, nil
	}
	n, err := strconv.ParseInt(end, 10, 64)
	if err != nil {
		return 0, nil, fmt.Errorf("upload status: bad Range %q", rng)
	}
	return n + 1, next, nil
}
