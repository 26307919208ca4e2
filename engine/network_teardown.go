package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/containers"
	"github.com/berth-project/berth/internal/flock"
	"github.com/berth-project/berth/metadata"
	"github.com/berth-project/berth/network"
)

// A --rm container that published no ports has its network torn down
// (CNI DEL of the bridge and host-local plugins, the veth's deletion, the
// netns's unmount) by a detached berth process after its removal, so
// that `run --rm` returns when the container is gone, not when its
// network is. A marker RUNROOT/network/pending/ID, written before the
// container's record goes and removed after the teardown, holds the
// process that does it (pid and start time): any later start, ps or
// network rm finishes a teardown whose process died (from libcni's
// cache, as after a crash). Containers that published ports are torn down
// at once: their host ports must be free when `run` returns.
//
// A teardown process stays for teardownLinger after its last teardown
// and takes those that other runs hand it (the worker): containers run
// one after another then cost one berth process's start-up (15 ms of CPU
// here) for all their teardowns, not one each. RUNROOT/network/
// teardown.worker names the worker; a run hands a teardown off by
// writing its marker to name the worker, and keeps it only if the worker
// file still names the worker afterwards: a worker removes that file
// before its last look for markers that name it, so a marker written
// while the file named it is seen. Teardowns are serialised by the lock
// RUNROOT/network/teardown.lock, and one whose marker is gone is done.

// crashBeforeTeardownEnv, set, makes teardownLater stop after writing
// the marker, as if berth died there: tests use it to see a later
// command finish the teardown.
const crashBeforeTeardownEnv = "BERTH_TEST_CRASH_BEFORE_TEARDOWN"

// pendingDir holds the markers of network teardowns in progress.
func pendingDir(runRoot string) string { return filepath.Join(runRoot, "network", "pending") }

// asyncTeardown reports whether c's network may be torn down after it is
// gone.
func asyncTeardown(c *containers.Container) bool {
	return c.HostConfig.AutoRemove && c.NetworkSettings != nil && len(c.NetworkSettings.Ports) == 0 &&
		len(c.NetworkSettings.Networks) > 0
}

// teardownLinger is how long a teardown process waits for hand-offs
// after its last teardown.
const teardownLinger = time.Second

func teardownWorkerFile(runRoot string) string {
	return filepath.Join(runRoot, "network", "teardown.worker")
}

func teardownLockFile(runRoot string) string {
	return filepath.Join(runRoot, "network", "teardown.lock")
}

// teardownLater hands c's network teardown to the live teardown worker,
// or starts a detached process for it. When it cannot, the caller tears
// down at once.
func (s *Store) teardownLater(c *containers.Container) error {
	exe, err := s.exe()
	if err != nil {
		return err
	}
	dir := pendingDir(s.runRoot)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	marker := filepath.Join(dir, c.ID)
	self, err := metadata.OwnerOf(os.Getpid())
	if err != nil {
		return err
	}
	if err := writeFileAtomic(marker, ownerBytes(self), 0o600); err != nil {
		return err
	}
	if os.Getenv(crashBeforeTeardownEnv) != "" {
		return nil // as if berth died here: the marker is all that is left
	}
	if handOffTeardown(s.runRoot, marker, self) {
		return nil
	}
	cmd := exec.Command(exe, "--root", s.root, "--runroot", s.runRoot, "container", "teardown-network", "--serve", c.ID)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/" // it outlives this command: pin no directory
	if err := cmd.Start(); err != nil {
		os.Remove(marker)
		return fmt.Errorf("start network teardown: %w", err)
	}
	// The marker names the child from now on (unless it is done
	// already: then a stale marker costs a later command an empty DEL).
	if child, err := metadata.OwnerOf(cmd.Process.Pid); err == nil {
		if _, err := os.Stat(marker); err == nil {
			writeFileAtomic(marker, ownerBytes(child), 0o600)
		}
	}
	return cmd.Process.Release()
}

// handOffTeardown makes the live teardown worker, if any, the owner of
// marker (which names self) and reports whether it took it.
func handOffTeardown(runRoot, marker string, self metadata.Owner) bool {
	wf := teardownWorkerFile(runRoot)
	b, err := os.ReadFile(wf)
	if err != nil {
		return false
	}
	w := parseOwner(b)
	if w == self || !w.Alive() {
		return false
	}
	if err := writeFileAtomic(marker, ownerBytes(w), 0o600); err != nil {
		return false
	}
	if b, err := os.ReadFile(wf); err == nil && parseOwner(b) == w {
		return true // the worker's last look comes after the marker
	}
	// The worker is leaving and may not see the marker: it is the
	// caller's again (a teardown the worker did meanwhile is done twice,
	// the second time with nothing to delete).
	writeFileAtomic(marker, ownerBytes(self), 0o600)
	return false
}

func ownerBytes(o metadata.Owner) []byte {
	return []byte(strconv.Itoa(o.PID) + " " + strconv.FormatUint(o.Start, 10) + "\n")
}

func parseOwner(b []byte) metadata.Owner {
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return metadata.Owner{}
	}
	pid, _ := strconv.Atoi(f[0])
	start, _ := strconv.ParseUint(f[1], 10, 64)
	return metadata.Owner{PID: pid, Start: start}
}

// FinishNetworkTeardown tears down the network of the container id
// (CNI DEL from libcni's cache, then the netns) for the store at root and
// runRoot and removes its pending marker: the work of the process
// teardownLater starts. It needs neither the container's record (gone)
// nor the store's database. With serve, it then stays as the teardown
// worker while runs hand it teardowns (see teardownLater).
func FinishNetworkTeardown(ctx context.Context, root, runRoot, id string, serve bool) error {
	if runRoot == "" {
		runRoot = DefaultRunRoot
	}
	err := finishTeardown(ctx, root, runRoot, id)
	if serve {
		serveTeardowns(ctx, root, runRoot)
	}
	return err
}

// serveTeardowns makes this process the teardown worker, unless another
// lives, and finishes the teardowns handed to it until none came for
// teardownLinger.
func serveTeardowns(ctx context.Context, root, runRoot string) {
	self, err := metadata.OwnerOf(os.Getpid())
	if err != nil {
		return
	}
	wf := teardownWorkerFile(runRoot)
	if b, err := os.ReadFile(wf); err == nil && parseOwner(b).Alive() {
		return
	}
	if err := writeFileAtomic(wf, ownerBytes(self), 0o600); err != nil {
		return
	}
	failed := map[string]bool{}
	last := time.Now()
	for time.Since(last) < teardownLinger {
		if finishHandedOff(ctx, root, runRoot, self, failed) > 0 {
			last = time.Now()
			continue
		}
		time.Sleep(20 * time.Millisecond)
	}
	if b, err := os.ReadFile(wf); err == nil && parseOwner(b) == self {
		os.Remove(wf)
	}
	finishHandedOff(ctx, root, runRoot, self, failed) // those handed off before the removal
}

// finishHandedOff finishes the teardowns whose markers name owner, but
// for those that failed before (their markers stay, for a later command
// to retry once owner is gone), and returns how many it did.
func finishHandedOff(ctx context.Context, root, runRoot string, owner metadata.Owner, failed map[string]bool) int {
	entries, err := os.ReadDir(pendingDir(runRoot))
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		id := e.Name()
		if strings.HasPrefix(id, ".") || failed[id] {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(pendingDir(runRoot), id)); err != nil || parseOwner(b) != owner {
			continue
		}
		n++
		if err := finishTeardown(ctx, root, runRoot, id); err != nil {
			failed[id] = true
			fmt.Fprintf(os.Stderr, "berth: %v\n", err)
		}
	}
	return n
}

// finishTeardown tears down container id's network and removes its
// marker, unless another process did (the marker is gone).
func finishTeardown(ctx context.Context, root, runRoot, id string) error {
	if strings.ContainsAny(id, "/.") || id == "" {
		return fmt.Errorf("invalid container id %q", id)
	}
	unlock, err := flock.Lock(teardownLockFile(runRoot), unix.LOCK_EX)
	if err != nil {
		return err
	}
	defer unlock()
	marker := filepath.Join(pendingDir(runRoot), id)
	if _, err := os.Lstat(marker); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	mgr := network.New(filepath.Join(root, "networks"), filepath.Join(runRoot, "network"), nil)
	err = mgr.Detach(context.WithoutCancel(ctx), id)
	err = errors.Join(err, network.RemoveNS(filepath.Join(runRoot, "netns", id)))
	if err != nil {
		return fmt.Errorf("container %s: network teardown: %w", id, err)
	}
	if err := os.Remove(marker); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// finishPendingTeardowns finishes the network teardowns whose process
// died (all of them, also those in progress, with all: DEL is
// idempotent). Errors are reported, not returned: a teardown that fails
// stays pending for the next command.
func (s *Store) finishPendingTeardowns(ctx context.Context, all bool) {
	entries, err := os.ReadDir(pendingDir(s.runRoot))
	if err != nil {
		return
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if !all {
			b, err := os.ReadFile(filepath.Join(pendingDir(s.runRoot), e.Name()))
			if err != nil || parseOwner(b).Alive() {
				continue
			}
		}
		if err := finishTeardown(ctx, s.root, s.runRoot, e.Name()); err != nil {
			fmt.Fprintf(os.Stderr, "berth: %v\n", err)
		}
	}
}

// teardownNetworkAfterExit is teardownNetwork for a container that
// exited: a --rm container without published ports leaves it to a
// detached process.
func (s *Store) teardownNetworkAfterExit(ctx context.Context, c *containers.Container) error {
	if asyncTeardown(c) {
		if err := s.teardownLater(c); err == nil {
			return nil
		}
	}
	return s.teardownNetwork(ctx, c)
}
