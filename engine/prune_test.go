package engine

import (
	"context"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/content"
	"github.com/berth-project/berth/snapshot"
)

// usedBy is an ImageUse with fixed container counts.
type usedBy map[digest.Digest]int

func (u usedBy) Containers(id digest.Digest) int { return u[id] }

// storeBytes returns the size of every blob and snapshot of s.
func storeBytes(t *testing.T, s *Store) (blobs, snaps int64) {
	t.Helper()
	s.cs.Walk(func(i content.Info) error { blobs += i.Size; return nil })
	s.sn.Walk(func(i snapshot.Info) error {
		size, _, err := s.sn.Usage(i.Key)
		if err != nil {
			t.Fatal(err)
		}
		snaps += size
		return nil
	})
	return blobs, snaps
}

func TestPrune(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	layer := writeTestTar(t, map[string]string{"etc/a": "a"})
	dangling := importFile(t, s, writeTestTar(t, map[string]string{"etc/d": "d"}), "")
	a := importFile(t, s, layer, "a")
	if err := s.Tag(ctx, "a", "a:2"); err != nil {
		t.Fatal(err)
	}
	used := importFile(t, s, layer, "used", "ENV X=1") // shares a's layer
	b := importFile(t, s, writeTestTar(t, map[string]string{"etc/b": "b"}), "b")

	before, _ := storeBytes(t, s)
	rep, err := s.Prune(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := storeBytes(t, s)
	if !slices.Equal(rep.Deleted, []digest.Digest{dangling}) || len(rep.Untagged) != 0 || rep.SpaceReclaimed < before-after || before <= after {
		t.Fatalf("prune = %+v (blobs %d -> %d), want %s deleted", rep, before, after, dangling)
	}
	if imgs, _ := s.Images(ctx); len(imgs) != 4 {
		t.Fatalf("%d images left, want 4", len(imgs))
	}
	// Nothing dangling left.
	if rep, err := s.Prune(ctx, false); err != nil || len(rep.Deleted)+len(rep.Untagged) != 0 || rep.SpaceReclaimed != 0 {
		t.Fatalf("second prune = %+v, %v", rep, err)
	}

	rep, err = s.Prune(ctx, true, WithImageUse(usedBy{used: 1}))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(rep.Untagged)
	wantDeleted := []digest.Digest{a, b}
	slices.Sort(wantDeleted)
	slices.Sort(rep.Deleted)
	if !slices.Equal(rep.Untagged, []string{"docker.io/library/a:2", "docker.io/library/a:latest", "docker.io/library/b:latest"}) ||
		!slices.Equal(rep.Deleted, wantDeleted) || rep.SpaceReclaimed <= 0 {
		t.Fatalf("prune -a = %+v", rep)
	}
	imgs, err := s.Images(ctx)
	if err != nil || len(imgs) != 1 || imgs[0].ID != used {
		t.Fatalf("images after prune -a: %+v, %v", imgs, err)
	}
	// The layer a shared with the used image is still unpacked.
	if rep := check(t, s, false); len(rep.Problems) != 0 {
		t.Fatalf("check after prune -a: %v", rep.Problems)
	}

	if _, err := s.Prune(ctx, true); err != nil {
		t.Fatal(err)
	}
	if blobs, snaps := storeBytes(t, s); blobs != 0 || snaps != 0 {
		t.Errorf("after pruning everything: %d bytes of blobs, %d of snapshots", blobs, snaps)
	}
}
