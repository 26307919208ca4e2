package engine

import (
	"context"
	"slices"
	"testing"
)

func TestDiskUsage(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	du, err := s.DiskUsage(ctx)
	if err != nil || len(du.Images) != 0 || du.ImagesSize != 0 || du.ContentSize != 0 {
		t.Fatalf("empty store: %+v, %v", du, err)
	}

	layer := writeTestTar(t, map[string]string{"etc/a": "aaaa"})
	a := importFile(t, s, layer, "a")
	a2 := importFile(t, s, layer, "c", "ENV X=1") // shares a's layer blob and snapshot
	dangling := importFile(t, s, writeTestTar(t, map[string]string{"etc/b": "b"}), "")
	if err := s.Tag(ctx, "a", "z"); err != nil {
		t.Fatal(err)
	}

	du, err = s.DiskUsage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	blobs, snaps := storeBytes(t, s)
	// Everything in the store belongs to an image, counted once.
	if du.ContentSize != blobs || du.SnapshotsSize != snaps || du.ImagesSize != blobs+snaps || du.ImagesReclaimable != du.ImagesSize || du.ImagesActive != 0 {
		t.Errorf("usage %+v; store has %d bytes of blobs, %d of snapshots", du, blobs, snaps)
	}
	if len(du.Images) != 3 || du.Images[0].ID != a || du.Images[1].ID != a2 || du.Images[2].ID != dangling ||
		!slices.Equal(du.Images[0].Names, []string{"docker.io/library/a:latest", "docker.io/library/z:latest"}) || len(du.Images[2].Names) != 0 {
		t.Fatalf("images %+v", du.Images)
	}
	var sum int64
	for _, img := range du.Images {
		sum += img.UniqueSize()
	}
	shared := du.Images[0].SharedSize
	if shared <= 0 || du.Images[1].SharedSize != shared || du.Images[2].SharedSize != 0 || sum+shared != du.ImagesSize {
		t.Errorf("shared %d, unique sum %d, total %d: %+v", shared, sum, du.ImagesSize, du.Images)
	}

	// With a's image in use, its layer is not reclaimable, a2's config and
	// manifest are.
	du2, err := s.DiskUsage(ctx, WithImageUse(usedBy{a: 2}))
	if err != nil {
		t.Fatal(err)
	}
	if du2.ImagesActive != 1 || du2.Images[0].Containers != 2 ||
		du2.ImagesReclaimable != du.ImagesSize-du.Images[0].Size {
		t.Errorf("with a in use: %+v", du2)
	}
}
