package server

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// A chunked upload: POST, PATCH with Content-Range, status GET, PUT.
func TestChunkedUpload(t *testing.T) {
	tr := newRegistry(t, Config{})
	data := []byte("first chunk|second chunk|last")
	d := digest.FromBytes(data)
	r := tr.do("POST", "/v2/chunks/blobs/uploads/", nil)
	r.expect(t, "POST", http.StatusAccepted)
	loc := r.Header.Get("Location")
	if r.Header.Get("Range") != "0-0" {
		t.Fatalf("POST Range %q", r.Header.Get("Range"))
	}
	r = tr.do("PATCH", loc, data[:12], "Content-Range", "0-11", "Content-Type", "application/octet-stream")
	r.expect(t, "PATCH 1", http.StatusAccepted)
	if r.Header.Get("Range") != "0-11" || r.Header.Get("Location") != loc {
		t.Fatalf("PATCH 1 Range %q Location %q", r.Header.Get("Range"), r.Header.Get("Location"))
	}
	r = tr.do("GET", loc, nil)
	r.expect(t, "upload status", http.StatusNoContent)
	if r.Header.Get("Range") != "0-11" {
		t.Fatalf("status Range %q", r.Header.Get("Range"))
	}
	r = tr.do("PATCH", loc, data[12:25], "Content-Range", "12-24")
	r.expect(t, "PATCH 2", http.StatusAccepted)
	if r.Header.Get("Range") != "0-24" {
		t.Fatalf("PATCH 2 Range %q", r.Header.Get("Range"))
	}
	// The blob is not visible before the final PUT.
	tr.do("HEAD", "/v2/chunks/blobs/"+d.String(), nil).expect(t, "HEAD before PUT", http.StatusNotFound)
	r = tr.do("PUT", loc+"?digest="+d.String(), data[25:], "Content-Range", "25-28")
	r.expect(t, "PUT", http.StatusCreated)
	if r.Header.Get("Location") != "/v2/chunks/blobs/"+d.String() {
		t.Fatalf("PUT Location %q", r.Header.Get("Location"))
	}
	r = tr.do("GET", "/v2/chunks/blobs/"+d.String(), nil)
	if !bytes.Equal(r.Body, data) {
		t.Fatalf("blob %q, want %q", r.Body, data)
	}
	tr.do("GET", loc, nil).expect(t, "status after PUT", http.StatusNotFound, CodeBlobUploadUnknown)
}

// A chunk that does not start where the upload ends gets 416, and the
// upload keeps what it had.
func TestChunkOutOfOrder(t *testing.T) {
	tr := newRegistry(t, Config{})
	loc := tr.do("POST", "/v2/ooo/blobs/uploads/", nil).Header.Get("Location")
	tr.do("PATCH", loc, []byte("abcd"), "Content-Range", "0-3").expect(t, "PATCH 1", http.StatusAccepted)
	r := tr.do("PATCH", loc, []byte("ijkl"), "Content-Range", "8-11")
	r.expect(t, "PATCH out of order", http.StatusRequestedRangeNotSatisfiable)
	if r.Header.Get("Range") != "0-3" {
		t.Fatalf("416 Range %q, want 0-3", r.Header.Get("Range"))
	}
	tr.do("PATCH", loc, []byte("abcd"), "Content-Range", "0-3").expect(t, "PATCH repeated", http.StatusRequestedRangeNotSatisfiable)
	tr.do("PATCH", loc, []byte("efgh"), "Content-Range", "4-7").expect(t, "PATCH 2", http.StatusAccepted)
	d := digest.FromString("abcdefgh")
	tr.do("PUT", loc+"?digest="+d.String(), nil).expect(t, "PUT", http.StatusCreated)
}

// An upload started on one server continues on a new server over the same
// root (a restart).
func TestUploadResumesAfterRestart(t *testing.T) {
	root := t.TempDir()
	tr1 := newRegistry(t, Config{Root: root})
	loc := tr1.do("POST", "/v2/resume/blobs/uploads/", nil).Header.Get("Location")
	tr1.do("PATCH", loc, []byte("before restart;"), "Content-Range", "0-14").expect(t, "PATCH before restart", http.StatusAccepted)
	tr1.hs.Close()
	if err := tr1.srv.Close(); err != nil {
		t.Fatal(err)
	}

	tr2 := newRegistry(t, Config{Root: root})
	r := tr2.do("GET", loc, nil)
	r.expect(t, "status after restart", http.StatusNoContent)
	if r.Header.Get("Range") != "0-14" {
		t.Fatalf("Range after restart %q, want 0-14", r.Header.Get("Range"))
	}
	tr2.do("PATCH", loc, []byte("after"), "Content-Range", "15-19").expect(t, "PATCH after restart", http.StatusAccepted)
	d := digest.FromString("before restart;after")
	tr2.do("PUT", loc+"?digest="+d.String(), nil).expect(t, "PUT after restart", http.StatusCreated)
	if r := tr2.do("GET", "/v2/resume/blobs/"+d.String(), nil); string(r.Body) != "before restart;after" {
		t.Fatalf("resumed blob %q", r.Body)
	}
}

// DELETE cancels an upload; unknown and foreign upload ids are
// BLOB_UPLOAD_UNKNOWN.
func TestUploadCancelAndUnknown(t *testing.T) {
	tr := newRegistry(t, Config{})
	loc := tr.do("POST", "/v2/cancel/blobs/uploads/", nil).Header.Get("Location")
	tr.do("PATCH", loc, []byte("data")).expect(t, "PATCH", http.StatusAccepted)
	foreign := strings.Replace(loc, "/v2/cancel/", "/v2/other/", 1)
	tr.do("GET", foreign, nil).expect(t, "status in another repository", http.StatusNotFound, CodeBlobUploadUnknown)
	tr.do("DELETE", loc, nil).expect(t, "cancel", http.StatusNoContent)
	tr.do("GET", loc, nil).expect(t, "status after cancel", http.StatusNotFound, CodeBlobUploadUnknown)
	tr.do("PATCH", loc, []byte("x")).expect(t, "PATCH after cancel", http.StatusNotFound, CodeBlobUploadUnknown)
	tr.do("PATCH", "/v2/cancel/blobs/uploads/0123456789abcdef0123456789abcdef", []byte("x")).expect(t, "PATCH unknown id", http.StatusNotFound, CodeBlobUploadUnknown)
	tr.do("GET", "/v2/cancel/blobs/uploads/not-an-id", nil).expect(t, "malformed id", http.StatusNotFound, CodeBlobUploadUnknown)
	entries, _ := os.ReadDir(filepath.Join(tr.srv.cfg.Root, "content", "ingest"))
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			t.Fatalf("ingest %s left after cancel", e.Name())
		}
	}
}

// A single POST with ?digest= stores the blob; a wrong digest is refused
// and stores nothing.
func TestSinglePostUpload(t *testing.T) {
	tr := newRegistry(t, Config{})
	data := []byte("one request")
	d := digest.FromBytes(data)
	r := tr.do("POST", "/v2/single/blobs/uploads/?digest="+d.String(), data)
	r.expect(t, "single POST", http.StatusCreated)
	if r.Header.Get("Location") != "/v2/single/blobs/"+d.String() {
		t.Fatalf("Location %q", r.Header.Get("Location"))
	}
	tr.do("HEAD", "/v2/single/blobs/"+d.String(), nil).expect(t, "HEAD", http.StatusOK)
	// The same content into another repository: already stored, linked
	// after the body is checked.
	tr.do("POST", "/v2/single2/blobs/uploads/?digest="+d.String(), data).expect(t, "single POST of a stored blob", http.StatusCreated)
	tr.do("POST", "/v2/single3/blobs/uploads/?digest="+d.String(), []byte("not it")).expect(t, "stored blob, wrong body", http.StatusBadRequest, CodeDigestInvalid)
	tr.do("HEAD", "/v2/single3/blobs/"+d.String(), nil).expect(t, "HEAD after refused link", http.StatusNotFound)

	wrong := digest.FromString("something else")
	tr.do("POST", "/v2/single/blobs/uploads/?digest="+wrong.String(), data).expect(t, "wrong digest", http.StatusBadRequest, CodeDigestInvalid)
	tr.do("HEAD", "/v2/single/blobs/"+wrong.String(), nil).expect(t, "HEAD wrong digest", http.StatusNotFound)
	if _, err := tr.srv.store.content.Info(digest.FromBytes(data[:0])); err == nil {
		t.Fatal("an empty blob appeared")
	}
	tr.do("POST", "/v2/single/blobs/uploads/?digest=sha256:xyz", data).expect(t, "malformed digest", http.StatusBadRequest, CodeDigestInvalid)
}

// A PUT whose digest does not match the uploaded bytes is DIGEST_INVALID
// and leaves no blob.
func TestUploadDigestMismatch(t *testing.T) {
	tr := newRegistry(t, Config{})
	loc := tr.do("POST", "/v2/mm/blobs/uploads/", nil).Header.Get("Location")
	wrong := digest.FromString("other")
	tr.do("PUT", loc+"?digest="+wrong.String(), []byte("content")).expect(t, "PUT wrong digest", http.StatusBadRequest, CodeDigestInvalid)
	if _, err := tr.srv.store.content.Info(digest.FromString("content")); err == nil {
		t.Fatal("content of a refused upload was committed")
	}
	tr.do("PUT", loc, []byte("content")).expect(t, "PUT without digest", http.StatusBadRequest, CodeDigestInvalid)
}

// sha512 digests are accepted for chunked uploads too.
func TestUploadSHA512(t *testing.T) {
	tr := newRegistry(t, Config{})
	data := []byte("sha512 content")
	d := digest.SHA512.FromBytes(data)
	loc := tr.do("POST", "/v2/s512/blobs/uploads/", nil).Header.Get("Location")
	tr.do("PATCH", loc, data).expect(t, "PATCH", http.StatusAccepted)
	tr.do("PUT", loc+"?digest="+d.String(), nil).expect(t, "PUT sha512", http.StatusCreated)
	if r := tr.do("GET", "/v2/s512/blobs/"+d.String(), nil); !bytes.Equal(r.Body, data) {
		t.Fatalf("sha512 blob %q", r.Body)
	}
}

// rawRequest sends a request over a raw connection that declares
// Content-Length n but sends only body, then closes its write side.
func rawRequest(t *testing.T, addr, method, path string, n int, body []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nContent-Type: application/octet-stream\r\n\r\n", method, path, addr, n)
	c.Write(body)
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	io.Copy(io.Discard, bufio.NewReader(c))
}

// A truncated body (the client goes away mid-upload) leaves no blob.
func TestTruncatedBody(t *testing.T) {
	tr := newRegistry(t, Config{})
	data := bytes.Repeat([]byte("x"), 4096)
	d := digest.FromBytes(data)
	addr := strings.TrimPrefix(tr.url, "http://")
	rawRequest(t, addr, "POST", "/v2/trunc/blobs/uploads/?digest="+d.String(), len(data), data[:1000])
	tr.do("HEAD", "/v2/trunc/blobs/"+d.String(), nil).expect(t, "HEAD after truncated single POST", http.StatusNotFound)

	loc := tr.do("POST", "/v2/trunc/blobs/uploads/", nil).Header.Get("Location")
	rawRequest(t, addr, "PUT", loc+"?digest="+d.String(), len(data), data[:1000])
	tr.do("HEAD", "/v2/trunc/blobs/"+d.String(), nil).expect(t, "HEAD after truncated PUT", http.StatusNotFound)
	if _, err := tr.srv.store.content.Info(d); err == nil {
		t.Fatal("a truncated upload became a blob")
	}
	// The session keeps what arrived and can be completed.
	r := tr.do("GET", loc, nil)
	r.expect(t, "status after truncated PUT", http.StatusNoContent)
	if r.Header.Get("Range") != "0-999" {
		t.Fatalf("Range after truncated PUT %q, want 0-999", r.Header.Get("Range"))
	}
	tr.do("PUT", loc+"?digest="+d.String(), data[1000:], "Content-Range", "1000-4095").expect(t, "completing PUT", http.StatusCreated)
}

// A client that stops sending its body is cut off after BodyIdleTimeout.
func TestStalledBody(t *testing.T) {
	s, err := New(Config{Root: t.TempDir(), BodyIdleTimeout: 200 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(s)
	hs.Config = NewHTTPServer(s)
	hs.Start()
	t.Cleanup(func() { hs.Close(); s.Close() })
	tr := &testRegistry{t: t, srv: s, hs: hs, url: hs.URL}
	loc := tr.do("POST", "/v2/slow/blobs/uploads/", nil).Header.Get("Location")
	c, err := net.Dial("tcp", strings.TrimPrefix(hs.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc", loc)
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	if !strings.Contains(line, " 400 ") {
		t.Fatalf("stalled body answered %q, want 400", line)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("stalled body cut off after %v", el)
	}
}

// An upload that sees no request for UploadIdleRelease is released (its
// lock and file closed) and continues on its next request.
func TestUploadIdleRelease(t *testing.T) {
	tr := newRegistry(t, Config{UploadIdleRelease: 50 * time.Millisecond})
	loc := tr.do("POST", "/v2/idle/blobs/uploads/", nil).Header.Get("Location")
	tr.do("PATCH", loc, []byte("held ")).expect(t, "PATCH", http.StatusAccepted)
	locked := func() bool {
		st, err := tr.srv.store.content.ListIngests()
		if err != nil || len(st) != 1 {
			t.Fatalf("ingests %+v: %v", st, err)
		}
		return st[0].Locked
	}
	if !locked() {
		t.Fatal("an active upload is not locked")
	}
	deadline := time.Now().Add(5 * time.Second)
	for locked() {
		if time.Now().After(deadline) {
			t.Fatal("idle upload still held after 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	tr.do("PATCH", loc, []byte("then released"), "Content-Range", "5-17").expect(t, "PATCH after release", http.StatusAccepted)
	d := digest.FromString("held then released")
	tr.do("PUT", loc+"?digest="+d.String(), nil).expect(t, "PUT after release", http.StatusCreated)
}

// A chunk shorter than its Content-Range is BLOB_UPLOAD_INVALID; the
// upload keeps the bytes that came and tells where it stands.
func TestChunkShorterThanRange(t *testing.T) {
	tr := newRegistry(t, Config{})
	loc := tr.do("POST", "/v2/short/blobs/uploads/", nil).Header.Get("Location")
	req, _ := http.NewRequest("PATCH", tr.url+loc, struct{ io.Reader }{strings.NewReader("abc")}) // no Content-Length
	req.Header.Set("Content-Range", "0-9")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("short chunk: %d", resp.StatusCode)
	}
	r := tr.do("GET", loc, nil)
	if r.Header.Get("Range") != "0-2" {
		t.Fatalf("Range after a short chunk %q", r.Header.Get("Range"))
	}
	tr.do("PATCH", loc, []byte("defg"), "Content-Range", "3-5").expect(t, "Content-Length beyond Content-Range", http.StatusBadRequest, CodeBlobUploadInvalid)
}
