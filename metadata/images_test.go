package metadata

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakeClock makes db.now return t, moved by the test.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func useFakeClock(db *DB) *fakeClock {
	c := &fakeClock{t: time.Unix(1_700_000_000, 123)}
	db.now = c.now
	return c
}

func TestImageCRUD(t *testing.T) {
	ctx := testContext(t)
	db := openTestDB(t)
	clock := useFakeClock(db)

	target := testDescriptor("manifest one")
	target.Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"}
	target.Annotations = map[string]string{"org.opencontainers.image.ref.name": "latest"}
	img := Image{Name: "docker.io/library/busybox:latest", Target: target, Labels: map[string]string{"a": "1"}}
	if err := db.PutImage(ctx, img); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetImage(ctx, img.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != img.Name || !reflect.DeepEqual(got.Target, target) || !reflect.DeepEqual(got.Labels, img.Labels) {
		t.Fatalf("GetImage = %+v, want %+v", got, img)
	}
	if !got.CreatedAt.Equal(clock.t) || !got.UpdatedAt.Equal(clock.t) {
		t.Fatalf("times = %v, %v; want %v", got.CreatedAt, got.UpdatedAt, clock.t)
	}
	created := clock.t

	// Update: new target and labels, CreatedAt kept.
	clock.t = clock.t.Add(time.Hour)
	target2 := testDescriptor("manifest two")
	if err := db.PutImage(ctx, Image{Name: img.Name, Target: target2}); err != nil {
		t.Fatal(err)
	}
	got, err = db.GetImage(ctx, img.Name)
	if err != nil {
		t.Fatal(err)
	}
	if got.Target.Digest != target2.Digest || len(got.Labels) != 0 {
		t.Fatalf("after update: %+v", got)
	}
	if !got.CreatedAt.Equal(created) || !got.UpdatedAt.Equal(clock.t) {
		t.Fatalf("after update: created %v updated %v; want %v, %v", got.CreatedAt, got.UpdatedAt, created, clock.t)
	}

	// More images, listed sorted by name, some sharing a target.
	for _, name := range []string{"zeta:1", "alpha:1", "alpha:2"} {
		if err := db.PutImage(ctx, Image{Name: name, Target: target}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := db.ListImages(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if names := imageNames(all); !reflect.DeepEqual(names, []string{"alpha:1", "alpha:2", "docker.io/library/busybox:latest", "zeta:1"}) {
		t.Fatalf("ListImages = %v", names)
	}
	some, err := db.ListImages(ctx, func(i Image) bool { return strings.HasPrefix(i.Name, "alpha") })
	if err != nil || !reflect.DeepEqual(imageNames(some), []string{"alpha:1", "alpha:2"}) {
		t.Fatalf("ListImages(filter) = %v, %v", imageNames(some), err)
	}
	tags, err := db.ImagesByTarget(ctx, target.Digest)
	if err != nil || !reflect.DeepEqual(imageNames(tags), []string{"alpha:1", "alpha:2", "zeta:1"}) {
		t.Fatalf("ImagesByTarget = %v, %v", imageNames(tags), err)
	}
	none, err := db.ImagesByTarget(ctx, digest.FromString("nothing"))
	if err != nil || len(none) != 0 {
		t.Fatalf("ImagesByTarget(unknown) = %v, %v", imageNames(none), err)
	}

	// Delete.
	if err := db.DeleteImage(ctx, "alpha:1"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.GetImage(ctx, "alpha:1"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"alpha:1"`) {
		t.Fatalf("GetImage of a deleted image: %v, want ErrNotFound naming it", err)
	}
	if err := db.DeleteImage(ctx, "alpha:1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second DeleteImage: %v, want ErrNotFound", err)
	}
	all, _ = db.ListImages(ctx, nil)
	if len(all) != 3 {
		t.Fatalf("%d images after delete, want 3", len(all))
	}
}

func TestPutImageRefusesBadInput(t *testing.T) {
	ctx := testContext(t)
	db := openTestDB(t)
	if err := db.PutImage(ctx, Image{Target: testDescriptor("x")}); err == nil {
		t.Error("empty name accepted")
	}
	bad := testDescriptor("x")
	bad.Digest = "sha256:nothex"
	if err := db.PutImage(ctx, Image{Name: "a", Target: bad}); err == nil {
		t.Error("invalid target digest accepted")
	}
	if err := db.PutImage(ctx, Image{Name: "a", Target: ocispec.Descriptor{Digest: digest.FromString("x"), Size: 1}}); err == nil {
		t.Error("target without media type accepted")
	}
	if all, _ := db.ListImages(ctx, nil); len(all) != 0 {
		t.Fatalf("refused images were recorded: %v", imageNames(all))
	}
}

func TestCancelledContext(t *testing.T) {
	db := openTestDB(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := db.PutImage(ctx, Image{Name: "a", Target: testDescriptor("a")}); !errors.Is(err, context.Canceled) {
		t.Fatalf("PutImage with a cancelled context: %v", err)
	}
}

func imageNames(imgs []Image) []string {
	names := []string{}
	for _, i := range imgs {
		names = append(names, i.Name)
	}
	return names
}
