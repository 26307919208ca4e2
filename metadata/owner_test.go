package metadata

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-project/berth/content"
	"github.com/berth-project/berth/snapshot"
)

// ownedLeaseHelper is a load killed in the middle: it creates a lease owned
// by this process, writes part of an ingest (held open) and prepares an
// extract snapshot labelled with the lease, says "ready" and waits to be
// killed.
func ownedLeaseHelper(ctx context.Context, dbPath, store, lease string) error {
	db, err := Open(dbPath)
	if err != nil {
		return err
	}
	cs, err := content.Open(filepath.Join(store, "content"))
	if err != nil {
		return err
	}
	sn, err := snapshot.NewNative(filepath.Join(store, "snapshots"))
	if err != nil {
		return err
	}
	if err := db.CreateLease(ctx, lease, 24*time.Hour, WithOwner()); err != nil {
		return err
	}
	ref, key := lease+"-layer", "extract-"+lease+"-sha256:chain"
	if err := db.AddLeaseResource(ctx, lease, ResourceIngest, ref); err != nil {
		return err
	}
	if err := db.AddLeaseResource(ctx, lease, ResourceSnapshot, "sha256:chain"); err != nil {
		return err
	}
	w, err := cs.Writer(ref, "", 0)
	if err != nil {
		return err
	}
	if _, err := w.Write(bytes.Repeat([]byte("half a layer "), 1000)); err != nil {
		return err
	}
	if _, err := sn.Prepare(key, "", snapshot.WithLabels(map[string]string{LeaseLabel: lease})); err != nil {
		return err
	}
	fmt.Println("ready")
	time.Sleep(time.Minute)
	return fmt.Errorf("not killed")
}

func TestParseStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100\n"
	start, state, err := parseStat([]byte(line))
	if err != nil || start != 987654 || state != 'S' {
		t.Fatalf("parseStat = %d %c %v, want 987654 S", start, state, err)
	}
	for _, bad := range []string{"", "12 (x", "12 (x) S 1 2", "12 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 y"} {
		if _, _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) accepted", bad)
		}
	}
}

func TestOwnerAlive(t *testing.T) {
	self, err := selfOwner()
	if err != nil {
		t.Fatal(err)
	}
	if self.PID != os.Getpid() || self.Start == 0 || !self.Alive() {
		t.Fatalf("self = %+v, alive %v", self, self.Alive())
	}
	// The same pid with another start time is a later process.
	if (Owner{PID: self.PID, Start: self.Start + 1}).Alive() {
		t.Error("owner with another start time is alive")
	}
	// A process that has exited and been reaped.
	cmd := helperCommand(t, "no-such-mode")
	cmd.Run()
	if (Owner{PID: cmd.Process.Pid, Start: self.Start}).Alive() {
		t.Errorf("exited process %d is alive", cmd.Process.Pid)
	}
	if (Owner{}).Alive() {
		t.Error("pid 0 is alive")
	}
}

// TestOwnedLeaseOfKilledProcess SIGKILLs a process in the middle of a load
// (an owned lease, an ingest, an extract snapshot): its lease counts as
// expired at once, and garbage collection removes the lease, the ingest
// and the snapshot, but neither the live lease's nor a container's.
func TestOwnedLeaseOfKilledProcess(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "metadata.db")
	store := filepath.Join(dir, "store")

	cmd := helperCommand(t, "owned-lease", envDB+"="+dbPath, envStore+"="+store, envPrefix+"=load-1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); strings.TrimSpace(line) != "ready" {
		t.Fatalf("helper said %q; stderr:\n%s", line, stderr.String())
	}

	db, err := Open(dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	cs, err := content.Open(filepath.Join(store, "content"))
	if err != nil {
		t.Fatal(err)
	}
	sn, err := snapshot.NewNative(filepath.Join(store, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })

	// While the owner runs, its lease is live and protects its work.
	leases, err := db.ListLeases(ctx)
	if err != nil || len(leases) != 1 || leases[0].Owner == nil || leases[0].Owner.PID != cmd.Process.Pid {
		t.Fatalf("leases = %+v, %v; want one owned by pid %d", leases, err, cmd.Process.Pid)
	}
	if leases[0].Expired(time.Now()) {
		t.Fatal("the running owner's lease is expired")
	}
	res, err := db.CollectGarbage(ctx, cs, sn)
	if err != nil || len(res.Leases)+len(res.Ingests)+len(res.Snapshots) != 0 {
		t.Fatalf("collection during the load removed %+v, %v", res, err)
	}

	// A live load of this process and a container's root, which must stay.
	if err := db.CreateLease(ctx, "load-2", 24*time.Hour, WithOwner()); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Prepare("extract-load-2-sha256:other", "", snapshot.WithLabels(map[string]string{LeaseLabel: "load-2"})); err != nil {
		t.Fatal(err)
	}
	if _, err := sn.Prepare("container-root", ""); err != nil {
		t.Fatal(err)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	leases, err = db.ListLeases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leases {
		if want := l.ID == "load-1"; l.Expired(time.Now()) != want {
			t.Errorf("lease %s: Expired = %v, want %v", l.ID, !want, want)
		}
	}
	if err := db.AddLeaseResource(ctx, "load-1", ResourceIngest, "more"); err == nil {
		t.Error("AddLeaseResource to the dead owner's lease succeeded")
	}

	// A dry run reports what the collection then removes.
	dry, err := db.CollectGarbage(ctx, cs, sn, DryRun())
	if err != nil {
		t.Fatal(err)
	}
	res, err = db.CollectGarbage(ctx, cs, sn)
	if err != nil {
		t.Fatal(err)
	}
	want := GCResult{Leases: []string{"load-1"}, Ingests: []string{"load-1-layer"}, Snapshots: []string{"extract-load-1-sha256:chain"}}
	for _, r := range []GCResult{dry, res} {
		if !slices.Equal(r.Leases, want.Leases) || !slices.Equal(r.Ingests, want.Ingests) || !slices.Equal(r.Snapshots, want.Snapshots) || len(r.Blobs) != 0 || r.BytesFreed < 13000 {
			t.Errorf("collection = %+v, want %+v", r, want)
		}
	}
	if ings, _ := cs.ListIngests(); len(ings) != 0 {
		t.Errorf("ingests left: %+v", ings)
	}
	var keys []string
	sn.Walk(func(i snapshot.Info) error { keys = append(keys, i.Key); return nil })
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"container-root", "extract-load-2-sha256:other"}) {
		t.Errorf("snapshots left %v", keys)
	}
	if res, err := db.CollectGarbage(ctx, cs, sn); err != nil || len(res.Leases)+len(res.Ingests)+len(res.Snapshots) != 0 {
		t.Errorf("second collection removed %+v, %v", res, err)
	}
}

// TestLeaseOfRecycledPID records this process as owner with another start
// time, as if its pid had been reused: the lease is dead.
func TestLeaseOfRecycledPID(t *testing.T) {
	ctx := testContext(t)
	db := openTestDB(t)
	if err := db.CreateLease(ctx, "old", time.Hour, WithOwner()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.Exec(`UPDATE leases SET owner_start = owner_start - 1 WHERE id = 'old'`); err != nil {
		t.Fatal(err)
	}
	leases, err := db.ListLeases(ctx)
	if err != nil || len(leases) != 1 || leases[0].Owner.PID != os.Getpid() || !leases[0].Expired(time.Now()) {
		t.Fatalf("leases = %+v, %v; want one expired lease of pid %d", leases, err, os.Getpid())
	}
}

// TestLabelledSnapshotOfUnknownLease: an extract snapshot whose lease is
// not in the database is removed if it is older than the collection (its
// lease was deleted), kept if newer (its lease may be newer than the
// collection's roots).
func TestLabelledSnapshotOfUnknownLease(t *testing.T) {
	ctx := testContext(t)
	db := openTestDB(t)
	clock := useFakeClock(db)
	cs, err := content.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sn, err := snapshot.NewNative(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	if _, err := sn.Prepare("extract-gone", "", snapshot.WithLabels(map[string]string{LeaseLabel: "gone"})); err != nil {
		t.Fatal(err)
	}
	clock.t = time.Now().Add(-time.Hour) // the collection ran before the snapshot was made
	res, err := db.CollectGarbage(ctx, cs, sn)
	if err != nil || len(res.Snapshots) != 0 {
		t.Fatalf("collection older than the snapshot removed %v, %v", res.Snapshots, err)
	}
	clock.t = time.Now().Add(time.Second)
	res, err = db.CollectGarbage(ctx, cs, sn)
	if err != nil || !slices.Equal(res.Snapshots, []string{"extract-gone"}) {
		t.Fatalf("collection removed %v, %v; want extract-gone", res.Snapshots, err)
	}
}

// TestMigrateLeasesFromVersion1 opens a version 1 database holding a lease:
// migration 2 adds the owner columns and the lease reads back unowned.
func TestMigrateLeasesFromVersion1(t *testing.T) {
	ctx := testContext(t)
	path := filepath.Join(t.TempDir(), "metadata.db")
	orig := migrations
	t.Cleanup(func() { migrations = orig })
	migrations = orig[:1]
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.w.Exec(`INSERT INTO leases (id, created_at, expires_at) VALUES ('v1', 1, NULL)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	migrations = orig

	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if v := schemaVersionOf(t, db); v != SchemaVersion() {
		t.Fatalf("schema version %d, want %d", v, SchemaVersion())
	}
	leases, err := db.ListLeases(ctx)
	if err != nil || len(leases) != 1 || leases[0].ID != "v1" || leases[0].Owner != nil || leases[0].Expired(time.Now()) {
		t.Fatalf("leases after migration = %+v, %v", leases, err)
	}
	if err := db.CreateLease(ctx, "v2", time.Hour, WithOwner()); err != nil {
		t.Fatal(err)
	}
	if err := db.AddLeaseResource(ctx, "v2", ResourceIngest, "x"); err != nil {
		t.Fatalf("AddLeaseResource to a live owned lease: %v", err)
	}
}
