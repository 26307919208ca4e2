package engine

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/metadata"
	"github.com/berth-project/berth/snapshot"
)

// killedLoadEnv makes the test binary (TestMain) run killedLoadHelper on
// the store root it names instead of the tests.
const killedLoadEnv = "BERTH_ENGINE_TEST_KILLED_LOAD"

// killedLoadHelper starts a load as engine.Import does, under a lease this
// process owns: a committed blob, a half-written ingest and an extract
// snapshot. It says "ready" and waits to be killed.
func killedLoadHelper(root string) error {
	s, err := Open(root)
	if err != nil {
		return err
	}
	ctx := context.Background()
	lease := "load-killed"
	if err := s.db.CreateLease(ctx, lease, leaseTTL, metadata.WithOwner()); err != nil {
		return err
	}
	ref, chain := lease+"-layer", digest.FromString("killed layer").String()
	blob := []byte(`{"killed": "config"}`)
	d := digest.FromBytes(blob)
	for _, r := range []metadata.Resource{{Kind: metadata.ResourceIngest, Key: ref}, {Kind: metadata.ResourceSnapshot, Key: chain}, {Kind: metadata.ResourceContent, Key: d.String()}} {
		if err := s.db.AddLeaseResource(ctx, lease, r.Kind, r.Key); err != nil {
			return err
		}
	}
	if err := s.cs.Ingest(ctx, lease+"-config", bytes.NewReader(blob), d, int64(len(blob))); err != nil {
		return err
	}
	w, err := s.cs.Writer(ref, "", 0)
	if err != nil {
		return err
	}
	if _, err := w.Write(bytes.Repeat([]byte("part of a layer "), 512)); err != nil {
		return err
	}
	if _, err := s.sn.Prepare("extract-"+lease+"-"+chain, "", snapshot.WithLabels(map[string]string{metadata.LeaseLabel: lease})); err != nil {
		return err
	}
	fmt.Println("ready")
	time.Sleep(time.Minute)
	return fmt.Errorf("not killed")
}

// writeTestTar writes a tar of the given files (name: content) and returns
// its path.
func writeTestTar(t *testing.T, files map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	var names []string
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(files[name])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(files[name]))
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "layer.tar")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// check runs Check and fails t on error.
func check(t *testing.T, s *Store, repair bool) CheckReport {
	t.Helper()
	rep, err := s.Check(context.Background(), repair)
	if err != nil {
		t.Fatalf("Check(repair=%v): %v", repair, err)
	}
	return rep
}

// findProblem returns the problem of kind about object.
func findProblem(rep CheckReport, kind ProblemKind, object string) (Problem, bool) {
	for _, p := range rep.Problems {
		if p.Kind == kind && p.Object == object {
			return p, true
		}
	}
	return Problem{}, false
}

// problemKeys lists the report's problems as "kind object".
func problemKeys(rep CheckReport) []string {
	var keys []string
	for _, p := range rep.Problems {
		keys = append(keys, string(p.Kind)+" "+p.Object)
	}
	slices.Sort(keys)
	return keys
}

// corruptBlob overwrites the start of blob d's file in the store.
func corruptBlob(t *testing.T, s *Store, d digest.Digest) {
	t.Helper()
	path := filepath.Join(s.Root(), "content", "blobs", d.Algorithm().String(), d.Encoded())
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte("bit rot"), 0); err != nil {
		t.Fatal(err)
	}
}

// TestCheckCorruptBlobs corrupts the layer of a named image and the config
// of a dangling one: Check reports both blobs by digest and both images
// without changing anything; the repair deletes the blobs and the two
// images, GC their remains, and leaves a clean store with the third image.
func TestCheckCorruptBlobs(t *testing.T) {
	layer, _ := busyboxLayer(t)
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	importFile(t, s, layer, "busybox")
	danglingID := importFile(t, s, writeTestTar(t, map[string]string{"etc/dangling": "x"}), "")
	keepID := importFile(t, s, writeTestTar(t, map[string]string{"etc/keep": "y"}), "keep:1")

	if rep := check(t, s, false); len(rep.Problems) != 0 || rep.Blobs != 9 {
		t.Fatalf("fresh store: %d blobs verified, problems %v", rep.Blobs, rep.Problems)
	}

	bb, err := s.Get(ctx, "busybox")
	if err != nil {
		t.Fatal(err)
	}
	mfData, err := s.readBlob(bb.Target, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var mf ocispec.Manifest
	if err := json.Unmarshal(mfData, &mf); err != nil || len(mf.Layers) != 1 {
		t.Fatalf("manifest %s: %v", mfData, err)
	}
	layerDigest := mf.Layers[0].Digest
	corruptBlob(t, s, layerDigest)
	corruptBlob(t, s, danglingID)

	rep := check(t, s, false)
	for _, want := range []struct {
		kind   ProblemKind
		object string
	}{
		{ProblemCorruptBlob, layerDigest.String()},
		{ProblemCorruptBlob, danglingID.String()},
		{ProblemBrokenImage, "docker.io/library/busybox:latest"},
		{ProblemBrokenImage, danglingID.String()},
	} {
		if p, ok := findProblem(rep, want.kind, want.object); !ok || p.Repaired {
			t.Errorf("no %s problem for %s in %v", want.kind, want.object, problemKeys(rep))
		}
	}
	for _, p := range rep.Problems {
		if strings.Contains(p.Object, "keep") || p.Object == keepID.String() {
			t.Errorf("problem about the intact image: %v", p)
		}
	}
	// Nothing changed.
	if _, err := s.cs.Info(layerDigest); err != nil {
		t.Errorf("check without repair removed the corrupt layer: %v", err)
	}
	if imgs, _ := s.db.ListImages(ctx, nil); len(imgs) != 3 {
		t.Errorf("check without repair left %d image records", len(imgs))
	}

	rep = check(t, s, true)
	if left := rep.Remaining(); len(left) != 0 {
		t.Errorf("after repair, problems remain: %v", left)
	}
	if _, ok := findProblem(rep, ProblemCorruptBlob, layerDigest.String()); !ok || rep.Reclaimed <= 0 {
		t.Errorf("repair report %v, reclaimed %d", problemKeys(rep), rep.Reclaimed)
	}
	imgs, err := s.Images(ctx)
	if err != nil || len(imgs) != 1 || imgs[0].ID != keepID {
		t.Fatalf("images after repair: %+v, %v; want keep:1 only", imgs, err)
	}
	for _, d := range []digest.Digest{layerDigest, danglingID} {
		if _, err := s.cs.Info(d); err == nil {
			t.Errorf("corrupt blob %s still there", d)
		}
	}
	if rep := check(t, s, false); len(rep.Problems) != 0 {
		t.Errorf("second check: %v", rep.Problems)
	}
}

// TestCheckKilledLoad SIGKILLs a process in the middle of a load (an owned
// lease, a committed blob, a half-written ingest, an extract snapshot)
// while this process runs a load of its own: Check reports the dead
// process's work, never the live load's; repair cleans it up and the next
// check is clean.
func TestCheckKilledLoad(t *testing.T) {
	root := t.TempDir()
	s := openStore(t, root)
	ctx := context.Background()
	importFile(t, s, writeTestTar(t, map[string]string{"etc/keep": "y"}), "keep:1")

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), killedLoadEnv+"="+root)
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

	// A live load in this process: lease, held ingest, extract snapshot,
	// committed blob.
	live := "load-live"
	if err := s.db.CreateLease(ctx, live, leaseTTL, metadata.WithOwner()); err != nil {
		t.Fatal(err)
	}
	liveRef, liveBlob := live+"-layer", []byte(`{"live": "config"}`)
	liveDigest := digest.FromBytes(liveBlob)
	for _, r := range []metadata.Resource{{Kind: metadata.ResourceIngest, Key: liveRef}, {Kind: metadata.ResourceContent, Key: liveDigest.String()}} {
		if err := s.db.AddLeaseResource(ctx, live, r.Kind, r.Key); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.cs.Ingest(ctx, live+"-config", bytes.NewReader(liveBlob), liveDigest, int64(len(liveBlob))); err != nil {
		t.Fatal(err)
	}
	w, err := s.cs.Writer(liveRef, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.Write([]byte("live layer bytes"))
	liveKey := "extract-" + live + "-" + digest.FromString("live layer").String()
	if _, err := s.sn.Prepare(liveKey, "", snapshot.WithLabels(map[string]string{metadata.LeaseLabel: live})); err != nil {
		t.Fatal(err)
	}

	if rep := check(t, s, false); len(rep.Problems) != 0 {
		t.Fatalf("check during both loads: %v", rep.Problems)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()

	killedChain := digest.FromString("killed layer").String()
	want := []string{
		"abandoned-ingest load-killed-layer",
		"abandoned-snapshot extract-load-killed-" + killedChain,
		"dead-lease load-killed",
		"unreferenced-blob " + digest.FromString(`{"killed": "config"}`).String(),
	}
	for i := 0; i < 2; i++ { // check changes nothing: twice the same
		rep := check(t, s, false)
		if got := problemKeys(rep); !slices.Equal(got, want) {
			t.Fatalf("check after the kill:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		// What a killed load leaves is garbage, not damage: the store is
		// sound.
		if left := rep.Remaining(); len(left) != 0 || len(rep.Garbage()) != len(want) {
			t.Errorf("after the kill: damage %v, garbage %v; want only garbage", left, rep.Garbage())
		}
		if p, _ := findProblem(rep, ProblemDeadLease, "load-killed"); !strings.Contains(p.Detail, fmt.Sprintf("process %d is gone", cmd.Process.Pid)) {
			t.Errorf("dead lease detail %q", p.Detail)
		}
	}

	rep := check(t, s, true)
	if got := problemKeys(rep); !slices.Equal(got, want) || len(rep.Remaining()) != 0 {
		t.Errorf("repair: %v, remaining %v", rep.Problems, rep.Remaining())
	}
	if rep := check(t, s, false); len(rep.Problems) != 0 {
		t.Errorf("check after repair: %v", rep.Problems)
	}
	// The live load's work is intact.
	if _, err := s.cs.Info(liveDigest); err != nil {
		t.Errorf("live blob: %v", err)
	}
	if _, err := s.sn.Stat(liveKey); err != nil {
		t.Errorf("live snapshot: %v", err)
	}
	ings, err := s.cs.ListIngests()
	if err != nil || len(ings) != 1 || ings[0].Ref != liveRef {
		t.Errorf("ingests after repair: %+v, %v", ings, err)
	}
	if _, err := s.Get(ctx, "keep:1"); err != nil {
		t.Error(err)
	}
}

// TestCheckMissingSnapshot removes an image's layer snapshot: Check reports
// it, and the repair cannot bring it back.
func TestCheckMissingSnapshot(t *testing.T) {
	s := openStore(t, t.TempDir())
	importFile(t, s, writeTestTar(t, map[string]string{"a": "1"}), "a")
	img, err := s.Get(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	chain := img.Config.RootFS.DiffIDs[0].String() // one layer: chain ID = diff ID
	if err := s.sn.Remove(chain); err != nil {
		t.Fatal(err)
	}
	for _, repair := range []bool{false, true} {
		rep := check(t, s, repair)
		if got := problemKeys(rep); !slices.Equal(got, []string{"missing-snapshot " + chain}) || len(rep.Remaining()) != 1 {
			t.Errorf("check(repair=%v): %v", repair, rep.Problems)
		}
	}
}

// TestCheckIngestWithoutLease: an unfinished ingest no lease names is kept
// (and not reported) within IngestGracePeriod.
func TestCheckIngestWithoutLease(t *testing.T) {
	s := openStore(t, t.TempDir())
	w, err := s.cs.Writer("resumable", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("some"))
	w.Close()
	if rep := check(t, s, true); len(rep.Problems) != 0 {
		t.Errorf("check: %v", rep.Problems)
	}
	if ings, _ := s.cs.ListIngests(); len(ings) != 1 {
		t.Errorf("ingests: %+v", ings)
	}
}

// TestCheckDanglingReference deletes an image's layer blob behind the
// store's back: Check reports the manifest's dangling reference and the
// broken image; the repair removes the image and the rest of it.
func TestCheckDanglingReference(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	importFile(t, s, writeTestTar(t, map[string]string{"etc/x": "x"}), "x")
	img, err := s.Get(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	data, err := s.readBlob(img.Target, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var mf ocispec.Manifest
	if err := json.Unmarshal(data, &mf); err != nil {
		t.Fatal(err)
	}
	if err := s.cs.Delete(mf.Layers[0].Digest); err != nil {
		t.Fatal(err)
	}
	want := []string{"broken-image docker.io/library/x:latest", "dangling-reference " + mf.Layers[0].Digest.String()}
	if got := problemKeys(check(t, s, false)); !slices.Equal(got, want) {
		t.Fatalf("check: %v, want %v", got, want)
	}
	rep := check(t, s, true)
	if got := problemKeys(rep); !slices.Equal(got, want) || len(rep.Remaining()) != 0 {
		t.Fatalf("repair: %v", rep.Problems)
	}
	blobs, snaps := storeBytes(t, s)
	if blobs != 0 || snaps != 0 || len(check(t, s, false).Problems) != 0 {
		t.Errorf("after repair: %d bytes of blobs, %d of snapshots", blobs, snaps)
	}
}
