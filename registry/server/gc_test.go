package server

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// age sets the modification time of every file under dir back by d.
func age(t *testing.T, dir string, d time.Duration) {
	t.Helper()
	old := time.Now().Add(-d)
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		return os.Chtimes(p, old, old)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// GC deletes blobs no manifest references once they are older than the
// grace period, keeps everything a tagged or untagged manifest needs, and
// removes abandoned upload sessions.
func TestGC(t *testing.T) {
	root := t.TempDir()
	tr := newRegistry(t, Config{Root: root})
	m1 := tr.image("gc/keep", "1")
	tr.pushManifest("gc/keep", "v1", ocispec.MediaTypeImageManifest, m1).expect(t, "PUT m1", http.StatusCreated)
	orphan := tr.pushBlob("gc/keep", []byte("orphan blob"))
	m2 := tr.image("gc/drop", "2")
	d2 := digest.FromBytes(m2)
	tr.pushManifest("gc/drop", d2.String(), ocispec.MediaTypeImageManifest, m2).expect(t, "PUT m2", http.StatusCreated)
	tr.do("DELETE", "/v2/gc/drop/manifests/"+d2.String(), nil).expect(t, "DELETE m2", http.StatusAccepted)
	var m2doc ocispec.Manifest
	json.Unmarshal(m2, &m2doc)
	wantGone := []digest.Digest{orphan, d2, m2doc.Config.Digest, m2doc.Layers[0].Digest}
	slices.Sort(wantGone)

	// An abandoned session (POST, never used) and one in use.
	stale := tr.do("POST", "/v2/gc/keep/blobs/uploads/", nil).Header.Get("Location")
	live := tr.do("POST", "/v2/gc/keep/blobs/uploads/", nil).Header.Get("Location")
	tr.do("PATCH", live, []byte("in progress")).expect(t, "PATCH live", http.StatusAccepted)

	res, err := GC(context.Background(), root, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Blobs) != 0 || res.Uploads != 0 {
		t.Fatalf("GC within the grace period deleted %+v", res)
	}

	age(t, filepath.Join(root, "content", "blobs"), 2*time.Hour)
	age(t, filepath.Join(root, "repositories"), 2*time.Hour)
	age(t, filepath.Join(root, "uploads"), 8*24*time.Hour)
	os.Chtimes(tr.srv.store.sessionPath(filepath.Base(live)), time.Now(), time.Now())

	res, err = GC(context.Background(), root, GCOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(res.Blobs)
	if !slices.Equal(res.Blobs, wantGone) || res.Uploads != 1 {
		t.Fatalf("dry run would delete %v and %d uploads, want %v and 1", res.Blobs, res.Uploads, wantGone)
	}
	tr.do("HEAD", "/v2/gc/keep/blobs/"+orphan.String(), nil).expect(t, "orphan after dry run", http.StatusOK)
	if _, err := os.Stat(tr.srv.store.sessionPath(filepath.Base(stale))); err != nil {
		t.Fatalf("dry run removed the stale session: %v", err)
	}

	res, err = GC(context.Background(), root, GCOptions{})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(res.Blobs)
	if !slices.Equal(res.Blobs, wantGone) || res.Uploads != 1 || res.Kept != 3 {
		t.Fatalf("GC deleted %v (kept %d) and %d uploads, want %v, 3 kept and 1", res.Blobs, res.Kept, res.Uploads, wantGone)
	}
	for _, d := range wantGone {
		if _, err := tr.srv.store.content.Info(d); err == nil {
			t.Errorf("blob %s survived GC", d)
		}
	}
	tr.do("HEAD", "/v2/gc/keep/blobs/"+orphan.String(), nil).expect(t, "orphan after GC", http.StatusNotFound)
	if _, err := os.Stat(tr.srv.store.layerLink("gc/keep", orphan)); err == nil {
		t.Error("the link to a deleted blob survived")
	}
	// Everything the kept image needs is there.
	var m1doc ocispec.Manifest
	json.Unmarshal(m1, &m1doc)
	tr.do("GET", "/v2/gc/keep/manifests/v1", nil).expect(t, "kept manifest", http.StatusOK)
	for _, d := range []digest.Digest{m1doc.Config.Digest, m1doc.Layers[0].Digest} {
		tr.do("GET", "/v2/gc/keep/blobs/"+d.String(), nil).expect(t, "kept blob", http.StatusOK)
	}
	tr.do("GET", stale, nil).expect(t, "stale upload after GC", http.StatusNotFound, CodeBlobUploadUnknown)
	d := digest.FromString("in progress")
	tr.do("PUT", live+"?digest="+d.String(), nil).expect(t, "live upload after GC", http.StatusCreated)
}

// GC refuses a directory that is not a registry root.
func TestGCNotARoot(t *testing.T) {
	if _, err := GC(context.Background(), t.TempDir(), GCOptions{}); err == nil {
		t.Fatal("GC of an empty directory succeeded")
	}
}
