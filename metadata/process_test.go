package metadata

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Environment of the helper processes.
const (
	envDB     = "BERTH_METADATA_TEST_DB"
	envPrefix = "BERTH_METADATA_TEST_PREFIX"
	// envStore is the root of the content store and the native
	// snapshotter of the "owned-lease" helper.
	envStore = "BERTH_METADATA_TEST_STORE"
)

// helperImages is how many images each "writer" helper writes.
const helperImages = 50

// runHelper runs the test binary's helper mode.
func runHelper(mode string) error {
	ctx := context.Background()
	path, prefix := os.Getenv(envDB), os.Getenv(envPrefix)
	switch mode {
	case "writer":
		// Wait for the parent to start every writer (it closes stdin),
		// then write while reading everything back.
		io.Copy(io.Discard, os.Stdin)
		db, err := Open(path)
		if err != nil {
			return err
		}
		defer db.Close()
		for i := 0; i < helperImages; i++ {
			name := fmt.Sprintf("%s/image-%02d", prefix, i)
			// A lease, as a pull takes: AddLeaseResource reads
			// before it writes, in one transaction.
			if err := db.CreateLease(ctx, name, time.Hour); err != nil {
				return err
			}
			if err := db.AddLeaseResource(ctx, name, ResourceContent, testDescriptor(name).Digest.String()); err != nil {
				return err
			}
			if err := db.PutImage(ctx, Image{Name: name, Target: testDescriptor(name), Labels: map[string]string{"i": fmt.Sprint(i)}}); err != nil {
				return err
			}
			if err := db.DeleteLease(ctx, name); err != nil {
				return err
			}
			imgs, err := db.ListImages(ctx, nil)
			if err != nil {
				return err
			}
			mine := 0
			for _, img := range imgs {
				if strings.HasPrefix(img.Name, prefix+"/") {
					mine++
				}
			}
			if mine != i+1 {
				return fmt.Errorf("after writing %d images, %d of them are listed", i+1, mine)
			}
		}
		return nil
	case "opener":
		// Wait for the parent to start every opener, then open the
		// database (maybe creating it) and write once.
		io.Copy(io.Discard, os.Stdin)
		db, err := Open(path)
		if err != nil {
			return err
		}
		defer db.Close()
		return db.PutImage(ctx, Image{Name: prefix, Target: testDescriptor(prefix)})
	case "hold-tx":
		// Write in a transaction, then stop in the middle of it until
		// killed.
		db, err := Open(path)
		if err != nil {
			return err
		}
		tx, err := db.w.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for i := 0; i < 2000; i++ {
			name := fmt.Sprintf("%s/uncommitted-%04d", prefix, i)
			if _, err := tx.Exec(`INSERT INTO images (name, target, target_digest, labels, created_at, updated_at) VALUES (?, '{}', ?, '{}', 0, 0)`, name, name); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(`DELETE FROM images WHERE name NOT LIKE ?`, prefix+"/%"); err != nil {
			return err
		}
		fmt.Println("in-transaction")
		time.Sleep(30 * time.Second)
		return fmt.Errorf("not killed")
	case "loop":
		// Write images and leases as fast as possible until killed.
		db, err := Open(path)
		if err != nil {
			return err
		}
		fmt.Println("started")
		for i := 0; ; i++ {
			name := fmt.Sprintf("%s/loop-%06d", prefix, i)
			if err := db.PutImage(ctx, Image{Name: name, Target: testDescriptor(name)}); err != nil {
				return err
			}
			if err := db.CreateLease(ctx, name, time.Hour); err != nil {
				return err
			}
			if err := db.AddLeaseResource(ctx, name, ResourceIngest, name); err != nil {
				return err
			}
		}
	case "owned-lease":
		return ownedLeaseHelper(ctx, path, os.Getenv(envStore), prefix)
	}
	return fmt.Errorf("unknown helper mode %q", mode)
}

// TestTwoProcesses runs two processes that each write 50 images (each
// under a lease, as a pull does) and list all images after each write, on a database neither has created yet: all
// writes succeed (no SQLITE_BUSY escapes) and 100 images remain.
func TestTwoProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metadata.db")
	type child struct {
		stdin  io.WriteCloser
		stderr bytes.Buffer
		wait   func() error
	}
	var children []*child
	for _, prefix := range []string{"p1", "p2"} {
		cmd := helperCommand(t, "writer", envDB+"="+path, envPrefix+"="+prefix)
		c := &child{}
		cmd.Stderr = &c.stderr
		var err error
		if c.stdin, err = cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		c.wait = cmd.Wait
		children = append(children, c)
	}
	for _, c := range children {
		c.stdin.Close() // start line
	}
	for i, c := range children {
		if err := c.wait(); err != nil {
			t.Errorf("writer %d: %v\n%s", i+1, err, c.stderr.String())
		}
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	imgs, err := db.ListImages(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2*helperImages {
		t.Fatalf("%d images, want %d", len(imgs), 2*helperImages)
	}
	for _, img := range imgs {
		if img.Target.Digest != testDescriptor(img.Name).Digest {
			t.Fatalf("image %s has target %s", img.Name, img.Target.Digest)
		}
	}
}

// TestConcurrentCreate has eight processes open a database that none has
// created yet at the same moment, over and over: each open succeeds (the
// first one creates and migrates it, the others wait for it rather than
// fail with "database is locked"), and each process's write is there.
func TestConcurrentCreate(t *testing.T) {
	const rounds, procs = 10, 8
	for round := 0; round < rounds; round++ {
		path := filepath.Join(t.TempDir(), "metadata.db")
		var stdins []io.WriteCloser
		var waits []func() error
		var stderrs []*bytes.Buffer
		for i := 0; i < procs; i++ {
			cmd := helperCommand(t, "opener", envDB+"="+path, envPrefix+"="+fmt.Sprintf("p%d", i))
			stderr := &bytes.Buffer{}
			cmd.Stderr = stderr
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			stdins, waits, stderrs = append(stdins, stdin), append(waits, cmd.Wait), append(stderrs, stderr)
		}
		for _, in := range stdins {
			in.Close()
		}
		for i, wait := range waits {
			if err := wait(); err != nil {
				t.Fatalf("round %d: opener %d: %v\n%s", round, i, err, stderrs[i])
			}
		}
		db, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		imgs, err := db.ListImages(context.Background(), nil)
		db.Close()
		if err != nil || len(imgs) != procs {
			t.Fatalf("round %d: %d images, want %d (%v)", round, len(imgs), procs, err)
		}
	}
}

// checkIntact opens the database at path and checks its integrity and
// that the images named in want are there with their targets.
func checkIntact(t *testing.T, path string, want []string) *DB {
	t.Helper()
	db, err := Open(path)
	if err != nil {
		t.Fatalf("Open after kill: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	var result string
	if err := db.w.QueryRow(`PRAGMA integrity_check`).Scan(&result); err != nil || result != "ok" {
		t.Fatalf("integrity_check = %q, %v", result, err)
	}
	var fk int
	if err := db.w.QueryRow(`SELECT count(*) FROM pragma_foreign_key_check`).Scan(&fk); err != nil || fk != 0 {
		t.Fatalf("foreign_key_check: %d violations, %v", fk, err)
	}
	ctx := context.Background()
	for _, name := range want {
		img, err := db.GetImage(ctx, name)
		if err != nil || img.Target.Digest != testDescriptor(name).Digest {
			t.Fatalf("image %s after kill: %+v, %v", name, img, err)
		}
	}
	// Still writable.
	if err := db.PutImage(ctx, Image{Name: "after-kill", Target: testDescriptor("after-kill")}); err != nil {
		t.Fatalf("PutImage after kill: %v", err)
	}
	return db
}

// startAndKill starts a helper, waits for its first line on stdout, waits
// delay more, and SIGKILLs it.
func startAndKill(t *testing.T, mode, path, prefix, ready string, delay time.Duration) {
	t.Helper()
	cmd := helperCommand(t, mode, envDB+"="+path, envPrefix+"="+prefix)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if strings.TrimSpace(line) != ready {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("helper %s said %q (%v), want %q; stderr:\n%s", mode, line, err, ready, stderr.String())
	}
	time.Sleep(delay)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("helper %s was not killed: %v\n%s", mode, err, stderr.String())
	}
}

// seedImages writes n images to a new database at path and closes it.
func seedImages(t *testing.T, path string, n int) []string {
	t.Helper()
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var names []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("seed/%d", i)
		if err := db.PutImage(context.Background(), Image{Name: name, Target: testDescriptor(name)}); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	return names
}

// TestKillInTransaction SIGKILLs a process in the middle of a write
// transaction that added 2000 images and deleted all the others: the
// database is intact and unchanged.
func TestKillInTransaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metadata.db")
	seeded := seedImages(t, path, 10)
	startAndKill(t, "hold-tx", path, "child", "in-transaction", 0)
	db := checkIntact(t, path, seeded)
	imgs, err := db.ListImages(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != len(seeded)+1 {
		t.Fatalf("%d images after the killed transaction, want %d: %v", len(imgs), len(seeded)+1, imageNames(imgs)[:min(5, len(imgs))])
	}
}

// TestKillWhileWriting SIGKILLs a process writing as fast as it can, at
// several moments: each time the database is intact, keeps what was there
// before, and every record the child committed is complete.
func TestKillWhileWriting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metadata.db")
	seeded := seedImages(t, path, 10)
	for i, delay := range []time.Duration{7 * time.Millisecond, 40 * time.Millisecond, 150 * time.Millisecond} {
		startAndKill(t, "loop", path, fmt.Sprintf("child%d", i), "started", delay)
		db := checkIntact(t, path, seeded)
		ctx := context.Background()
		imgs, err := db.ListImages(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, img := range imgs {
			if img.Target.Digest != testDescriptor(img.Name).Digest {
				t.Fatalf("image %s has target %s", img.Name, img.Target.Digest)
			}
		}
		leases, err := db.ListLeases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Each killed child may have created its last lease without
		// adding its resource yet; every other lease is complete.
		last := map[string]string{}
		for _, l := range leases {
			prefix, _, _ := strings.Cut(l.ID, "/")
			last[prefix] = max(last[prefix], l.ID)
		}
		for _, l := range leases {
			prefix, _, _ := strings.Cut(l.ID, "/")
			complete := len(l.Resources) == 1 && l.Resources[0] == Resource{ResourceIngest, l.ID}
			if !complete && !(len(l.Resources) == 0 && l.ID == last[prefix]) {
				t.Fatalf("lease %s has resources %v", l.ID, l.Resources)
			}
		}
		t.Logf("killed after %v: %d images, %d leases", delay, len(imgs), len(leases))
		db.Close()
	}
}
