package registry

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/reference"
)

func TestParseChallenges(t *testing.T) {
	type ch = map[string]string // "" is the scheme
	for _, c := range []struct {
		name    string
		headers []string
		want    []ch
	}{
		{"docker hub", []string{`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"`},
			[]ch{{"": "bearer", "realm": "https://auth.docker.io/token", "service": "registry.docker.io", "scope": "repository:library/busybox:pull"}}},
		{"ghcr", []string{`Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:berth-project/berth:pull"`},
			[]ch{{"": "bearer", "realm": "https://ghcr.io/token", "service": "ghcr.io", "scope": "repository:berth-project/berth:pull"}}},
		{"distribution htpasswd", []string{`Basic realm="basic-realm"`},
			[]ch{{"": "basic", "realm": "basic-realm"}}},
		{"ecr", []string{`Basic realm="https://123456789012.dkr.ecr.us-east-1.amazonaws.com/",service="ecr.amazonaws.com"`},
			[]ch{{"": "basic", "realm": "https://123456789012.dkr.ecr.us-east-1.amazonaws.com/", "service": "ecr.amazonaws.com"}}},
		{"insufficient scope, comma in a quoted value", []string{`Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push",error="insufficient_scope"`},
			[]ch{{"": "bearer", "realm": "https://auth.example.com/token", "service": "registry.example.com", "scope": "repository:a/b:pull,push", "error": "insufficient_scope"}}},
		{"two challenges in one header", []string{`Basic realm="x", Bearer realm="https://y/token", service="y"`},
			[]ch{{"": "basic", "realm": "x"}, {"": "bearer", "realm": "https://y/token", "service": "y"}}},
		{"two headers", []string{`Basic realm="a"`, `Bearer realm="b"`},
			[]ch{{"": "basic", "realm": "a"}, {"": "bearer", "realm": "b"}}},
		{"unquoted values, lower-case scheme", []string{`bearer realm=https://r.example/token,service=r.example`},
			[]ch{{"": "bearer", "realm": "https://r.example/token", "service": "r.example"}}},
		{"escaped quote", []string{`Bearer realm="https://r/t",error_description="say \"hi\""`},
			[]ch{{"": "bearer", "realm": "https://r/t", "error_description": `say "hi"`}}},
		{"scheme without parameters first", []string{`Negotiate, Bearer realm="https://r/t"`},
			[]ch{{"": "negotiate"}, {"": "bearer", "realm": "https://r/t"}}},
		{"upper-case keys", []string{`Bearer Realm="https://r/t",Service="s"`},
			[]ch{{"": "bearer", "realm": "https://r/t", "service": "s"}}},
		{"spaces around =", []string{`Bearer realm = "https://r/t" , service = s`},
			[]ch{{"": "bearer", "realm": "https://r/t", "service": "s"}}},
		{"empty", []string{""}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []ch
			for _, p := range parseChallenges(c.headers) {
				m := ch{"": p.scheme}
				for k, v := range p.params {
					m[k] = v
				}
				got = append(got, m)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("parseChallenges(%q)\n = %v\nwant %v", c.headers, got, c.want)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	for v, want := range map[string]time.Duration{
		"1": time.Second, " 120 ": 2 * time.Minute, "0": 0, "": 0, "-5": 0, "soon": 0,
	} {
		if got := retryAfter(v); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", v, got, want)
		}
	}
	future := time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)
	if got := retryAfter(future); got < 28*time.Second || got > 30*time.Second {
		t.Errorf("retryAfter(%q) = %v, want about 30s", future, got)
	}
	past := time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)
	if got := retryAfter(past); got > 0 {
		t.Errorf("retryAfter(%q) = %v, want no wait", past, got)
	}
}

// fakeUploads is a registry that takes blob uploads into repository
// "x", and can cut a chunk short once and answer mounts.
type fakeUploads struct {
	t *testing.T
	// mount is the status of a POST with mount= (201 or 202).
	mount int
	// exists answers HEAD with 200.
	exists bool
	// cutChunk, when positive, is the PATCH (1-based) the server reads
	// only half of before it drops the connection, once.
	cutChunk int

	mu       sync.Mutex
	data     []byte
	requests []string
	ranges   []string // Content-Range of the PATCH requests
	patches  int
	done     bool
}

func (f *fakeUploads) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	status := func() {
		w.Header().Set("Location", "/upload/1?offset="+fmt.Sprint(len(f.data)))
		if len(f.data) > 0 {
			w.Header().Set("Range", fmt.Sprintf("0-%d", len(f.data)-1))
		}
	}
	switch {
	case r.URL.Path == "/v2/":
	case r.Method == http.MethodHead && strings.HasPrefix(r.URL.Path, "/v2/x/blobs/"):
		if !f.exists {
			w.WriteHeader(http.StatusNotFound)
		}
	case r.Method == http.MethodPost && r.URL.Path == "/v2/x/blobs/uploads/":
		if r.URL.Query().Get("mount") != "" {
			if r.URL.Query().Get("from") != "other/repo" {
				f.t.Errorf("mount from %q", r.URL.Query().Get("from"))
			}
			if f.mount == http.StatusCreated {
				w.WriteHeader(http.StatusCreated)
				return
			}
		}
		status()
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodPatch && r.URL.Path == "/upload/1":
		f.patches++
		cr := r.Header.Get("Content-Range")
		f.ranges = append(f.ranges, cr)
		var start, end int
		if _, err := fmt.Sscanf(cr, "%d-%d", &start, &end); err != nil || start != len(f.data) || end < start {
			f.t.Errorf("PATCH Content-Range %q, the upload holds %d bytes", cr, len(f.data))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return
		}
		if f.patches == f.cutChunk {
			half := make([]byte, (end-start+1)/2)
			n, _ := io.ReadFull(r.Body, half)
			f.data = append(f.data, half[:n]...)
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				f.t.Error(err)
				return
			}
			conn.Close()
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil || len(body) != end-start+1 {
			f.t.Errorf("PATCH %s: %d bytes, %v", cr, len(body), err)
		}
		f.data = append(f.data, body...)
		status()
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodGet && r.URL.Path == "/upload/1":
		status()
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPut && r.URL.Path == "/upload/1":
		body, _ := io.ReadAll(r.Body)
		f.data = append(f.data, body...)
		if d := r.URL.Query().Get("digest"); d != digest.FromBytes(f.data).String() {
			f.t.Errorf("PUT digest %s, the upload holds %s", d, digest.FromBytes(f.data))
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		f.done = true
		w.WriteHeader(http.StatusCreated)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// pushTo pushes blob to repository x of the fake, from "other/repo".
func pushTo(t *testing.T, f *fakeUploads, opts Options, blob []byte) (PushResult, []int64, int64, error) {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	ref, err := reference.Parse(strings.TrimPrefix(srv.URL, "http://") + "/x")
	if err != nil {
		t.Fatal(err)
	}
	opts.Backoff = time.Millisecond
	repo, err := NewClient(opts).Repository(ref, true)
	if err != nil {
		t.Fatal(err)
	}
	desc := ocispec.Descriptor{Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	var opens []int64
	var last int64
	res, err := repo.PushBlob(context.Background(), desc, "other/repo", func(off int64) (io.ReadCloser, error) {
		opens = append(opens, off)
		return io.NopCloser(bytes.NewReader(blob[off:])), nil
	}, func(n int64) { last = n })
	return res, opens, last, err
}

func testBlob(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func TestPushChunked(t *testing.T) {
	blob := testBlob(3500)
	f := &fakeUploads{t: t, mount: http.StatusAccepted, cutChunk: 2}
	res, opens, last, err := pushTo(t, f, Options{ChunkSize: 1000}, blob)
	if err != nil || res != Uploaded {
		t.Fatalf("PushBlob = %v, %v", res, err)
	}
	if !f.done || !bytes.Equal(f.data, blob) {
		t.Errorf("the registry holds %d bytes (done %v), want the blob's %d", len(f.data), f.done, len(blob))
	}
	// The second chunk broke after 500 bytes; the upload went on from
	// where the registry said it stood.
	if want := []string{"0-999", "1000-1999", "1500-2499", "2500-3499"}; !reflect.DeepEqual(f.ranges, want) {
		t.Errorf("PATCH ranges %q, want %q", f.ranges, want)
	}
	if want := []int64{0, 1000, 1500, 2500}; !reflect.DeepEqual(opens, want) {
		t.Errorf("opened at %v, want %v", opens, want)
	}
	statusGets := 0
	for _, r := range f.requests {
		if r == "GET /upload/1" {
			statusGets++
		}
	}
	if statusGets != 1 {
		t.Errorf("upload status asked %d times, want once: %q", statusGets, f.requests)
	}
	if last != int64(len(blob)) {
		t.Errorf("progress ended at %d, want %d", last, len(blob))
	}
}

func TestPushMonolithic(t *testing.T) {
	blob := testBlob(3500)
	for _, chunk := range []int64{-1, 4000} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			f := &fakeUploads{t: t, mount: http.StatusAccepted}
			res, opens, last, err := pushTo(t, f, Options{ChunkSize: chunk}, blob)
			if err != nil || res != Uploaded {
				t.Fatalf("PushBlob = %v, %v", res, err)
			}
			if !bytes.Equal(f.data, blob) || f.patches != 0 || !reflect.DeepEqual(opens, []int64{0}) {
				t.Errorf("holds %d bytes, %d PATCHes, opened at %v; want the blob in one PUT", len(f.data), f.patches, opens)
			}
			if last != int64(len(blob)) {
				t.Errorf("progress ended at %d", last)
			}
		})
	}
}

func TestPushMount(t *testing.T) {
	blob := testBlob(100)
	f := &fakeUploads{t: t, mount: http.StatusCreated}
	res, opens, _, err := pushTo(t, f, Options{}, blob)
	if err != nil || res != Mounted || len(opens) != 0 || len(f.data) != 0 {
		t.Errorf("mount answered 201: %v, %v, opened %v; want Mounted without an upload", res, err, opens)
	}

	// 202: the registry could not mount and started an upload instead.
	f = &fakeUploads{t: t, mount: http.StatusAccepted}
	res, _, _, err = pushTo(t, f, Options{}, blob)
	if err != nil || res != Uploaded || !bytes.Equal(f.data, blob) {
		t.Errorf("mount answered 202: %v, %v, %d bytes; want the blob uploaded", res, err, len(f.data))
	}

	f = &fakeUploads{t: t, exists: true}
	res, _, _, err = pushTo(t, f, Options{}, blob)
	if err != nil || res != Exists {
		t.Errorf("HEAD answered 200: %v, %v; want Exists", res, err)
	}
	for _, r := range f.requests {
		if strings.HasPrefix(r, "POST") {
			t.Errorf("an upload started for a blob the registry has: %q", f.requests)
		}
	}
}
