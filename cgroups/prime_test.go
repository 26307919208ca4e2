package cgroups

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The file PrimeMigrations writes must be the caller's own cgroup.procs:
// anything else would move berth into another cgroup.
func TestSelfProcsFileIsTheCallersCgroup(t *testing.T) {
	procs, err := selfProcsFile()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(procs, cgroupRoot+"/") || filepath.Base(procs) != "cgroup.procs" {
		t.Fatalf("selfProcsFile = %s, want a cgroup.procs under %s", procs, cgroupRoot)
	}
	b, err := os.ReadFile(procs)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(strings.Fields(string(b)), strconv.Itoa(os.Getpid())) {
		t.Fatalf("%s does not list this process (%d): %q", procs, os.Getpid(), b)
	}
}

func TestPrimeMigrationsLeavesTheCallerWhereItWas(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	before, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	stop := PrimeMigrations()
	time.Sleep(3 * primeInterval)
	stop()
	stop() // a second stop is harmless
	after, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Fatalf("/proc/self/cgroup changed:\n%s\nto\n%s", before, after)
	}
}

// primeWith writes the pid at once and keeps writing until stopped.
func TestPrimeWithWritesUntilStopped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "procs")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(os.Getpid())
	written := func() string {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for end := time.Now().Add(5 * time.Second); !ok(); {
			if time.Now().After(end) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	stop := primeWith(path)
	waitFor("the first write", func() bool { return written() == pid })
	// Cleared, the file is written again: the priming repeats.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	waitFor("a repeated write", func() bool { return written() == pid })
	stop()
	// A write under way when stop was called may still land; after
	// that, nothing.
	time.Sleep(3 * primeInterval)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * primeInterval)
	if got := written(); got != "" {
		t.Fatalf("written after stop: %q", got)
	}
}
