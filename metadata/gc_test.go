package metadata

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/content"
	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/internal/testimage"
	"github.com/berth-project/berth/snapshot"
)

// layoutImage is an image layout ingested into a content store.
type layoutImage struct {
	index    ocispec.Descriptor // index.json, stored as a blob
	manifest ocispec.Descriptor
	chains   []digest.Digest
	blobs    []digest.Digest // every blob, index.json's included
}

// ingestLayout stores every blob of the OCI layout dir, and its index.json,
// in cs.
func ingestLayout(t *testing.T, ctx context.Context, cs *content.Store, dir string) layoutImage {
	t.Helper()
	l, err := image.OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	var li layoutImage
	entries, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		rc, size, err := l.Blob(d)
		if err != nil {
			t.Fatal(err)
		}
		err = cs.Ingest(ctx, "test-"+d.String(), rc, d, size)
		rc.Close()
		if err != nil {
			t.Fatalf("ingest %s: %v", d, err)
		}
		li.blobs = append(li.blobs, d)
	}
	idx, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	li.index = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: digest.FromBytes(idx), Size: int64(len(idx))}
	if err := cs.Ingest(ctx, "test-index", bytes.NewReader(idx), li.index.Digest, li.index.Size); err != nil {
		t.Fatal(err)
	}
	li.blobs = append(li.blobs, li.index.Digest)

	li.manifest = l.Index().Manifests[0]
	mb, err := l.ReadBlob(li.manifest, image.MaxManifestSize)
	if err != nil {
		t.Fatal(err)
	}
	m, err := image.ParseManifest(mb)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := l.ReadBlob(m.Config, image.MaxConfigSize)
	if err != nil {
		t.Fatal(err)
	}
	c, err := image.ParseConfig(cb)
	if err != nil {
		t.Fatal(err)
	}
	li.chains = image.ChainIDs(c.RootFS.DiffIDs)
	if len(li.chains) == 0 || len(li.blobs) < 4 {
		t.Fatalf("layout %s: %d layers, %d blobs", dir, len(li.chains), len(li.blobs))
	}
	return li
}

// commitChain creates committed snapshots named by chains, each on the
// previous one, as an unpack would, skipping those that exist.
func commitChain(t *testing.T, sn snapshot.Snapshotter, parent string, chains ...string) {
	t.Helper()
	for _, c := range chains {
		if _, err := sn.Stat(c); err == nil {
			parent = c // shared with an image unpacked before
			continue
		}
		key := "extract-" + c
		if _, err := sn.Prepare(key, parent); err != nil {
			t.Fatalf("prepare %s on %q: %v", key, parent, err)
		}
		if err := sn.Commit(c, key); err != nil {
			t.Fatalf("commit %s: %v", c, err)
		}
		parent = c
	}
}

func putBlob(t *testing.T, ctx context.Context, cs *content.Store, s string) digest.Digest {
	t.Helper()
	d := digest.FromString(s)
	if err := cs.Ingest(ctx, "put-"+s, strings.NewReader(s), d, int64(len(s))); err != nil {
		t.Fatal(err)
	}
	return d
}

func chainKeys(ds []digest.Digest) []string {
	var keys []string
	for _, d := range ds {
		keys = append(keys, d.String())
	}
	return keys
}

func TestCollectGarbage(t *testing.T) {
	ctx := testContext(t)
	images := testimage.Build(t, "busybox", "layered")
	root := t.TempDir()
	cs, err := content.Open(filepath.Join(root, "content"))
	if err != nil {
		t.Fatal(err)
	}
	sn, err := snapshot.NewNative(filepath.Join(root, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	db := openTestDB(t)
	clock := useFakeClock(db)
	clock.t = time.Now()

	// busybox: recorded as an image, by its index; its layers unpacked.
	busybox := ingestLayout(t, ctx, cs, filepath.Join(images, "busybox"))
	if err := db.PutImage(ctx, Image{Name: "busybox:latest", Target: busybox.index}); err != nil {
		t.Fatal(err)
	}
	commitChain(t, sn, "", chainKeys(busybox.chains)...)

	// layered: a pull in progress, protected only by a lease naming its
	// manifest (config, layers and snapshots are reached from it).
	layered := ingestLayout(t, ctx, cs, filepath.Join(images, "layered"))
	if err := db.CreateLease(ctx, "pull-layered", 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := db.AddLeaseResource(ctx, "pull-layered", ResourceContent, layered.manifest.Digest.String()); err != nil {
		t.Fatal(err)
	}
	commitChain(t, sn, "", chainKeys(layered.chains)...)
	// layered's index.json blob is referenced by nothing.
	wantBlobsGone := []digest.Digest{layered.index.Digest}

	// A blob, a snapshot and an ingest protected by a lease that never
	// expires.
	leasedBlob := putBlob(t, ctx, cs, "leased blob")
	commitChain(t, sn, "", "leased-snapshot")
	if err := db.CreateLease(ctx, "keep", 0); err != nil {
		t.Fatal(err)
	}
	for _, r := range []Resource{{ResourceContent, leasedBlob.String()}, {ResourceSnapshot, "leased-snapshot"}, {ResourceIngest, "leased-ingest"}} {
		if err := db.AddLeaseResource(ctx, "keep", r.Kind, r.Key); err != nil {
			t.Fatal(err)
		}
	}

	// A blob protected by a lease that expires in 30 minutes.
	expiringBlob := putBlob(t, ctx, cs, "expiring blob")
	if err := db.CreateLease(ctx, "expiring", 30*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := db.AddLeaseResource(ctx, "expiring", ResourceContent, expiringBlob.String()); err != nil {
		t.Fatal(err)
	}

	// Unreferenced: a blob, and two committed snapshots (a child on a
	// parent, both unreferenced).
	orphanBlob := putBlob(t, ctx, cs, "orphan blob")
	wantBlobsGone = append(wantBlobsGone, orphanBlob)
	commitChain(t, sn, "", "orphan-parent", "orphan-child")

	// A committed snapshot referenced only as the parent of a
	// container's active snapshot, and a view.
	commitChain(t, sn, "", "container-base")
	if _, err := sn.Prepare("container-rootfs", "container-base"); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.View("a-view", ""); err != nil {
		t.Fatal(err)
	}

	// Ingests: one abandoned, one leased, one held by a Writer.
	for _, ref := range []string{"abandoned-ingest", "leased-ingest"} {
		w, err := cs.Writer(ref, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("partial " + ref))
		w.Close()
	}
	held, err := cs.Writer("held-ingest", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	held.Write([]byte("in progress"))
	defer held.Close()

	// First collection, now: the expiring lease still protects its blob
	// and the abandoned ingest is within its grace period.
	res, err := db.CollectGarbage(ctx, cs, sn)
	if err != nil {
		t.Fatalf("CollectGarbage: %v", err)
	}
	slices.Sort(wantBlobsGone)
	slices.Sort(res.Blobs)
	if !slices.Equal(res.Blobs, wantBlobsGone) {
		t.Errorf("removed blobs %v, want %v", res.Blobs, wantBlobsGone)
	}
	if !slices.Equal(res.Snapshots, []string{"orphan-child", "orphan-parent"}) {
		t.Errorf("removed snapshots %v, want orphan-child then orphan-parent", res.Snapshots)
	}
	if len(res.Ingests) != 0 || len(res.Leases) != 0 {
		t.Errorf("removed ingests %v and leases %v, want none", res.Ingests, res.Leases)
	}
	if want := int64(len("orphan blob")) + layered.index.Size; res.BytesFreed < want {
		t.Errorf("BytesFreed = %d, want at least %d", res.BytesFreed, want)
	}

	// Second collection, two hours later: the expiring lease is gone
	// and so is its blob; the abandoned ingest is removed.
	clock.t = clock.t.Add(2 * time.Hour)
	res, err = db.CollectGarbage(ctx, cs, sn)
	if err != nil {
		t.Fatalf("second CollectGarbage: %v", err)
	}
	if !slices.Equal(res.Blobs, []digest.Digest{expiringBlob}) || len(res.Snapshots) != 0 ||
		!slices.Equal(res.Ingests, []string{"abandoned-ingest"}) || !slices.Equal(res.Leases, []string{"expiring"}) {
		t.Errorf("second collection removed %+v; want blob %s, ingest abandoned-ingest, lease expiring", res, expiringBlob)
	}
	if want := int64(len("expiring blob") + len("partial abandoned-ingest")); res.BytesFreed != want {
		t.Errorf("BytesFreed = %d, want %d", res.BytesFreed, want)
	}

	// What is left: every blob of both images (but layered's index) and
	// the leased blob, each intact.
	kept := append(slices.Clone(busybox.blobs), leasedBlob)
	for _, d := range layered.blobs {
		if d != layered.index.Digest {
			kept = append(kept, d)
		}
	}
	for _, d := range kept {
		if err := cs.Verify(d); err != nil {
			t.Errorf("kept blob %s: %v", d, err)
		}
	}
	var left []digest.Digest
	cs.Walk(func(i content.Info) error { left = append(left, i.Digest); return nil })
	if slices.Sort(kept); !slices.Equal(slices.Compact(kept), left) {
		t.Errorf("blobs left %v, want %v", left, kept)
	}
	for _, d := range []digest.Digest{orphanBlob, expiringBlob, layered.index.Digest} {
		if _, err := cs.Info(d); !errors.Is(err, content.ErrNotFound) {
			t.Errorf("removed blob %s: Info says %v", d, err)
		}
	}

	// Snapshots left: both images' chains, the leased one, the
	// container's base and rootfs, the view.
	wantSnaps := append(chainKeys(busybox.chains), chainKeys(layered.chains)...)
	wantSnaps = append(wantSnaps, "leased-snapshot", "container-base", "container-rootfs", "a-view")
	var snaps []string
	sn.Walk(func(i snapshot.Info) error { snaps = append(snaps, i.Key); return nil })
	slices.Sort(snaps)
	slices.Sort(wantSnaps)
	if !slices.Equal(snaps, slices.Compact(wantSnaps)) {
		t.Errorf("snapshots left %v, want %v", snaps, wantSnaps)
	}

	// Ingests left: the leased one and the held one.
	ingests, err := cs.ListIngests()
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, st := range ingests {
		refs = append(refs, st.Ref)
	}
	slices.Sort(refs)
	if !slices.Equal(refs, []string{"held-ingest", "leased-ingest"}) {
		t.Errorf("ingests left %v", refs)
	}

	// Nothing more to collect; then removing the image and the leases
	// frees everything but what containers use.
	res, err = db.CollectGarbage(ctx, cs, sn)
	if err != nil || len(res.Blobs)+len(res.Snapshots)+len(res.Ingests)+len(res.Leases) != 0 {
		t.Fatalf("third collection removed %+v, %v; want nothing", res, err)
	}
	if err := db.DeleteImage(ctx, "busybox:latest"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"pull-layered", "keep"} {
		if err := db.DeleteLease(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	res, err = db.CollectGarbage(ctx, cs, sn)
	if err != nil {
		t.Fatal(err)
	}
	left = nil
	cs.Walk(func(i content.Info) error { left = append(left, i.Digest); return nil })
	snaps = nil
	sn.Walk(func(i snapshot.Info) error { snaps = append(snaps, i.Key); return nil })
	slices.Sort(snaps)
	if len(left) != 0 || !slices.Equal(snaps, []string{"a-view", "container-base", "container-rootfs"}) {
		t.Errorf("after removing every root: blobs %v, snapshots %v", left, snaps)
	}
	if !slices.Contains(res.Ingests, "leased-ingest") {
		t.Errorf("the no longer leased, old ingest was kept: %+v", res)
	}
}

// TestCollectGarbageWithoutSnapshotter collects content only.
func TestCollectGarbageWithoutSnapshotter(t *testing.T) {
	ctx := testContext(t)
	cs, err := content.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	db := openTestDB(t)
	keep := putBlob(t, ctx, cs, `{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}`)
	drop := putBlob(t, ctx, cs, "drop")
	if err := db.PutImage(ctx, Image{Name: "empty", Target: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: keep, Size: 1}}); err != nil {
		t.Fatal(err)
	}
	res, err := db.CollectGarbage(ctx, cs, nil)
	if err != nil || !slices.Equal(res.Blobs, []digest.Digest{drop}) {
		t.Fatalf("CollectGarbage = %+v, %v; want %s removed", res, err, drop)
	}
	if err := cs.Verify(keep); err != nil {
		t.Fatal(err)
	}
}
