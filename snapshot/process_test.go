package snapshot

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test binary re-executed as a helper process: it works on the root
// named by helperEnv as process helperProcEnv.
const (
	helperEnv     = "BERTH_SNAPSHOT_TEST_ROOT"
	helperProcEnv = "BERTH_SNAPSHOT_TEST_PROC"
	helperRounds  = 20
)

// runHelper prepares and commits helperRounds layers in a chain, and tries
// to prepare "shared-<i>" in every round (which the other process tries
// too), printing "shared-<i> ok" or "shared-<i> exists".
func runHelper() int {
	root, proc := os.Getenv(helperEnv), os.Getenv(helperProcEnv)
	if err := helper(root, proc); err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", proc, err)
		return 1
	}
	return 0
}

func helper(root, proc string) error {
	// Start together: wait for the go file.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(filepath.Dir(root), "go")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("no go signal")
		}
		time.Sleep(time.Millisecond)
	}
	s, err := NewOverlay(root)
	if err != nil {
		return err
	}
	defer s.Close()
	parent := ""
	for i := 0; i < helperRounds; i++ {
		key := fmt.Sprintf("p%s-active-%d", proc, i)
		mounts, err := s.Prepare(key, parent)
		if err != nil {
			return err
		}
		dir := mounts[0].Source
		for _, o := range mounts[0].Options {
			if v, ok := strings.CutPrefix(o, "upperdir="); ok {
				dir = v
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("p%s-%d", proc, i)), []byte(key), 0o644); err != nil {
			return err
		}
		name := fmt.Sprintf("p%s-layer-%d", proc, i)
		if err := s.Commit(name, key); err != nil {
			return err
		}
		parent = name
		shared := "shared-" + strconv.Itoa(i)
		switch _, err := s.Prepare(shared, ""); {
		case err == nil:
			fmt.Println(shared, "ok")
		case errors.Is(err, ErrAlreadyExists):
			fmt.Println(shared, "exists")
		default:
			return err
		}
		if _, err := s.Stat(parent); err != nil {
			return err
		}
	}
	return nil
}

func TestTwoProcesses(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	root := filepath.Join(base, "root")
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for _, proc := range []string{"0", "1"} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+root, helperProcEnv+"="+proc)
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	if err := os.WriteFile(filepath.Join(base, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	shared := map[string]int{}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper %d: %v\n%s", i, err, outs[i])
		}
		sc := bufio.NewScanner(outs[i])
		for sc.Scan() {
			if k, res, ok := strings.Cut(sc.Text(), " "); ok && res == "ok" {
				shared[k]++
			}
		}
	}
	for i := 0; i < helperRounds; i++ {
		if k := "shared-" + strconv.Itoa(i); shared[k] != 1 {
			t.Errorf("%s prepared by %d processes, want exactly 1", k, shared[k])
		}
	}

	s := newOverlay(t, root)
	infos := walkKeys(t, s)
	if len(infos) != 2*helperRounds+helperRounds {
		t.Errorf("Walk: %d snapshots, want %d: %v", len(infos), 3*helperRounds, sortedKeys(infos))
	}
	for _, proc := range []string{"0", "1"} {
		for i := 0; i < helperRounds; i++ {
			info, ok := infos[fmt.Sprintf("p%s-layer-%d", proc, i)]
			wantParent := ""
			if i > 0 {
				wantParent = fmt.Sprintf("p%s-layer-%d", proc, i-1)
			}
			if !ok || info.Kind != KindCommitted || info.Parent != wantParent {
				t.Errorf("p%s-layer-%d: %+v (found %v), want committed on %q", proc, i, info, ok, wantParent)
			}
		}
	}
	// Ids are unique: one directory per snapshot, and nothing else.
	ids := map[uint64]string{}
	err := s.(*snapshotter).ms.view(func(tx metaTx) error {
		for _, r := range tx.list() {
			if o, dup := ids[r.ID]; dup {
				t.Errorf("id %d used by %q and %q", r.ID, o, r.Key)
			}
			ids[r.ID] = r.Key
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Join(root, snapshotsDir))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(infos) || len(ids) != len(infos) {
		t.Errorf("%d directories, %d ids, %d snapshots", len(ents), len(ids), len(infos))
	}

	// Each chain mounts with all of its process's files.
	for _, proc := range []string{"0", "1"} {
		mounts, err := s.View("view-"+proc, fmt.Sprintf("p%s-layer-%d", proc, helperRounds-1))
		if err != nil {
			t.Fatal(err)
		}
		target := t.TempDir()
		mountForTest(t, mounts, target)
		want := map[string]string{}
		for i := 0; i < helperRounds; i++ {
			want[fmt.Sprintf("p%s-%d", proc, i)] = fmt.Sprintf("p%s-active-%d", proc, i)
		}
		other := map[string]string{"0": "1", "1": "0"}[proc]
		want["p"+other+"-0"] = ""
		checkFiles(t, target, want)
	}
}
