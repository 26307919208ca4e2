package cli

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/crypto/bcrypt"

	"github.com/berth-project/berth/internal/testimage"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freeAddr returns a loopback address with a port that was free a moment
// ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startRegistry runs `berth registry serve` with args until the test ends
// and returns its address and log.
func startRegistry(t *testing.T, args ...string) (string, *lockedBuffer) {
	t.Helper()
	addr := freeAddr(t)
	root, _ := newRoot()
	logs := &lockedBuffer{}
	root.SetOut(logs)
	root.SetErr(logs)
	root.SetArgs(append([]string{"registry", "serve", "--addr", addr}, args...))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("registry serve: %v\n%s", err, logs)
			}
		case <-time.After(30 * time.Second):
			t.Error("registry serve did not stop")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr, logs
			}
		}
		select {
		case err := <-done:
			t.Fatalf("registry serve exited: %v\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry at %s not up: %v\n%s", addr, err, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// berth's own push and pull work against `berth registry serve`: an image
// pushed from one store is pulled into another with the same digest.
func TestRegistryServePushPull(t *testing.T) {
	images := testimage.Build(t, "busybox")
	regRoot := t.TempDir()
	addr, logs := startRegistry(t, "--root", regRoot, "--log-format", "json")

	src := t.TempDir()
	mustRun(t, "--root", src, "load", "-i", filepath.Join(images, "busybox"), "busybox:1")
	out := mustRun(t, "--root", src, "push", "-q", "--tls-verify=false", "busybox:1", addr+"/test/busybox:1")
	pushed, err := digest.Parse(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("push printed %q", out)
	}
	dst := t.TempDir()
	out = mustRun(t, "--root", dst, "pull", "--tls-verify=false", addr+"/test/busybox:1")
	if !strings.Contains(out, "Digest: "+pushed.String()) {
		t.Fatalf("pull output lacks the pushed digest %s:\n%s", pushed, out)
	}
	if _, err := os.Stat(filepath.Join(regRoot, "repositories", "test", "busybox", "_manifests", "tags", "1")); err != nil {
		t.Fatalf("tag file: %v", err)
	}
	for _, want := range []string{`"msg":"registry serving"`, `"method":"PUT","path":"/v2/test/busybox/manifests/1","status":201`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
}

// Flags override the config file; the root defaults under berth's root;
// an auth section that cannot be served (a missing htpasswd file) is an
// error, not an open registry.
func TestRegistryServeConfig(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "registry.toml")
	os.WriteFile(cfgFile, []byte("addr = \"127.0.0.1:1\"\nroot = \""+filepath.Join(dir, "fromfile")+"\"\nread_only = true\n"), 0o644)
	addr, _ := startRegistry(t, "--config", cfgFile, "--read-only=false", "--root", filepath.Join(dir, "fromflag"))
	resp, err := http.Post("http://"+addr+"/v2/x/blobs/uploads/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST upload with --read-only=false over read_only = true: %d", resp.StatusCode)
	}
	if _, err := os.Stat(filepath.Join(dir, "fromflag", "uploads")); err != nil {
		t.Fatalf("--root not used: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "fromfile")); err == nil {
		t.Fatal("the config file's root was used over --root")
	}

	authFile := filepath.Join(dir, "auth.toml")
	os.WriteFile(authFile, []byte("[auth]\nhtpasswd = \"/x\"\n"), 0o644)
	if out, err := run(t, nil, "registry", "serve", "--config", authFile, "--addr", freeAddr(t), "--root", dir); err == nil || !strings.Contains(err.Error(), "auth") {
		t.Fatalf("auth config accepted: %v\n%s", err, out)
	}
	if _, err := run(t, nil, "registry", "serve", "--tls-cert", "c.pem", "--root", dir); err == nil {
		t.Fatal("--tls-cert without --tls-key accepted")
	}
}

// The config's auth section is served: basic auth from an htpasswd file.
func TestRegistryServeBasicAuth(t *testing.T) {
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("alice:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "registry.toml")
	if err := os.WriteFile(cfgFile, []byte("[auth]\nhtpasswd = \""+htpasswd+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	root, _ := newRoot()
	logs := &lockedBuffer{}
	root.SetOut(logs)
	root.SetErr(logs)
	root.SetArgs([]string{"registry", "serve", "--addr", addr, "--config", cfgFile, "--root", filepath.Join(dir, "data")})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("registry serve: %v\n%s", err, logs)
		}
	}()
	get := func(user, pass string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/v2/", nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil
		}
		resp.Body.Close()
		return resp
	}
	deadline := time.Now().Add(10 * time.Second)
	var resp *http.Response
	for resp = get("", ""); resp == nil; resp = get("", "") {
		if time.Now().After(deadline) {
			t.Fatalf("registry at %s not up\n%s", addr, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("/v2/ without credentials: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if resp := get("alice", "wrong"); resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/v2/ with a wrong password: %v", resp)
	}
	if resp := get("alice", "s3cret"); resp == nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/v2/ as alice: %v", resp)
	}
}

// `registry gc` reports and deletes unreferenced blobs of a root.
func TestRegistryGC(t *testing.T) {
	regRoot := t.TempDir()
	addr, _ := startRegistry(t, "--root", regRoot)
	data := []byte("unreferenced")
	d := digest.FromBytes(data)
	resp, err := http.Post("http://"+addr+"/v2/gc/blobs/uploads/?digest="+d.String(), "application/octet-stream", bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("push: %d", resp.StatusCode)
	}
	if out := mustRun(t, "registry", "gc", "--root", regRoot); !strings.Contains(out, "Deleted 0 blobs") {
		t.Fatalf("gc within the grace period: %q", out)
	}
	out := mustRun(t, "registry", "gc", "--root", regRoot, "--grace", "1ns", "--dry-run")
	if !strings.Contains(out, "Would delete 1 blobs") || !strings.Contains(out, d.String()) {
		t.Fatalf("gc --dry-run: %q", out)
	}
	if out := mustRun(t, "registry", "gc", "--root", regRoot, "--grace", "1ns"); !strings.Contains(out, "Deleted 1 blobs (12B)") {
		t.Fatalf("gc: %q", out)
	}
	resp, err = http.Head("http://" + addr + "/v2/gc/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("HEAD after gc: %d", resp.StatusCode)
	}
	if _, err := run(t, nil, "registry", "gc", "--root", t.TempDir()); err == nil {
		t.Fatal("gc of a non-registry directory succeeded")
	}
}
