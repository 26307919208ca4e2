package engine

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/berth-project/berth/internal/testimage"
	"github.com/berth-project/berth/internal/testregistry"
	"github.com/berth-project/berth/progress"
	"github.com/berth-project/berth/reference"
	"github.com/berth-project/berth/registry"
	"github.com/berth-project/berth/registry/credentials"
	"github.com/berth-project/berth/registry/hosts"
)

// eventLog records the events of a transfer.
type eventLog struct {
	mu     sync.Mutex
	events []progress.Event
}

func (l *eventLog) Event(e progress.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
}

// statuses returns the last status of each item, and the image lines.
func (l *eventLog) statuses() (map[string]string, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	last := map[string]string{}
	var lines []string
	for _, e := range l.events {
		if e.ID == "" {
			lines = append(lines, e.Status)
		} else {
			last[e.ID] = e.Status
		}
	}
	return last, lines
}

func mustRef(t *testing.T, s string) reference.Reference {
	t.Helper()
	r, err := reference.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// loadTestImages loads the busybox and layered test images into s as
// busybox:src and layered:src.
func loadTestImages(t *testing.T, s *Store) {
	t.Helper()
	dir := testimage.Build(t, "busybox", "layered")
	for _, n := range []string{"busybox", "layered"} {
		if _, err := s.LoadLayout(context.Background(), filepath.Join(dir, n), LoadOptions{Name: n + ":src"}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestPushPlain(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	loadTestImages(t, s)
	reg := testregistry.Start(t, testregistry.Options{})
	proxy := testregistry.StartProxy(t, reg.Host, testregistry.ProxyRule{})
	// Small chunks: the busybox layer (about 1 MB) goes in 16 PATCHes.
	client := registry.NewClient(registry.Options{ChunkSize: 64 << 10})
	push := func(img, dst string) (*eventLog, string) {
		t.Helper()
		ref := mustRef(t, proxy.Host+"/"+dst)
		repo, err := client.Repository(ref, true)
		if err != nil {
			t.Fatal(err)
		}
		log := &eventLog{}
		desc, err := s.Push(ctx, repo, img, ref, PushOptions{Progress: log})
		if err != nil {
			t.Fatalf("push %s as %s: %v", img, dst, err)
		}
		return log, desc.Digest.String()
	}
	src, err := s.Get(ctx, "layered:src")
	if err != nil {
		t.Fatal(err)
	}
	log, d := push("layered:src", "layered:v1")
	if d != src.Target.Digest.String() {
		t.Errorf("pushed manifest %s, the image's is %s", d, src.Target.Digest)
	}
	if got := reg.ManifestDigest(t, "layered:v1"); got != src.Target.Digest {
		t.Errorf("registry has manifest %s, want %s", got, src.Target.Digest)
	}
	last, lines := log.statuses()
	for id, st := range last {
		if st != progress.StatusPushed {
			t.Errorf("first push: layer %s ended %q, want Pushed", id, st)
		}
	}
	if len(last) != 4 || !strings.HasPrefix(lines[len(lines)-1], "v1: digest: "+d) {
		t.Errorf("first push: %d layers, last line %q", len(last), lines[len(lines)-1])
	}
	var patches int
	for _, r := range proxy.Requests() {
		if strings.HasPrefix(r, "PATCH ") {
			patches++
		}
	}
	if patches < 16 {
		t.Errorf("%d PATCH requests; a 1 MB layer in 64 KiB chunks needs 16", patches)
	}

	// Again: every blob is there.
	log, _ = push("layered:src", "layered:v1")
	last, _ = log.statuses()
	for id, st := range last {
		if st != progress.StatusLayerAlreadyExists {
			t.Errorf("second push: layer %s ended %q, want %q", id, st, progress.StatusLayerAlreadyExists)
		}
	}

	// Another repository of the registry, where the image also has a
	// name: blobs are mounted, not sent.
	if err := s.Tag(ctx, "layered:src", proxy.Host+"/layered:v1"); err != nil {
		t.Fatal(err)
	}
	n := len(proxy.Requests())
	log, _ = push("layered:src", "other/layered:v2")
	last, _ = log.statuses()
	for id, st := range last {
		if st != progress.MountedFrom("layered") {
			t.Errorf("push to another repository: layer %s ended %q, want mounted", id, st)
		}
	}
	for _, r := range proxy.Requests()[n:] {
		if strings.HasPrefix(r, "PATCH ") || (strings.HasPrefix(r, "PUT ") && strings.Contains(r, "/blobs/")) {
			t.Errorf("push to another repository sent blob bytes: %s", r)
		}
	}
	if got := reg.ManifestDigest(t, "other/layered:v2"); got != src.Target.Digest {
		t.Errorf("other/layered:v2 is %s, want %s", got, src.Target.Digest)
	}

	// By digest: the manifest is stored under its digest only.
	_, d = push("busybox:src", "bydigest@"+mustDigestOf(t, s, "busybox:src"))
	if got := reg.ManifestDigest(t, "bydigest@"+d); got.String() != d {
		t.Errorf("bydigest@%s reads back as %s", d, got)
	}
	ref := mustRef(t, proxy.Host+"/bydigest@sha256:"+strings.Repeat("0", 64))
	repo, _ := client.Repository(ref, true)
	if _, err := s.Push(ctx, repo, "busybox:src", ref, PushOptions{}); err == nil || !strings.Contains(err.Error(), "not sha256:0000") {
		t.Errorf("push by another digest: %v", err)
	}
	ref = mustRef(t, proxy.Host+"/missing:1")
	repo, _ = client.Repository(ref, true)
	if _, err := s.Push(ctx, repo, "no-such-image:1", ref, PushOptions{}); err == nil || !strings.Contains(err.Error(), "no-such-image") {
		t.Errorf("push of a missing image: %v", err)
	}

	// What was pushed pulls back as the same image.
	s2 := openStore(t, t.TempDir())
	ref = mustRef(t, proxy.Host+"/other/layered:v2")
	repo, _ = client.Repository(ref, false)
	pulled, err := s2.Pull(ctx, repo, ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if pulled.ID != src.ID || pulled.Target.Digest != src.Target.Digest {
		t.Errorf("pulled back %s (manifest %s), pushed %s (%s)", pulled.ID, pulled.Target.Digest, src.ID, src.Target.Digest)
	}
}

func mustDigestOf(t *testing.T, s *Store, name string) string {
	t.Helper()
	img, err := s.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return img.Target.Digest.String()
}

// TestPushToken pushes through the bearer token flow over TLS: the token
// asked for carries push access, and a mount asks for pull access to the
// source repository too; without a login the push is refused.
func TestPushToken(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	loadTestImages(t, s)
	reg := testregistry.Start(t, testregistry.Options{TLS: true, Token: true})
	cfg := &hosts.Config{CertsDirs: []string{reg.CertsDir}}
	authFile := filepath.Join(t.TempDir(), "config.json")
	creds := credentials.Open(authFile)
	newClient := func() *registry.Client {
		return registry.NewClient(registry.Options{Endpoints: cfg.Endpoints, Retries: -1,
			Credentials: func(ctx context.Context, host string) (registry.Credential, error) { return creds.Get(ctx, host) }})
	}
	ref := mustRef(t, reg.Host+"/team/app:1")
	repo, err := newClient().Repository(ref, true)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Push(ctx, repo, "busybox:src", ref, PushOptions{})
	if !errors.Is(err, registry.ErrUnauthorized) || !strings.Contains(err.Error(), reg.Host) {
		t.Fatalf("push without a login: %v, want unauthorized naming %s", err, reg.Host)
	}
	if err := creds.Put(ctx, reg.Host, registry.Credential{Username: reg.Username, Password: reg.Password}); err != nil {
		t.Fatal(err)
	}
	client := newClient()
	if repo, err = client.Repository(ref, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Push(ctx, repo, "busybox:src", ref, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Tag(ctx, "busybox:src", reg.Host+"/team/app:1"); err != nil {
		t.Fatal(err)
	}
	ref2 := mustRef(t, reg.Host+"/team/copy:1")
	repo2, _ := client.Repository(ref2, true)
	log := &eventLog{}
	if _, err := s.Push(ctx, repo2, "busybox:src", ref2, PushOptions{Progress: log}); err != nil {
		t.Fatal(err)
	}
	var pushScope, mountScope bool
	for _, tr := range reg.TokenRequests() {
		scopes := strings.Join(tr.Scopes, " ")
		if strings.Contains(scopes, "repository:team/app:pull,push") {
			pushScope = true
		}
		if strings.Contains(scopes, "repository:team/copy:pull,push") && strings.Contains(scopes, "repository:team/app:pull") {
			mountScope = true
		}
	}
	if !pushScope || !mountScope {
		t.Errorf("token requests %+v: push scope %v, mount scope %v", reg.TokenRequests(), pushScope, mountScope)
	}
	last, _ := log.statuses()
	for id, st := range last {
		if st != progress.MountedFrom("team/app") {
			t.Errorf("layer %s: %q, want mounted from team/app", id, st)
		}
	}
}
