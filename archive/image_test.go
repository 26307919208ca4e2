package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/testimage"
)

// testImage is an OCI image read from a layout.
type testImage struct {
	layout string
	layers []ocispec.Descriptor
	config ocispec.Image
}

func readJSON(t testing.TB, p string, v any) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
}

func (img *testImage) blob(d digest.Digest) string {
	return filepath.Join(img.layout, "blobs", d.Algorithm().String(), d.Encoded())
}

func loadImage(t testing.TB, layout string) *testImage {
	t.Helper()
	img := &testImage{layout: layout}
	var index ocispec.Index
	readJSON(t, filepath.Join(layout, "index.json"), &index)
	if len(index.Manifests) != 1 {
		t.Fatalf("%s: %d manifests", layout, len(index.Manifests))
	}
	var m ocispec.Manifest
	readJSON(t, img.blob(index.Manifests[0].Digest), &m)
	readJSON(t, img.blob(m.Config.Digest), &img.config)
	img.layers = m.Layers
	if len(img.layers) != len(img.config.RootFS.DiffIDs) {
		t.Fatalf("%d layers, %d diff IDs", len(img.layers), len(img.config.RootFS.DiffIDs))
	}
	return img
}

// applyLayer applies layer i of img into dir and checks its diff ID.
func (img *testImage) applyLayer(t testing.TB, i int, dir string, opts ApplyOptions) {
	t.Helper()
	f, err := os.Open(img.blob(img.layers[i].Digest))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rc, err := DecompressStream(f)
	if err != nil {
		t.Fatalf("layer %d: %v", i, err)
	}
	defer rc.Close()
	got, err := Apply(context.Background(), dir, rc, opts)
	if err != nil {
		t.Fatalf("layer %d (%s): %v", i, img.layers[i].Digest, err)
	}
	if want := img.config.RootFS.DiffIDs[i]; got != want {
		t.Errorf("layer %d: diff ID %s, config says %s", i, got, want)
	}
}

// checkBusybox checks a few files of the busybox layer.
func checkBusybox(t *testing.T, root string) {
	t.Helper()
	for p, spec := range map[string]string{
		"bin/sh":     "symlink busybox",
		"bin/ls":     "symlink busybox",
		"tmp":        "dir 1777 0:0",
		"etc/passwd": "file 0644 0:0",
	} {
		if err := testimage.CheckEntry(root, p, spec); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	want, err := os.ReadFile("/usr/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(root, "bin/busybox")); err != nil || !bytes.Equal(got, want) {
		t.Errorf("bin/busybox: %d bytes (%v), want %d", len(got), err, len(want))
	}
}

func TestApplyLayeredImageNative(t *testing.T) {
	images := testimage.Build(t, "layered")
	img := loadImage(t, filepath.Join(images, "layered"))
	root := newRoot(t)
	for i := range img.layers {
		img.applyLayer(t, i, root, ApplyOptions{})
	}
	testimage.CheckExpect(t, root, filepath.Join(images, "layered.expect"))
	checkBusybox(t, root)
}

// mountOverlay mounts the read-only overlay of layers (lowest first) and
// unmounts it when the test ends.
func mountOverlay(t *testing.T, layers []string) string {
	t.Helper()
	lower := make([]string, len(layers))
	for i, l := range layers {
		lower[len(layers)-1-i] = l
	}
	target := t.TempDir()
	if err := unix.Mount("overlay", target, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(lower, ":")); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", target, err)
		}
	})
	return target
}

func TestApplyLayeredImageOverlay(t *testing.T) {
	images := testimage.Build(t, "layered")
	img := loadImage(t, filepath.Join(images, "layered"))
	var uppers []string
	for i := range img.layers {
		// Layer 2 hardlinks a file of layer 1: Lowers lets Apply copy it up.
		upper := newRoot(t)
		var lowers []string
		for j := len(uppers) - 1; j >= 0; j-- {
			lowers = append(lowers, uppers[j])
		}
		img.applyLayer(t, i, upper, ApplyOptions{Overlay: true, Lowers: lowers})
		uppers = append(uppers, upper)
	}
	// The last layer holds the whiteouts in overlayfs' format.
	last := uppers[len(uppers)-1]
	if st := lstat(t, filepath.Join(last, "data/gone")); st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("data/gone in the last upper: mode %#o rdev %d, want a whiteout", st.Mode, st.Rdev)
	}
	merged := mountOverlay(t, uppers)
	testimage.CheckExpect(t, merged, filepath.Join(images, "layered.expect"))
	checkBusybox(t, merged)

	// DiffOverlayUpper turns each upper back into a layer; applied in
	// native mode they give the same tree.
	t.Run("diff round trip", func(t *testing.T) {
		root := newRoot(t)
		for i, upper := range uppers {
			var buf bytes.Buffer
			if err := DiffOverlayUpper(&buf, upper); err != nil {
				t.Fatalf("layer %d: %v", i, err)
			}
			if i == len(uppers)-1 {
				for _, want := range []string{"data/.wh.gone", "data/opaque/.wh..wh..opq"} {
					if !bytes.Contains(buf.Bytes(), []byte(want)) {
						t.Errorf("diff of the last upper lacks %q", want)
					}
				}
			}
			mustApply(t, root, buf.Bytes(), ApplyOptions{})
		}
		testimage.CheckExpect(t, root, filepath.Join(images, "layered.expect"))
		checkBusybox(t, root)
	})
}
