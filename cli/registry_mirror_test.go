package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/internal/testimage"
	"github.com/berth-project/berth/registry/hosts"
)

// `registry serve --mirror` is a pull-through cache that berth's own pull
// uses as a docker.io mirror (registries.conf), docker's way: the image
// pushed to the upstream as library/busybox comes through the mirror,
// which stores it; pushes to the mirror are refused.
func TestRegistryServeMirror(t *testing.T) {
	images := testimage.Build(t, "busybox")
	upAddr, _ := startRegistry(t, "--root", t.TempDir())
	src := t.TempDir()
	mustRun(t, "--root", src, "load", "-i", filepath.Join(images, "busybox"), "busybox:1")
	out := mustRun(t, "--root", src, "push", "-q", "--tls-verify=false", "busybox:1", upAddr+"/library/busybox:1")
	pushed, err := digest.Parse(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("push printed %q", out)
	}

	mirRoot := t.TempDir()
	mirAddr, logs := startRegistry(t, "--root", mirRoot, "--mirror", "http://"+upAddr)
	conf := filepath.Join(t.TempDir(), "registries.conf")
	err = os.WriteFile(conf, []byte("[[registry]]\nlocation = \"docker.io\"\n[[registry.mirror]]\nlocation = \""+mirAddr+"\"\ninsecure = true\n"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(hosts.ConfigEnv, conf)

	// No internet here: docker.io itself cannot answer, so a pull that
	// works came through the mirror.
	dst := t.TempDir()
	out = mustRun(t, "--root", dst, "pull", "docker.io/library/busybox:1")
	if !strings.Contains(out, "Digest: "+pushed.String()) {
		t.Fatalf("pull through the mirror lacks the pushed digest %s:\n%s", pushed, out)
	}
	tag, err := os.ReadFile(filepath.Join(mirRoot, "repositories", "library", "busybox", "_manifests", "tags", "1"))
	if err != nil || strings.TrimSpace(string(tag)) != pushed.String() {
		t.Fatalf("mirror's cached tag: %q, %v", tag, err)
	}
	if !strings.Contains(logs.String(), "mirror: cached blob") {
		t.Errorf("mirror log lacks cached blobs:\n%s", logs)
	}

	// The mirror by its own name, pulled by digest: from the cache.
	dst2 := t.TempDir()
	out = mustRun(t, "--root", dst2, "pull", "--tls-verify=false", mirAddr+"/library/busybox@"+pushed.String())
	if !strings.Contains(out, pushed.String()) {
		t.Fatalf("pull by digest from the mirror:\n%s", out)
	}

	out, err = run(t, nil, "--root", src, "push", "-q", "--tls-verify=false", "busybox:1", mirAddr+"/library/busybox:2")
	if err == nil || !strings.Contains(out+err.Error(), "pull-through cache") {
		t.Fatalf("push to the mirror: %v\n%s", err, out)
	}
}
