package server

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// testRegistry is a Server behind an httptest server on 127.0.0.1.
type testRegistry struct {
	t   *testing.T
	srv *Server
	hs  *httptest.Server
	url string
}

// newRegistry starts a server on cfg (Root defaults to a temporary
// directory); both are closed in t.Cleanup.
func newRegistry(t *testing.T, cfg Config) *testRegistry {
	t.Helper()
	if cfg.Root == "" {
		cfg.Root = t.TempDir()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		hs.Close()
		s.Close()
	})
	return &testRegistry{t: t, srv: s, hs: hs, url: hs.URL}
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// do sends a request; headers are name, value pairs.
func (tr *testRegistry) do(method, path string, body []byte, headers ...string) response {
	tr.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	u := path
	if !strings.HasPrefix(u, "http") {
		u = tr.url + path
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		tr.t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tr.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tr.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	r := response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	if r.Status >= 400 && r.Status < 500 && method != http.MethodHead {
		// Every 4xx carries the spec's error body.
		var eb errorBody
		if err := json.Unmarshal(b, &eb); err != nil || len(eb.Errors) == 0 || eb.Errors[0].Code == "" {
			tr.t.Errorf("%s %s: %d with a body that is not the spec's error JSON: %q", method, path, r.Status, b)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			tr.t.Errorf("%s %s: error Content-Type %q", method, path, ct)
		}
	}
	return r
}

// code returns the first error code of an error response.
func (r response) code() string {
	var eb errorBody
	if json.Unmarshal(r.Body, &eb) != nil || len(eb.Errors) == 0 {
		return ""
	}
	return eb.Errors[0].Code
}

// expect fails the test unless r has the status (and error code, if
// given).
func (r response) expect(t *testing.T, what string, status int, code ...string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: status %d, want %d (body %q)", what, r.Status, status, r.Body)
	}
	if len(code) > 0 && r.code() != code[0] {
		t.Fatalf("%s: error code %q, want %q (body %q)", what, r.code(), code[0], r.Body)
	}
}

// pushBlob uploads data to repository name with POST and PUT.
func (tr *testRegistry) pushBlob(name string, data []byte) digest.Digest {
	tr.t.Helper()
	d := digest.FromBytes(data)
	r := tr.do("POST", "/v2/"+name+"/blobs/uploads/", nil)
	r.expect(tr.t, "start upload", http.StatusAccepted)
	loc := r.Header.Get("Location")
	sep := "?"
	if strings.Contains(loc, "?") {
		sep = "&"
	}
	r = tr.do("PUT", loc+sep+"digest="+d.String(), data, "Content-Type", "application/octet-stream")
	r.expect(tr.t, "finish upload", http.StatusCreated)
	return d
}

// pushManifest puts manifest b of media type mt under ref.
func (tr *testRegistry) pushManifest(name, ref, mt string, b []byte) response {
	tr.t.Helper()
	return tr.do("PUT", "/v2/"+name+"/manifests/"+ref, b, "Content-Type", mt)
}

// image pushes a config and a layer to name and returns an OCI image
// manifest that references them.
func (tr *testRegistry) image(name string, seed string) []byte {
	tr.t.Helper()
	cfg := []byte(`{"architecture":"amd64","os":"linux","seed":"` + seed + `"}`)
	layer := []byte("layer of " + seed)
	m := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: tr.pushBlob(name, cfg), Size: int64(len(cfg))},
		Layers:    []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: tr.pushBlob(name, layer), Size: int64(len(layer))}},
	}
	m.SchemaVersion = 2
	b, err := json.Marshal(m)
	if err != nil {
		tr.t.Fatal(err)
	}
	return b
}
