package metadata

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func schemaVersionOf(t *testing.T, db *DB) int {
	t.Helper()
	var v int
	if err := db.r.QueryRow(`SELECT version FROM schema_version`).Scan(&v); err != nil {
		t.Fatalf("read schema version: %v", err)
	}
	return v
}

func TestOpenFresh(t *testing.T) {
	db := openTestDB(t)
	if got := schemaVersionOf(t, db); got != SchemaVersion() || got < 1 {
		t.Fatalf("schema version %d, want %d", got, SchemaVersion())
	}
	var mode string
	if err := db.r.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode = %q, %v; want wal", mode, err)
	}
	var fk int
	if err := db.w.QueryRow(`PRAGMA foreign_keys`).Scan(&fk); err != nil || fk != 1 {
		t.Fatalf("foreign_keys = %d, %v; want 1", fk, err)
	}
	// Read connections refuse writes.
	if _, err := db.r.Exec(`DELETE FROM images`); err == nil {
		t.Fatal("write through a read connection succeeded")
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := testContext(t)
	path := filepath.Join(t.TempDir(), "metadata.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutImage(ctx, Image{Name: "a", Target: testDescriptor("a")}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		db, err = Open(path)
		if err != nil {
			t.Fatalf("reopen %d: %v", i, err)
		}
		var rows int
		if err := db.r.QueryRow(`SELECT count(*) FROM schema_version`).Scan(&rows); err != nil || rows != 1 {
			t.Fatalf("schema_version rows = %d, %v; want 1", rows, err)
		}
		if got := schemaVersionOf(t, db); got != SchemaVersion() {
			t.Fatalf("schema version %d after reopen, want %d", got, SchemaVersion())
		}
		img, err := db.GetImage(ctx, "a")
		if err != nil || img.Target.Digest != testDescriptor("a").Digest {
			t.Fatalf("GetImage after reopen = %+v, %v", img, err)
		}
		db.Close()
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metadata.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	future := SchemaVersion() + 1
	if _, err := db.w.Exec(`UPDATE schema_version SET version = ?`, future); err != nil {
		t.Fatal(err)
	}
	db.Close()

	_, err = Open(path)
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open of a version %d database: %v, want ErrSchemaTooNew", future, err)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("version %d", future)) || !strings.Contains(err.Error(), fmt.Sprintf("up to %d", SchemaVersion())) {
		t.Errorf("error %q does not name both versions", err)
	}
	// The refused database is left as it was.
	raw, err := sql.Open("sqlite3", dsn(path, false))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var v int
	if err := raw.QueryRow(`SELECT version FROM schema_version`).Scan(&v); err != nil || v != future {
		t.Fatalf("version after refused open = %d, %v; want %d", v, err, future)
	}
}

// TestMigrationsAtomic shows that pending migrations apply in one
// transaction: a failing statement leaves the database at its old version
// without the earlier statements' effects, and a good new migration moves
// it forward (after which the old list refuses it).
func TestMigrationsAtomic(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metadata.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()

	orig := migrations
	t.Cleanup(func() { migrations = orig })

	migrations = append(slices.Clone(orig), []string{
		`CREATE TABLE half_done (a INTEGER)`,
		`THIS IS NOT SQL`,
	})
	if _, err := Open(path); err == nil || !strings.Contains(err.Error(), "statement 1") {
		t.Fatalf("Open with a failing migration: %v, want an error naming statement 1", err)
	}
	migrations = orig
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := schemaVersionOf(t, db); got != len(orig) {
		t.Fatalf("version after a failed migration = %d, want %d", got, len(orig))
	}
	var n int
	db.r.QueryRow(`SELECT count(*) FROM sqlite_schema WHERE name = 'half_done'`).Scan(&n)
	if n != 0 {
		t.Fatal("the failed migration's first statement was kept")
	}
	db.Close()

	migrations = append(slices.Clone(orig), []string{`CREATE TABLE next_version (a INTEGER)`})
	db, err = Open(path)
	if err != nil {
		t.Fatalf("Open with a new migration: %v", err)
	}
	if got := schemaVersionOf(t, db); got != len(orig)+1 {
		t.Fatalf("version after migrating = %d, want %d", got, len(orig)+1)
	}
	db.Close()
	migrations = orig
	if _, err := Open(path); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("older berth opening the migrated database: %v, want ErrSchemaTooNew", err)
	}
}

// TestConcurrentOpenFresh opens one new database from several handles at
// once: the creation, the switch to WAL and the migration happen once and
// nobody fails.
func TestConcurrentOpenFresh(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metadata.db")
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db, err := Open(path)
			if err == nil {
				err = db.PutImage(context.Background(), Image{Name: "n" + string(rune('a'+i)), Target: testDescriptor("x")})
				db.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Open %d: %v", i, err)
		}
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	imgs, err := db.ListImages(context.Background(), nil)
	if err != nil || len(imgs) != len(errs) {
		t.Fatalf("ListImages = %d images, %v; want %d", len(imgs), err, len(errs))
	}
}

// TestVolatile: a Volatile context's write transactions run at
// synchronous=NORMAL, the others at FULL, whatever ran before on the
// connection.
func TestVolatile(t *testing.T) {
	db := openTestDB(t)
	for _, tc := range []struct {
		ctx  context.Context
		want int
	}{
		{Volatile(context.Background()), 1},
		{context.Background(), 2},
		{Volatile(context.Background()), 1},
		{context.Background(), 2},
	} {
		var got int
		err := db.update(tc.ctx, func(tx *sql.Tx) error {
			return tx.QueryRowContext(tc.ctx, "PRAGMA synchronous").Scan(&got)
		})
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("volatile %v: synchronous = %d, want %d", isVolatile(tc.ctx), got, tc.want)
		}
	}
}

// TestCloseKeepsLog: closing the last connection leaves the committed
// transactions in the write-ahead log, unsynced into the database file
// (no checkpoint, no fsyncs at exit), and a new Open reads them from it.
func TestCloseKeepsLog(t *testing.T) {
	ctx := testContext(t)
	path := filepath.Join(t.TempDir(), "metadata.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutImage(ctx, Image{Name: "logged", Target: testDescriptor("logged")}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path + "-wal"); err != nil || st.Size() == 0 {
		t.Fatalf("write-ahead log after close: %v, %v; want it kept, not empty", st, err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatalf("the database file changed at close: the log was checkpointed")
	}
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if img, err := db.GetImage(ctx, "logged"); err != nil || img.Target.Digest != testDescriptor("logged").Digest {
		t.Fatalf("GetImage after reopen = %+v, %v", img, err)
	}
}

// TestWALAutocheckpoint: every connection, writer and readers, checkpoints
// the log past walAutocheckpoint pages, which bounds what the next
// process's first connection reads.
func TestWALAutocheckpoint(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "metadata.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name, pool := range map[string]*sql.DB{"writer": db.w, "reader": db.r} {
		var n int
		if err := pool.QueryRow(`PRAGMA wal_autocheckpoint`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != walAutocheckpoint {
			t.Errorf("%s connection: wal_autocheckpoint %d, want %d", name, n, walAutocheckpoint)
		}
	}
}
