package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Names, tags and digests are checked against the spec's expressions.
func TestBadNamesTagsDigests(t *testing.T) {
	tr := newRegistry(t, Config{})
	d := digest.FromString("x").String()
	for _, c := range []struct{ path, code string }{
		{"/v2/UPPER/tags/list", CodeNameInvalid},
		{"/v2/a..b/manifests/latest", CodeNameInvalid},
		{"/v2/-lead/blobs/" + d, CodeNameInvalid},
		{"/v2/trail-/blobs/" + d, CodeNameInvalid},
		{"/v2/a//b/tags/list", CodeNameInvalid},
		{"/v2/" + strings.Repeat("a", 256) + "/tags/list", CodeNameInvalid},
		{"/v2/ok/manifests/.hidden", CodeManifestInvalid},
		{"/v2/ok/manifests/" + strings.Repeat("t", 129), CodeManifestInvalid},
		{"/v2/ok/manifests/sha256:abc", CodeDigestInvalid},
		{"/v2/ok/blobs/sha256:" + strings.Repeat("g", 64), CodeDigestInvalid},
		{"/v2/ok/blobs/md5:d41d8cd98f00b204e9800998ecf8427e", CodeDigestInvalid},
		{"/v2/ok/blobs/latest", CodeDigestInvalid},
	} {
		tr.do("GET", c.path, nil).expect(t, c.path, http.StatusBadRequest, c.code)
	}
	tr.do("PUT", "/v2/Bad/manifests/latest", []byte("{}")).expect(t, "PUT bad name", http.StatusBadRequest, CodeNameInvalid)
	tr.do("POST", "/v2/ok/blobs/uploads/?mount="+d+"&from=Bad..name", nil).expect(t, "mount from a bad name falls back", http.StatusAccepted)
	if _, err := os.Stat(filepath.Join(tr.srv.cfg.Root, "repositories", "Bad")); err == nil {
		t.Fatal("a bad name became a directory")
	}
}

// Unknown endpoints and methods get the spec's JSON error.
func TestUnknownEndpointAndMethod(t *testing.T) {
	tr := newRegistry(t, Config{})
	tr.do("GET", "/v2/foo/bar", nil).expect(t, "unknown endpoint", http.StatusNotFound, CodeUnsupported)
	tr.do("GET", "/v3/", nil).expect(t, "other version", http.StatusNotFound, CodeUnsupported)
	r := tr.do("POST", "/v2/foo/manifests/latest", nil)
	r.expect(t, "POST manifest", http.StatusMethodNotAllowed, CodeUnsupported)
	if r.Header.Get("Allow") == "" {
		t.Fatal("405 without Allow")
	}
	tr.do("PATCH", "/v2/foo/tags/list", nil).expect(t, "PATCH tags", http.StatusMethodNotAllowed, CodeUnsupported)
}

// A read-only registry serves pulls and refuses every write with 405
// UNSUPPORTED.
func TestReadOnly(t *testing.T) {
	root := t.TempDir()
	rw := newRegistry(t, Config{Root: root})
	m := rw.image("ro", "1")
	rw.pushManifest("ro", "v1", ocispec.MediaTypeImageManifest, m).expect(t, "PUT", http.StatusCreated)
	loc := rw.do("POST", "/v2/ro/blobs/uploads/", nil).Header.Get("Location")

	ro := newRegistry(t, Config{Root: root, ReadOnly: true, DeleteTags: true})
	ro.do("GET", "/v2/ro/manifests/v1", nil).expect(t, "GET", http.StatusOK)
	ro.do("GET", "/v2/ro/tags/list", nil).expect(t, "tags", http.StatusOK)
	d := digest.FromBytes(m).String()
	for _, c := range []struct{ method, path string }{
		{"POST", "/v2/ro/blobs/uploads/"},
		{"PATCH", loc},
		{"PUT", loc + "?digest=" + d},
		{"DELETE", loc},
		{"PUT", "/v2/ro/manifests/v2"},
		{"DELETE", "/v2/ro/manifests/" + d},
		{"DELETE", "/v2/ro/manifests/v1"},
		{"DELETE", "/v2/ro/blobs/" + d},
	} {
		ro.do(c.method, c.path, []byte("x")).expect(t, c.method+" "+c.path, http.StatusMethodNotAllowed, CodeUnsupported)
	}
	ro.do("GET", "/v2/ro/manifests/v1", nil).expect(t, "GET after refused writes", http.StatusOK)
}

// fakeAuth records the scopes asked for and refuses what it is told to.
type fakeAuth struct {
	mu     sync.Mutex
	asked  [][]Access
	refuse func(access []Access) error
}

func (a *fakeAuth) Authorize(r *http.Request, access []Access) error {
	a.mu.Lock()
	a.asked = append(a.asked, access)
	a.mu.Unlock()
	return a.refuse(access)
}

func (a *fakeAuth) last() []Access {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.asked[len(a.asked)-1]
}

// The Authorizer is asked with each endpoint's scope; its *AuthError is
// written with its status, code and challenge.
func TestAuthorizer(t *testing.T) {
	auth := &fakeAuth{refuse: func(access []Access) error {
		for _, a := range access {
			if a.Name == "secret" {
				return &AuthError{Status: http.StatusUnauthorized, Code: CodeUnauthorized, Message: "authentication required",
					Challenge: `Bearer realm="https://r/token",service="r",scope="repository:secret:pull"`}
			}
			if slices.Contains(a.Actions, "delete") {
				return &AuthError{Status: http.StatusForbidden, Code: CodeDenied, Message: "no delete for you"}
			}
		}
		return nil
	}}
	tr := newRegistry(t, Config{Authorizer: auth})
	r := tr.do("GET", "/v2/secret/tags/list", nil)
	r.expect(t, "refused pull", http.StatusUnauthorized, CodeUnauthorized)
	if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer realm=") {
		t.Fatalf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
	}
	d := tr.pushBlob("open", []byte("blob"))
	if a := auth.last(); len(a) != 1 || a[0].Type != "repository" || a[0].Name != "open" || !slices.Equal(a[0].Actions, []string{"pull", "push"}) {
		t.Fatalf("upload scope %+v", a)
	}
	tr.do("GET", "/v2/open/blobs/"+d.String(), nil).expect(t, "pull", http.StatusOK)
	if a := auth.last(); !slices.Equal(a[0].Actions, []string{"pull"}) {
		t.Fatalf("pull scope %+v", a)
	}
	tr.do("DELETE", "/v2/open/blobs/"+d.String(), nil).expect(t, "delete", http.StatusForbidden, CodeDenied)
	tr.do("GET", "/v2/_catalog", nil).expect(t, "catalog", http.StatusOK)
	if a := auth.last(); a[0].Type != "registry" || a[0].Name != "catalog" {
		t.Fatalf("catalog scope %+v", a)
	}
	tr.do("GET", "/v2/", nil).expect(t, "base", http.StatusOK)
	if a := auth.last(); len(a) != 0 {
		t.Fatalf("base scope %+v", a)
	}
	// A mount from a repository the client may not pull falls back to an
	// upload.
	tr.pushBlob("secret2", []byte("hidden"))
	auth.refuse = func(access []Access) error {
		if access[0].Name == "secret2" {
			return &AuthError{Status: http.StatusForbidden, Code: CodeDenied, Message: "no"}
		}
		return nil
	}
	tr.do("POST", "/v2/open/blobs/uploads/?mount="+digest.FromString("hidden").String()+"&from=secret2", nil).expect(t, "mount without pull on the source", http.StatusAccepted)
}

// /token is served by the configured TokenHandler.
func TestTokenHandler(t *testing.T) {
	tr := newRegistry(t, Config{TokenHandler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"token":"t-`+r.URL.Query().Get("scope")+`"}`)
	})})
	r := tr.do("GET", "/token?scope=x", nil)
	r.expect(t, "token", http.StatusOK)
	if string(r.Body) != `{"token":"t-x"}` {
		t.Fatalf("token body %q", r.Body)
	}
	newRegistry(t, Config{}).do("GET", "/token", nil).expect(t, "no token handler", http.StatusNotFound, CodeUnsupported)
}

// /metrics exposes request counts by method, route and status, bytes and
// latencies in Prometheus' text format.
func TestMetrics(t *testing.T) {
	tr := newRegistry(t, Config{})
	d := tr.pushBlob("met", bytes.Repeat([]byte("m"), 1000))
	tr.do("GET", "/v2/met/blobs/"+d.String(), nil)
	tr.do("GET", "/v2/met/blobs/"+digest.FromString("no").String(), nil)
	r := tr.do("GET", "/metrics", nil)
	r.expect(t, "metrics", http.StatusOK)
	for _, want := range []string{
		`berth_registry_http_requests_total{method="GET",route="blob",status="200"} 1`,
		`berth_registry_http_requests_total{method="GET",route="blob",status="404"} 1`,
		`berth_registry_http_requests_total{method="PUT",route="upload",status="201"} 1`,
		`berth_registry_http_received_bytes_total{route="upload"} 1000`,
		`berth_registry_http_sent_bytes_total{route="blob"}`,
		`berth_registry_http_request_duration_seconds_bucket{method="GET",route="blob",le="+Inf"} 2`,
	} {
		if !strings.Contains(string(r.Body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// Every request is logged as one structured line.
func TestAccessLog(t *testing.T) {
	var buf syncBuffer
	tr := newRegistry(t, Config{Logger: slog.New(slog.NewJSONHandler(&buf, nil))})
	tr.do("GET", "/v2/logged/tags/list", nil)
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(buf.String())), &line); err != nil {
		t.Fatalf("log %q: %v", buf.String(), err)
	}
	if line["method"] != "GET" || line["path"] != "/v2/logged/tags/list" || line["status"] != float64(404) || line["remote"] == "" || line["duration"] == nil || line["bytes"] == nil {
		t.Fatalf("access log line %v", line)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Serve's graceful shutdown lets an upload in flight finish.
func TestServeGracefulShutdown(t *testing.T) {
	s, err := New(Config{Root: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, s, ln, ServeOptions{ShutdownTimeout: 10 * time.Second}) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	base := "http://" + ln.Addr().String()
	tr := &testRegistry{t: t, srv: s, url: base}
	loc := tr.do("POST", "/v2/grace/blobs/uploads/", nil).Header.Get("Location")

	pr, pw := io.Pipe()
	req, _ := http.NewRequest("PATCH", base+loc, pr)
	status := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			status <- -1
			return
		}
		resp.Body.Close()
		status <- resp.StatusCode
	}()
	pw.Write([]byte("first half,"))
	time.Sleep(100 * time.Millisecond) // the request is in the handler
	cancel()
	time.Sleep(100 * time.Millisecond) // shutdown has begun
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Error("still accepting connections during shutdown")
	}
	pw.Write([]byte("second half"))
	pw.Close()
	if st := <-status; st != http.StatusAccepted {
		t.Fatalf("in-flight PATCH answered %d, want 202", st)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	done <- nil // for the cleanup
	// The upload is on disk for the next server.
	tr2 := newRegistry(t, Config{Root: s.cfg.Root})
	d := digest.FromString("first half,second half")
	tr2.do("PUT", loc+"?digest="+d.String(), nil).expect(t, "PUT after restart", http.StatusCreated)
}

// metricLine is one sample line of the Prometheus text format.
var metricLine = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? [-+0-9.eEInf]+$`)

// Every line of /metrics is a comment or a well-formed sample, and the
// histogram's buckets are cumulative.
func TestMetricsFormat(t *testing.T) {
	tr := newRegistry(t, Config{})
	tr.do("GET", "/v2/", nil)
	tr.do("BREW", "/v2/", nil)
	tr.do("GET", "/v2/x/tags/list", nil)
	r := tr.do("GET", "/metrics", nil)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("metrics Content-Type %q", ct)
	}
	var prev int64 = -1
	for _, line := range strings.Split(strings.TrimSpace(string(r.Body)), "\n") {
		if strings.HasPrefix(line, "# HELP ") || strings.HasPrefix(line, "# TYPE ") {
			continue
		}
		if !metricLine.MatchString(line) {
			t.Errorf("malformed metrics line %q", line)
		}
		if strings.Contains(line, `_bucket{method="GET",route="base"`) {
			n, _ := strconv.ParseInt(line[strings.LastIndexByte(line, ' ')+1:], 10, 64)
			if n < prev {
				t.Errorf("bucket counts not cumulative at %q", line)
			}
			prev = n
		}
	}
	if !strings.Contains(string(r.Body), `berth_registry_http_requests_total{method="other",route="base",status="405"} 1`) {
		t.Errorf("an unknown method is not counted as other:\n%s", r.Body)
	}
	if prev != 1 {
		t.Errorf("the +Inf bucket of GET base is %d, want 1", prev)
	}
}

// Concurrent pushes of the same content and manifests, and pulls, all
// succeed (no ingest lock conflicts, no torn tags).
func TestConcurrentPushPull(t *testing.T) {
	tr := newRegistry(t, Config{})
	m := tr.image("conc", "base")
	d := digest.FromBytes(m)
	var wg sync.WaitGroup
	errs := make(chan string, 100)
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 5 {
				body := bytes.NewReader(m)
				req, _ := http.NewRequest("PUT", tr.url+"/v2/conc/manifests/t", body)
				req.Header.Set("Content-Type", ocispec.MediaTypeImageManifest)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					errs <- err.Error()
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					errs <- "PUT manifest: " + resp.Status
				}
				data := []byte("same blob")
				resp, err = http.Post(tr.url+"/v2/conc/blobs/uploads/?digest="+digest.FromBytes(data).String(), "application/octet-stream", bytes.NewReader(data))
				if err != nil {
					errs <- err.Error()
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					errs <- "POST blob: " + resp.Status
				}
				resp, err = http.Get(tr.url + "/v2/conc/manifests/t")
				if err != nil {
					errs <- err.Error()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK || !bytes.Equal(b, m) {
					errs <- "GET manifest " + resp.Status + " " + strconv.Itoa(i) + "/" + strconv.Itoa(j)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if r := tr.do("HEAD", "/v2/conc/manifests/"+d.String(), nil); r.Status != http.StatusOK {
		t.Fatalf("HEAD after concurrent pushes: %d", r.Status)
	}
}
