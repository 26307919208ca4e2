package metadata

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

func TestLeaseCRUD(t *testing.T) {
	ctx := testContext(t)
	db := openTestDB(t)
	clock := useFakeClock(db)
	d1, d2 := digest.FromString("one"), digest.FromString("two")

	if err := db.CreateLease(ctx, "pull-1", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateLease(ctx, "pull-1", time.Hour); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("second CreateLease: %v, want ErrAlreadyExists", err)
	}
	if err := db.CreateLease(ctx, "forever", 0); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateLease(ctx, "neg", -time.Second); err == nil {
		t.Fatal("negative ttl accepted")
	}
	for _, r := range []Resource{{ResourceContent, d2.String()}, {ResourceContent, d1.String()}, {ResourceSnapshot, "sha256:chain"}, {ResourceIngest, "layer-x"}, {ResourceContent, d1.String()}} {
		if err := db.AddLeaseResource(ctx, "pull-1", r.Kind, r.Key); err != nil {
			t.Fatalf("AddLeaseResource %v: %v", r, err)
		}
	}
	for _, bad := range []Resource{{ResourceContent, "sha256:zz"}, {"volume", "x"}, {ResourceSnapshot, ""}, {ResourceIngest, ""}} {
		if err := db.AddLeaseResource(ctx, "pull-1", bad.Kind, bad.Key); err == nil {
			t.Errorf("AddLeaseResource %v accepted", bad)
		}
	}
	if err := db.AddLeaseResource(ctx, "nope", ResourceContent, d1.String()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("AddLeaseResource to a missing lease: %v, want ErrNotFound", err)
	}

	leases, err := db.ListLeases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := d1.String(), d2.String()
	if c2 < c1 {
		c1, c2 = c2, c1
	}
	want := []Lease{
		{ID: "forever", CreatedAt: clock.t},
		{ID: "pull-1", CreatedAt: clock.t, ExpiresAt: clock.t.Add(time.Hour), Resources: []Resource{
			{ResourceContent, c1}, {ResourceContent, c2}, {ResourceIngest, "layer-x"}, {ResourceSnapshot, "sha256:chain"},
		}},
	}
	if len(leases) != 2 || leases[0].ID != "forever" || !leases[0].ExpiresAt.IsZero() ||
		!leases[1].ExpiresAt.Equal(want[1].ExpiresAt) || !reflect.DeepEqual(leases[1].Resources, want[1].Resources) {
		t.Fatalf("ListLeases = %+v\nwant %+v", leases, want)
	}

	// Past its expiry a lease takes no more resources.
	clock.t = clock.t.Add(time.Hour)
	if !leases[1].Expired(clock.t) || leases[0].Expired(clock.t.Add(1000*time.Hour)) {
		t.Fatal("Expired is wrong")
	}
	if err := db.AddLeaseResource(ctx, "pull-1", ResourceContent, d1.String()); !errors.Is(err, ErrExpired) {
		t.Fatalf("AddLeaseResource to an expired lease: %v, want ErrExpired", err)
	}

	// Deleting a lease deletes its resources.
	if err := db.DeleteLease(ctx, "pull-1"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteLease(ctx, "pull-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second DeleteLease: %v, want ErrNotFound", err)
	}
	var n int
	if err := db.r.QueryRow(`SELECT count(*) FROM lease_resources`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d lease resources left after DeleteLease (%v)", n, err)
	}
	leases, _ = db.ListLeases(ctx)
	if len(leases) != 1 || leases[0].ID != "forever" {
		t.Fatalf("leases after delete: %+v", leases)
	}
}

// TestAddLeaseResourceWaitsForGC: while a collection holds the GC lock
// (here taken through another handle, as another process would),
// AddLeaseResource waits, and succeeds once it is released.
func TestAddLeaseResourceWaitsForGC(t *testing.T) {
	ctx := testContext(t)
	db := openTestDB(t)
	other, err := Open(db.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := db.CreateLease(ctx, "l", 0); err != nil {
		t.Fatal(err)
	}
	unlock, err := other.lockGC(ctx, unix.LOCK_EX)
	if err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = db.AddLeaseResource(short, "l", ResourceContent, digest.FromString("x").String())
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) < 150*time.Millisecond {
		t.Fatalf("AddLeaseResource during GC returned after %v: %v, want it to wait until the deadline", time.Since(start), err)
	}
	brief, cancel2 := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel2()
	if release, err := db.lockGC(brief, unix.LOCK_SH); err == nil {
		release()
		t.Fatal("shared GC lock granted while held exclusively")
	}

	done := make(chan error, 1)
	go func() { done <- db.AddLeaseResource(ctx, "l", ResourceContent, digest.FromString("x").String()) }()
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("AddLeaseResource finished during GC: %v", err)
	default:
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatalf("AddLeaseResource after GC: %v", err)
	}
	// Two shared holders do not exclude each other.
	sh1, err := db.lockGC(ctx, unix.LOCK_SH)
	if err != nil {
		t.Fatal(err)
	}
	sh2, err := other.lockGC(ctx, unix.LOCK_SH)
	if err != nil {
		t.Fatalf("second shared lock: %v", err)
	}
	sh1()
	sh2()
}
