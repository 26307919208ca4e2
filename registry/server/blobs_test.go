package server

import (
	"bytes"
	"net/http"
	"strconv"
	"testing"

	"github.com/opencontainers/go-digest"
)

// GET /v2/ answers 200 with the API version header.
func TestBase(t *testing.T) {
	tr := newRegistry(t, Config{})
	r := tr.do("GET", "/v2/", nil)
	r.expect(t, "GET /v2/", http.StatusOK)
	if v := r.Header.Get("Docker-Distribution-API-Version"); v != "registry/2.0" {
		t.Fatalf("Docker-Distribution-API-Version %q", v)
	}
}

// A blob pushed with POST and PUT is pulled back with HEAD and GET.
func TestBlobPushPull(t *testing.T) {
	tr := newRegistry(t, Config{})
	data := bytes.Repeat([]byte("berth "), 1000)
	d := tr.pushBlob("library/hello", data)

	r := tr.do("HEAD", "/v2/library/hello/blobs/"+d.String(), nil)
	r.expect(t, "HEAD blob", http.StatusOK)
	if r.Header.Get("Content-Length") != strconv.Itoa(len(data)) || r.Header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("HEAD blob headers: %v", r.Header)
	}
	if len(r.Body) != 0 {
		t.Fatalf("HEAD returned a body of %d bytes", len(r.Body))
	}
	r = tr.do("GET", "/v2/library/hello/blobs/"+d.String(), nil)
	r.expect(t, "GET blob", http.StatusOK)
	if !bytes.Equal(r.Body, data) {
		t.Fatalf("GET blob returned %d bytes, want the %d pushed", len(r.Body), len(data))
	}
	// Another repository does not hold it.
	tr.do("GET", "/v2/other/blobs/"+d.String(), nil).expect(t, "GET blob of another repository", http.StatusNotFound, CodeBlobUnknown)
	tr.do("GET", "/v2/library/hello/blobs/"+digest.FromString("nothing").String(), nil).expect(t, "GET unknown blob", http.StatusNotFound, CodeBlobUnknown)
}

// Range requests get 206 with the bytes asked for, and 416 when the range
// lies beyond the blob.
func TestBlobRange(t *testing.T) {
	tr := newRegistry(t, Config{})
	data := []byte("0123456789")
	d := tr.pushBlob("r", data)
	r := tr.do("GET", "/v2/r/blobs/"+d.String(), nil, "Range", "bytes=2-5")
	r.expect(t, "GET range", http.StatusPartialContent)
	if string(r.Body) != "2345" || r.Header.Get("Content-Range") != "bytes 2-5/10" {
		t.Fatalf("range body %q Content-Range %q", r.Body, r.Header.Get("Content-Range"))
	}
	r = tr.do("GET", "/v2/r/blobs/"+d.String(), nil, "Range", "bytes=7-")
	r.expect(t, "GET open range", http.StatusPartialContent)
	if string(r.Body) != "789" {
		t.Fatalf("open range body %q", r.Body)
	}
	r = tr.do("GET", "/v2/r/blobs/"+d.String(), nil, "Range", "bytes=10-20")
	r.expect(t, "GET range past the end", http.StatusRequestedRangeNotSatisfiable, CodeRangeInvalid)
	if r.Header.Get("Content-Range") != "bytes */10" {
		t.Fatalf("416 Content-Range %q", r.Header.Get("Content-Range"))
	}
	tr.do("GET", "/v2/r/blobs/"+d.String(), nil, "Range", "bytes=x-y").expect(t, "malformed range", http.StatusRequestedRangeNotSatisfiable, CodeRangeInvalid)
}

// DELETE removes a blob from its repository.
func TestBlobDelete(t *testing.T) {
	tr := newRegistry(t, Config{})
	d := tr.pushBlob("del", []byte("to be deleted"))
	tr.do("DELETE", "/v2/del/blobs/"+d.String(), nil).expect(t, "DELETE blob", http.StatusAccepted)
	tr.do("HEAD", "/v2/del/blobs/"+d.String(), nil).expect(t, "HEAD deleted blob", http.StatusNotFound)
	tr.do("DELETE", "/v2/del/blobs/"+d.String(), nil).expect(t, "DELETE deleted blob", http.StatusNotFound, CodeBlobUnknown)
}

// Cross-repository mount gives 201 when the source holds the blob, and
// falls back to an upload session (202) when it does not.
func TestMount(t *testing.T) {
	tr := newRegistry(t, Config{})
	d := tr.pushBlob("src", []byte("shared layer"))
	r := tr.do("POST", "/v2/dst/blobs/uploads/?mount="+d.String()+"&from=src", nil)
	r.expect(t, "mount", http.StatusCreated)
	if r.Header.Get("Location") != "/v2/dst/blobs/"+d.String() || r.Header.Get("Docker-Content-Digest") != d.String() {
		t.Fatalf("mount headers %v", r.Header)
	}
	tr.do("GET", "/v2/dst/blobs/"+d.String(), nil).expect(t, "GET mounted blob", http.StatusOK)

	r = tr.do("POST", "/v2/dst2/blobs/uploads/?mount="+d.String()+"&from=nosuchrepo", nil)
	r.expect(t, "mount from a repository without the blob", http.StatusAccepted)
	loc := r.Header.Get("Location")
	if loc == "" || r.Header.Get("Docker-Upload-UUID") == "" {
		t.Fatalf("fallback upload without Location/Docker-Upload-UUID: %v", r.Header)
	}
	tr.do("PUT", loc+"?digest="+d.String(), []byte("shared layer")).expect(t, "upload after fallback", http.StatusCreated)
	tr.do("HEAD", "/v2/dst2/blobs/"+d.String(), nil).expect(t, "HEAD after fallback upload", http.StatusOK)
}

// A blob larger than the upload copy's buffer round-trips intact, in
// one PUT and in chunks.
func TestLargeBlob(t *testing.T) {
	tr := newRegistry(t, Config{})
	data := make([]byte, 5*copyBufSize+12345)
	for i := range data {
		data[i] = byte(i * 7 / 3)
	}
	d := tr.pushBlob("large", data)
	if r := tr.do("GET", "/v2/large/blobs/"+d.String(), nil); !bytes.Equal(r.Body, data) {
		t.Fatalf("large blob: got %d bytes back, want the %d pushed", len(r.Body), len(data))
	}
	loc := tr.do("POST", "/v2/large2/blobs/uploads/", nil).Header.Get("Location")
	half := len(data) / 2
	tr.do("PATCH", loc, data[:half], "Content-Range", "0-"+strconv.Itoa(half-1)).expect(t, "PATCH half", http.StatusAccepted)
	tr.do("PUT", loc+"?digest="+d.String(), data[half:], "Content-Range", strconv.Itoa(half)+"-"+strconv.Itoa(len(data)-1)).expect(t, "PUT rest", http.StatusCreated)
	if r := tr.do("GET", "/v2/large2/blobs/"+d.String(), nil); !bytes.Equal(r.Body, data) {
		t.Fatal("chunked large blob differs")
	}
}

// The empty blob (the empty-JSON config's neighbour) is pushed and pulled
// like any other, by a single POST and by a session.
func TestEmptyBlob(t *testing.T) {
	tr := newRegistry(t, Config{})
	d := digest.FromBytes(nil)
	tr.do("POST", "/v2/empty/blobs/uploads/?digest="+d.String(), []byte{}).expect(t, "single POST of the empty blob", http.StatusCreated)
	loc := tr.do("POST", "/v2/empty2/blobs/uploads/", nil).Header.Get("Location")
	tr.do("PUT", loc+"?digest="+d.String(), nil).expect(t, "PUT of the empty blob", http.StatusCreated)
	for _, repo := range []string{"empty", "empty2"} {
		r := tr.do("GET", "/v2/"+repo+"/blobs/"+d.String(), nil)
		r.expect(t, "GET empty blob", http.StatusOK)
		if len(r.Body) != 0 || r.Header.Get("Content-Length") != "0" {
			t.Fatalf("empty blob: %d bytes, Content-Length %q", len(r.Body), r.Header.Get("Content-Length"))
		}
	}
}
