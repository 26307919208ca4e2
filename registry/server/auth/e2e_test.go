package auth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-project/berth/reference"
	"github.com/berth-project/berth/registry"
	"github.com/berth-project/berth/registry/server"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakeRegistry is a tiny in-memory registry standing in for package
// server: it asks its Authorizer before every /v2/ endpoint with the
// scope the endpoint needs, and serves the token endpoint.
type fakeRegistry struct {
	authz server.Authorizer
	token http.Handler

	mu        sync.Mutex
	blobs     map[string][]byte // by repository@digest
	manifests map[string][]byte // by repository:reference (tag or digest)
	uploads   int
}

var routeRE = regexp.MustCompile(`^/v2/(.+)/(blobs/uploads/|blobs/uploads/[0-9]+|blobs/sha256:[0-9a-f]{64}|manifests/[^/]+)$`)

func (f *fakeRegistry) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == TokenPath && f.token != nil {
		f.token.ServeHTTP(w, r)
		return
	}
	if r.URL.Path == "/v2/" {
		if f.authorize(w, r, nil) {
			w.WriteHeader(http.StatusOK)
		}
		return
	}
	if r.URL.Path == "/v2/_catalog" {
		if !f.authorize(w, r, []server.Access{{Type: "registry", Name: "catalog", Actions: []string{"*"}}}) {
			return
		}
		f.mu.Lock()
		var repos []string
		for k := range f.manifests {
			name, _, _ := strings.Cut(k, ":")
			if !slices.Contains(repos, name) {
				repos = append(repos, name)
			}
		}
		f.mu.Unlock()
		slices.Sort(repos)
		json.NewEncoder(w).Encode(map[string][]string{"repositories": repos})
		return
	}
	m := routeRE.FindStringSubmatch(r.URL.Path)
	if m == nil {
		http.NotFound(w, r)
		return
	}
	name, rest := m[1], m[2]
	actions := []string{"pull"}
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
		actions = []string{"pull", "push"}
	case http.MethodDelete:
		actions = []string{"delete"}
	}
	if !f.authorize(w, r, []server.Access{{Type: "repository", Name: name, Actions: actions}}) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case strings.HasPrefix(rest, "blobs/uploads/") && r.Method == http.MethodPost:
		f.uploads++
		w.Header().Set("Location", fmt.Sprintf("/v2/%s/blobs/uploads/%d", name, f.uploads))
		w.WriteHeader(http.StatusAccepted)
	case strings.HasPrefix(rest, "blobs/uploads/") && r.Method == http.MethodPut:
		data, _ := io.ReadAll(r.Body)
		d := r.URL.Query().Get("digest")
		if digest.FromBytes(data).String() != d {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		f.blobs[name+"@"+d] = data
		w.WriteHeader(http.StatusCreated)
	case strings.HasPrefix(rest, "blobs/"):
		data, ok := f.blobs[name+"@"+strings.TrimPrefix(rest, "blobs/")]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.Write(data)
	case strings.HasPrefix(rest, "manifests/") && r.Method == http.MethodPut:
		data, _ := io.ReadAll(r.Body)
		d := digest.FromBytes(data)
		f.manifests[name+":"+strings.TrimPrefix(rest, "manifests/")] = data
		f.manifests[name+":"+d.String()] = data
		w.Header().Set("Docker-Content-Digest", d.String())
		w.WriteHeader(http.StatusCreated)
	case strings.HasPrefix(rest, "manifests/"):
		data, ok := f.manifests[name+":"+strings.TrimPrefix(rest, "manifests/")]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
		w.Header().Set("Docker-Content-Digest", digest.FromBytes(data).String())
		w.Write(data)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

// authorize asks the Authorizer and writes its refusal as the server
// will: the status, the challenge and the spec's JSON error.
func (f *fakeRegistry) authorize(w http.ResponseWriter, r *http.Request, access []server.Access) bool {
	err := f.authz.Authorize(r, access)
	if err == nil {
		return true
	}
	var ae *server.AuthError
	if !errors.As(err, &ae) {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return false
	}
	if ae.Challenge != "" {
		w.Header().Set("WWW-Authenticate", ae.Challenge)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ae.Status)
	json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": ae.Code, "message": ae.Message}}})
	return false
}

// startRegistry serves a fake registry with the Auth of cfg on
// 127.0.0.1, and returns it and its host:port.
func startRegistry(t *testing.T, cfg server.AuthConfig) (*fakeRegistry, string) {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRegistry{authz: a, blobs: map[string][]byte{}, manifests: map[string][]byte{}}
	if h := a.TokenHandler(); h != nil {
		f.token = h
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, strings.TrimPrefix(srv.URL, "http://")
}

// client is berth's registry client logging in as user (anonymous when
// "").
func client(user, password string) *registry.Client {
	return registry.NewClient(registry.Options{
		Retries: -1,
		Credentials: func(context.Context, string) (registry.Credential, error) {
			return registry.Credential{Username: user, Password: password}, nil
		},
	})
}

// pushImage pushes a one-blob image as host/name:latest with c.
func pushImage(ctx context.Context, c *registry.Client, host, name string, blob []byte) (ocispec.Descriptor, error) {
	ref, err := reference.Parse(host + "/" + name + ":latest")
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	repo, err := c.Repository(ref, true)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	bd := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	if _, err := repo.PushBlob(ctx, bd, "", func(off int64) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(blob[off:])), nil
	}, nil); err != nil {
		return ocispec.Descriptor{}, err
	}
	man, _ := json.Marshal(ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: bd, Layers: []ocispec.Descriptor{bd}})
	md := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(man), Size: int64(len(man))}
	return md, repo.PutManifest(ctx, "latest", md, man)
}

// pullImage pulls host/name:latest with c and returns its manifest's
// digest and its layer.
func pullImage(ctx context.Context, c *registry.Client, host, name string) (digest.Digest, []byte, error) {
	ref, err := reference.Parse(host + "/" + name + ":latest")
	if err != nil {
		return "", nil, err
	}
	repo, err := c.Repository(ref, false)
	if err != nil {
		return "", nil, err
	}
	md, data, err := repo.Manifest(ctx, "latest")
	if err != nil {
		return "", nil, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return "", nil, err
	}
	rc, err := repo.OpenBlob(ctx, m.Layers[0], 0)
	if err != nil {
		return "", nil, err
	}
	defer rc.Close()
	layer, err := io.ReadAll(rc)
	return md.Digest, layer, err
}

var e2eRules = []server.AccessRule{
	{Repository: "team/*", Users: []string{"alice"}, Actions: []string{"pull", "push"}},
	{Repository: "team/*", Users: []string{"*"}, Actions: []string{"pull"}},
	{Repository: "public/*", Users: []string{"anonymous"}, Actions: []string{"pull"}},
	{Repository: "public/*", Users: []string{"alice"}, Actions: []string{"push"}},
}

// testClientFlow pushes and pulls with berth's client through a registry
// using cfg, and checks who may do what.
func testClientFlow(t *testing.T, cfg server.AuthConfig) *fakeRegistry {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f, host := startRegistry(t, cfg)
	blob := []byte("layer of team/app")

	// Alice pushes; Bob pulls the same digest.
	md, err := pushImage(ctx, client("alice", "alice-pw"), host, "team/app", blob)
	if err != nil {
		t.Fatalf("alice's push: %v", err)
	}
	got, layer, err := pullImage(ctx, client("bob", "bob-pw"), host, "team/app")
	if err != nil {
		t.Fatalf("bob's pull: %v", err)
	}
	if got != md.Digest || !bytes.Equal(layer, blob) {
		t.Errorf("bob pulled %s %q, alice pushed %s %q", got, layer, md.Digest, blob)
	}

	// Bob may not push there, anonymous may not pull there, a wrong
	// password gets nothing: nothing is stored.
	if _, err := pushImage(ctx, client("bob", "bob-pw"), host, "team/app2", []byte("bob's")); !errors.Is(err, registry.ErrUnauthorized) {
		t.Errorf("bob's push: %v, want unauthorized", err)
	}
	if _, _, err := pullImage(ctx, client("", ""), host, "team/app"); !errors.Is(err, registry.ErrUnauthorized) {
		t.Errorf("anonymous pull: %v, want unauthorized", err)
	}
	if _, _, err := pullImage(ctx, client("bob", "alice-pw"), host, "team/app"); !errors.Is(err, registry.ErrUnauthorized) {
		t.Errorf("pull with a wrong password: %v, want unauthorized", err)
	}
	f.mu.Lock()
	for k := range f.blobs {
		if strings.HasPrefix(k, "team/app2@") {
			t.Errorf("bob's blob was stored: %s", k)
		}
	}
	f.mu.Unlock()

	// Public repositories: alice pushes, anonymous pulls.
	md, err = pushImage(ctx, client("alice", "alice-pw"), host, "public/tool", []byte("public layer"))
	if err != nil {
		t.Fatalf("alice's push to public/tool: %v", err)
	}
	if got, _, err := pullImage(ctx, client("", ""), host, "public/tool"); err != nil || got != md.Digest {
		t.Errorf("anonymous pull of public/tool: %s, %v", got, err)
	}

	// berth login's check.
	if err := client("alice", "alice-pw").Ping(ctx, host); err != nil {
		t.Errorf("ping as alice: %v", err)
	}
	if err := client("alice", "bob-pw").Ping(ctx, host); !errors.Is(err, registry.ErrUnauthorized) {
		t.Errorf("ping with a wrong password: %v", err)
	}
	return f
}

func e2eConfig(t *testing.T) server.AuthConfig {
	dir := t.TempDir()
	path := filepath.Join(dir, "htpasswd")
	writeHtpasswd(t, path, "alice", "alice-pw", "bob", "bob-pw")
	return server.AuthConfig{Htpasswd: path, Access: e2eRules}
}

func TestEndToEndBasic(t *testing.T) {
	testClientFlow(t, e2eConfig(t))
}

func TestEndToEndToken(t *testing.T) {
	cfg := e2eConfig(t)
	cfg.Token = &server.TokenConfig{Key: filepath.Join(filepath.Dir(cfg.Htpasswd), "token.pem")}
	testClientFlow(t, cfg)
}

// TestEndToEndDockerFlow goes through docker's flow by hand: a request,
// its 401 challenge, the token realm with basic credentials and the
// challenge's service and scope, the request again with the token.
func TestEndToEndDockerFlow(t *testing.T) {
	cfg := e2eConfig(t)
	cfg.Access = append(cfg.Access, server.AccessRule{Repository: "*", Users: []string{"admin"}, Actions: []string{"*"}})
	writeHtpasswd(t, cfg.Htpasswd, "alice", "alice-pw", "admin", "admin-pw")
	cfg.Token = &server.TokenConfig{Service: "flow-test"}
	_, host := startRegistry(t, cfg)
	base := "http://" + host

	get := func(u, user, password, tok string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	// flow returns the status of GET path as user after docker's dance.
	flow := func(path, user, password string) int {
		t.Helper()
		resp := get(base+path, "", "", "")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("%s without a token: %d", path, resp.StatusCode)
		}
		ch := resp.Header.Get("WWW-Authenticate")
		params := map[string]string{}
		for _, m := range regexp.MustCompile(`(\w+)="([^"]*)"`).FindAllStringSubmatch(strings.TrimPrefix(ch, "Bearer "), -1) {
			params[m[1]] = m[2]
		}
		if !strings.HasPrefix(ch, "Bearer ") || params["realm"] != base+TokenPath || params["service"] != "flow-test" {
			t.Fatalf("challenge %q", ch)
		}
		q := url.Values{"service": {params["service"]}}
		if params["scope"] != "" {
			q["scope"] = strings.Fields(params["scope"])
		}
		tresp := get(params["realm"]+"?"+q.Encode(), user, password, "")
		if tresp.StatusCode != http.StatusOK {
			t.Fatalf("token for %s: %d", path, tresp.StatusCode)
		}
		var body struct{ Token string }
		if err := json.NewDecoder(tresp.Body).Decode(&body); err != nil || body.Token == "" {
			t.Fatalf("token answer: %v", err)
		}
		return get(base+path, "", "", body.Token).StatusCode
	}
	if got := flow("/v2/", "alice", "alice-pw"); got != http.StatusOK {
		t.Errorf("/v2/ as alice: %d", got)
	}
	if got := flow("/v2/_catalog", "admin", "admin-pw"); got != http.StatusOK {
		t.Errorf("catalog as admin: %d", got)
	}
	if got := flow("/v2/_catalog", "alice", "alice-pw"); got != http.StatusUnauthorized {
		t.Errorf("catalog as alice: %d, want 401 (insufficient scope)", got)
	}
	if got := flow("/v2/team/app/manifests/latest", "alice", "alice-pw"); got != http.StatusNotFound {
		t.Errorf("a missing manifest as alice: %d, want 404 past auth", got)
	}
}
