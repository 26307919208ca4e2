package engine

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/image"
)

// busyboxLayer writes the busybox test image and returns the path of its
// (gzip) layer blob and the layer's diff ID from the image config.
func busyboxLayer(t *testing.T) (string, digest.Digest) {
	t.Helper()
	script, err := filepath.Abs("../../shared/images/make-test-images.py")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(script); err != nil {
		t.Fatalf("test image script: %v", err)
	}
	dir := t.TempDir()
	if out, err := exec.Command("python3", script, dir, "busybox").CombinedOutput(); err != nil {
		t.Fatalf("make-test-images: %v\n%s", err, out)
	}
	l, err := image.OpenLayout(filepath.Join(dir, "busybox"))
	if err != nil {
		t.Fatal(err)
	}
	mdata, err := l.ReadBlob(l.Index().Manifests[0], image.MaxManifestSize)
	if err != nil {
		t.Fatal(err)
	}
	mf, err := image.ParseManifest(mdata)
	if err != nil {
		t.Fatal(err)
	}
	cdata, err := l.ReadBlob(mf.Config, image.MaxConfigSize)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := image.ParseConfig(cdata)
	if err != nil {
		t.Fatal(err)
	}
	d := mf.Layers[0].Digest
	return filepath.Join(dir, "busybox", "blobs", d.Algorithm().String(), d.Encoded()), cfg.RootFS.DiffIDs[0]
}

func openStore(t *testing.T, root string) *Store {
	t.Helper()
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
