package engine

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/internal/testimage"
)

// TestSaveRoundTrip saves the layered image in each format and loads the
// result into a fresh store: same image ID, same tree, and for the OCI
// formats the same manifest digest (blobs are written as stored).
func TestSaveRoundTrip(t *testing.T) {
	images := testimage.Build(t, "layered")
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	src, err := s.LoadLayout(ctx, filepath.Join(images, "layered"), LoadOptions{Name: "example.com/team/layered:v1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{FormatDockerArchive, FormatOCIArchive, FormatOCIDir} {
		t.Run(format, func(t *testing.T) {
			dst := openStore(t, t.TempDir())
			var imgs []Loaded
			if format == FormatOCIDir {
				dir := filepath.Join(t.TempDir(), "layout")
				if err := s.SaveLayout(ctx, dir, []string{"example.com/team/layered:v1"}); err != nil {
					t.Fatalf("SaveLayout: %v", err)
				}
				if err := s.SaveLayout(ctx, dir, []string{"example.com/team/layered:v1"}); err == nil || !strings.Contains(err.Error(), "already exists") {
					t.Errorf("SaveLayout over an existing directory: %v", err)
				}
				if imgs, err = dst.LoadLayout(ctx, dir, LoadOptions{}); err != nil {
					t.Fatalf("LoadLayout: %v", err)
				}
			} else {
				var a, b bytes.Buffer
				if err := s.Save(ctx, &a, []string{"example.com/team/layered:v1"}, format); err != nil {
					t.Fatalf("Save: %v", err)
				}
				if err := s.Save(ctx, &b, []string{"example.com/team/layered:v1"}, format); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(a.Bytes(), b.Bytes()) {
					t.Error("two saves of the same image differ")
				}
				imgs = load(t, dst, a.Bytes(), LoadOptions{})
			}
			if len(imgs) != 1 || imgs[0].ID != src[0].ID || strings.Join(imgs[0].Names, ",") != "example.com/team/layered:v1" {
				t.Fatalf("loaded %+v, want ID %s named example.com/team/layered:v1", imgs, src[0].ID)
			}
			if format != FormatDockerArchive && imgs[0].Target.Digest != src[0].Target.Digest {
				t.Errorf("manifest digest %s, saved from %s", imgs[0].Target.Digest, src[0].Target.Digest)
			}
			checkLoadedTree(t, dst, images, imgs[0])
		})
	}
}

// TestSaveByIDAndErrors: an image asked by ID is saved untagged; a missing
// image and a corrupt blob fail naming them.
func TestSaveByIDAndErrors(t *testing.T) {
	images := testimage.Build(t, "busybox")
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	src, err := s.LoadLayout(ctx, filepath.Join(images, "busybox"), LoadOptions{Name: "busybox"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Save(ctx, &buf, []string{src[0].ID.Encoded()[:12]}, FormatDockerArchive); err != nil {
		t.Fatal(err)
	}
	imgs := load(t, openStore(t, t.TempDir()), buf.Bytes(), LoadOptions{})
	if len(imgs) != 1 || len(imgs[0].Names) != 0 || imgs[0].ID != src[0].ID {
		t.Errorf("saved by ID and loaded: %+v, want untagged %s", imgs, src[0].ID)
	}

	if err := s.Save(ctx, &buf, []string{"nosuch:image"}, FormatDockerArchive); err == nil || !strings.Contains(err.Error(), "nosuch") {
		t.Errorf("Save of a missing image: %v", err)
	}
	if err := s.Save(ctx, &buf, []string{"busybox"}, "tarball"); err == nil || !strings.Contains(err.Error(), `"tarball"`) {
		t.Errorf("Save in an unknown format: %v", err)
	}

	// Corrupt the layer blob in the store: both formats must refuse it.
	img, err := s.Get(ctx, "busybox")
	if err != nil {
		t.Fatal(err)
	}
	data, err := s.readBlob(img.Target, image.MaxManifestSize)
	if err != nil {
		t.Fatal(err)
	}
	mf, err := image.ParseManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	layer := filepath.Join(s.Root(), "content", "blobs", "sha256", mf.Layers[0].Digest.Encoded())
	blob, err := os.ReadFile(layer)
	if err != nil {
		t.Fatal(err)
	}
	blob[len(blob)/2] ^= 0xff
	os.Chmod(layer, 0o644)
	if err := os.WriteFile(layer, blob, 0o444); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{FormatDockerArchive, FormatOCIArchive} {
		err := s.Save(ctx, &buf, []string{"busybox"}, format)
		if err == nil || !strings.Contains(err.Error(), mf.Layers[0].Digest.Encoded()) {
			t.Errorf("%s: Save of a corrupt layer: %v, want an error naming it", format, err)
		}
	}
}
