package server

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
)

// getBlob serves GET and HEAD /v2/<name>/blobs/<digest>, with Range.
func (s *Server) getBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	if s.mirror != nil {
		return s.mirrorBlob(w, r, rt)
	}
	d := digest.Digest(rt.Ref)
	unknown := errorf(http.StatusNotFound, CodeBlobUnknown, "blob unknown to registry", map[string]string{"digest": rt.Ref})
	if !s.store.hasBlob(rt.Name, d) {
		return unknown
	}
	return s.serveFile(w, r, d, "application/octet-stream", unknown)
}

// serveFile sends the content-store file of d: http.ServeContent on an
// *os.File, so ranges and conditional requests are handled and the body
// goes out with sendfile.
func (s *Server) serveFile(w http.ResponseWriter, r *http.Request, d digest.Digest, mediaType string, unknown *regError) error {
	f, err := os.Open(s.store.blobPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return unknown
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Docker-Content-Digest", d.String())
	h.Set("Content-Type", mediaType)
	h.Set("ETag", `"`+d.String()+`"`)
	if rg := r.Header.Get("Range"); rg != "" && !rangeSatisfiable(rg, fi.Size()) {
		h.Set("Content-Range", "bytes */"+strconv.FormatInt(fi.Size(), 10))
		return errorf(http.StatusRequestedRangeNotSatisfiable, CodeRangeInvalid, "requested range not satisfiable", map[string]string{"range": rg})
	}
	http.ServeContent(w, r, "", fi.ModTime(), f)
	return nil
}

// rangeSatisfiable reports whether a Range header is well formed and at
// least one of its ranges overlaps a body of size bytes (RFC 9110 14.1).
func rangeSatisfiable(h string, size int64) bool {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok {
		return false
	}
	any := false
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		first, last, ok := strings.Cut(part, "-")
		if !ok {
			return false
		}
		if first == "" {
			n, err := strconv.ParseInt(last, 10, 64)
			if err != nil || n < 0 {
				return false
			}
			if n > 0 && size > 0 {
				any = true
			}
			continue
		}
		start, err := strconv.ParseInt(first, 10, 64)
		if err != nil || start < 0 {
			return false
		}
		if last != "" {
			end, err := strconv.ParseInt(last, 10, 64)
			if err != nil || end < start {
				return false
			}
		}
		if start < size {
			any = true
		}
	}
	return any
}

// deleteBlob serves DELETE /v2/<name>/blobs/<digest>: the blob leaves the
// repository; garbage collection removes it from storage.
func (s *Server) deleteBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	d := digest.Digest(rt.Ref)
	if err := s.store.unlinkBlob(rt.Name, d); err != nil {
		return notFound(err, errorf(http.StatusNotFound, CodeBlobUnknown, "blob unknown to repository", map[string]string{"digest": rt.Ref}))
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}
