package metadata

/*
// The SQLite that github.com/mattn/go-sqlite3 links in: its API, declared
// here rather than included (the driver does not export its header).
typedef struct sqlite3 sqlite3;
int sqlite3_auto_extension(void (*entry)(void));
int sqlite3_db_config(sqlite3 *db, int op, ...);

#define BERTH_DBCONFIG_NO_CKPT_ON_CLOSE 1006 // SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE

static int berth_no_ckpt_on_close(sqlite3 *db, char **err, const void *api) {
	return sqlite3_db_config(db, BERTH_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)0);
}

static int berth_register_no_ckpt_on_close(void) {
	return sqlite3_auto_extension((void (*)(void))berth_no_ckpt_on_close);
}
*/
import "C"

import (
	"database/sql"
	"fmt"
	"sync"

	sqlite3 "github.com/mattn/go-sqlite3"
)

// driverName is go-sqlite3 with connectHook run on every new connection.
const driverName = "berth-sqlite3"

func init() {
	sql.Register(driverName, &sqlite3.SQLiteDriver{ConnectHook: connectHook})
}

// walAutocheckpoint is the size, in pages, past which a commit checkpoints
// the log: 128 (512 KiB) rather than SQLite's 1000. The log outlives its
// connections (noCheckpointOnClose), and the first connection of every
// process reads all of it to rebuild its index (about 0.7 ms per MiB
// here); a run --rm appends some 20 pages, so a checkpoint's fsyncs come
// about every sixth run.
const walAutocheckpoint = 128

func connectHook(c *sqlite3.SQLiteConn) error {
	if _, err := c.Exec(fmt.Sprintf("PRAGMA wal_autocheckpoint = %d", walAutocheckpoint), nil); err != nil {
		return fmt.Errorf("set wal_autocheckpoint: %w", err)
	}
	return nil
}

// noCheckpointOnClose makes every SQLite connection this process opens
// from now on close without checkpointing its write-ahead log into the
// database file. By default the last connection to close checkpoints and
// deletes the log: two fsyncs of the log and the file at the exit of
// every berth command that opened the store, and the re-creation of the
// log (and an fsync of its directory) at the next command's first write.
// Committed transactions are in the log already, durably (synchronous=
// FULL); the log is checkpointed by whichever commit finds it past the
// autocheckpoint size (walAutocheckpoint), so it stays bounded.
var noCheckpointOnClose = sync.OnceValue(func() error {
	if rc := C.berth_register_no_ckpt_on_close(); rc != 0 {
		return fmt.Errorf("register SQLite's no-checkpoint-on-close: error %d", int(rc))
	}
	return nil
})
