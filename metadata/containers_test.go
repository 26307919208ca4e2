package metadata

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-project/berth/containers"
	"github.com/moby/moby/api/types/container"
	digest "github.com/opencontainers/go-digest"
)

func testContainer(id, name string) *containers.Container {
	return &containers.Container{ID: id, Name: name, Created: time.Now(), Image: "busybox",
		ImageID: digest.Digest("sha256:" + strings.Repeat("a", 64)), Config: &container.Config{Cmd: []string{"true"}},
		HostConfig: &container.HostConfig{}, State: containers.State{Status: containers.Created}}
}

func TestContainers(t *testing.T) {
	db := openTestDB(t)
	ctx := testContext(t)
	a := testContainer(strings.Repeat("ab", 32), "web")
	b := testContainer("abc"+strings.Repeat("0", 61), "db")
	for _, c := range []*containers.Container{a, b} {
		if err := db.CreateContainer(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	err := db.CreateContainer(ctx, testContainer(strings.Repeat("cd", 32), "web"))
	if !errors.Is(err, ErrNameInUse) || !strings.Contains(err.Error(), a.ID) {
		t.Fatalf("duplicate name: %v", err)
	}
	if err := db.CreateContainer(ctx, testContainer(a.ID, "other")); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("duplicate id: %v", err)
	}
	for ref, want := range map[string]string{"web": a.ID, "/db": b.ID, a.ID: a.ID, "abab": a.ID, "abc0": b.ID} {
		c, err := db.GetContainer(ctx, ref)
		if err != nil || c.ID != want {
			t.Fatalf("get %q: %v, %v", ref, c, err)
		}
	}
	if _, err := db.GetContainer(ctx, "ab"); !errors.Is(err, ErrAmbiguous) {
		t.Fatalf("ambiguous prefix: %v", err)
	}
	if _, err := db.GetContainer(ctx, "nothere"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "nothere") {
		t.Fatalf("missing: %v", err)
	}
	if _, err := db.UpdateContainer(ctx, "db", func(c *containers.Container) error { c.Name = "web"; return nil }); !errors.Is(err, ErrNameInUse) {
		t.Fatalf("rename onto a taken name: %v", err)
	}
	if c, err := db.GetContainer(ctx, "db"); err != nil || c.Name != "db" {
		t.Fatalf("failed rename changed the record: %v %v", c, err)
	}
	list, err := db.ListContainers(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %v %v", list, err)
	}
	n, err := db.ContainersByImage(ctx)
	if err != nil || n[a.ImageID] != 2 {
		t.Fatalf("by image: %v %v", n, err)
	}
	if err := db.DeleteContainer(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteContainer(ctx, a.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

// TestContainerUpdatesSerialize: concurrent read-modify-write updates lose
// nothing.
func TestContainerUpdatesSerialize(t *testing.T) {
	db := openTestDB(t)
	ctx := testContext(t)
	c := testContainer(strings.Repeat("ef", 32), "counter")
	if err := db.CreateContainer(ctx, c); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := db.UpdateContainer(ctx, "counter", func(c *containers.Container) error {
				c.State.RestartCount++
				return nil
			})
			if err != nil {
				errs <- fmt.Errorf("update %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, err := db.GetContainer(ctx, "counter")
	if err != nil || got.State.RestartCount != 40 {
		t.Fatalf("restart count %d, %v; want 40", got.State.RestartCount, err)
	}
}
