package engine

import (
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/internal/testimage"
)

// busyboxLayer writes the busybox test image and returns the path of its
// (gzip) layer blob and the layer's diff ID from the image config.
func busyboxLayer(t *testing.T) (string, digest.Digest) {
	t.Helper()
	return testimage.Layer(t, filepath.Join(testimage.Build(t, "busybox"), "busybox"), 0)
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
