package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/content"
	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/snapshot"
)

const (
	helperRootEnv  = "BERTH_ENGINE_TEST_ROOT"
	helperLayerEnv = "BERTH_ENGINE_TEST_LAYER"
	helperRefEnv   = "BERTH_ENGINE_TEST_REF"
)

func TestMain(m *testing.M) {
	if root := os.Getenv(killedLoadEnv); root != "" {
		if err := killedLoadHelper(root); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	if root := os.Getenv(helperRootEnv); root != "" {
		if name := os.Getenv(helperPullEnv); name != "" {
			os.Exit(pullHelper(root, name))
		}
		if os.Getenv(helperLoadEnv) != "" {
			os.Exit(loadHelper(root, os.Getenv(helperLoadEnv), os.Getenv(helperRefEnv)))
		}
		os.Exit(importHelper(root, os.Getenv(helperLayerEnv), os.Getenv(helperRefEnv)))
	}
	code := m.Run()
	removePullTestImages()
	os.Exit(code)
}

// importHelper is the re-executed test binary: it imports layer as ref.
func importHelper(root, layer, ref string) int {
	s, err := Open(root)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	f, err := os.Open(layer)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer f.Close()
	if _, err := s.Import(context.Background(), f, ref, nil); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func importFile(t *testing.T, s *Store, path, ref string, changes ...string) digest.Digest {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	desc, err := s.Import(context.Background(), f, ref, changes)
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	return desc.Digest
}

// snapshotTree mounts a view of the committed snapshot key and returns
// the path of a file in it (read while the view is mounted by fn).
func withView(t *testing.T, s *Store, parent string, fn func(dir string)) {
	t.Helper()
	key := "test-view-" + parent
	mounts, err := s.Snapshotter().View(key, parent)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Snapshotter().Remove(key)
	dir := t.TempDir()
	if err := snapshot.MountAll(mounts, dir); err != nil {
		t.Fatal(err)
	}
	defer snapshot.Unmount(dir)
	fn(dir)
}

func TestImport(t *testing.T) {
	layer, diffID := busyboxLayer(t)
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	id := importFile(t, s, layer, "busybox")

	imgs, err := s.Images(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].Name != "docker.io/library/busybox:latest" || imgs[0].ID != id {
		t.Fatalf("images = %+v, want busybox with id %s", imgs, id)
	}
	img := imgs[0]
	if img.Repository != "busybox" || img.Tag != "latest" || img.Size <= 0 {
		t.Errorf("repo %q tag %q size %d", img.Repository, img.Tag, img.Size)
	}
	if got := img.Config.RootFS.DiffIDs; len(got) != 1 || got[0] != diffID {
		t.Errorf("diff ids %v, want [%s]", got, diffID)
	}
	if img.Config.OS != "linux" || img.Config.Created == nil || len(img.Config.History) != 1 {
		t.Errorf("config %+v", img.Config)
	}
	chainID := image.ChainIDs([]digest.Digest{diffID})[0].String()
	info, err := s.Snapshotter().Stat(chainID)
	if err != nil || info.Kind != snapshot.KindCommitted {
		t.Fatalf("snapshot %s: %+v %v", chainID, info, err)
	}
	withView(t, s, chainID, func(dir string) {
		if fi, err := os.Stat(filepath.Join(dir, "bin", "busybox")); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("bin/busybox in snapshot: %v", err)
		}
	})
	// Only the committed layer: no leftover extraction snapshot, no lease.
	n := 0
	s.Snapshotter().Walk(func(snapshot.Info) error { n++; return nil })
	if n != 1 {
		t.Errorf("%d snapshots, want 1", n)
	}
	leases, _ := s.DB().ListLeases(ctx)
	if len(leases) != 0 {
		t.Errorf("leases left: %v", leases)
	}
	// The layer blob is gzip of the same tar: re-import gives the same diff ID
	// and, with the same name, the image stays listed once.
	got, err := s.Get(ctx, id.Encoded()[:12])
	if err != nil || got.ID != id {
		t.Errorf("Get by ID prefix: %+v %v", got, err)
	}
}

func TestImportCorrupt(t *testing.T) {
	layer, _ := busyboxLayer(t)
	data, err := os.ReadFile(layer)
	if err != nil {
		t.Fatal(err)
	}
	// Flip bytes in the middle of the deflate stream.
	bad := bytes.Clone(data)
	for i := len(bad) / 2; i < len(bad)/2+64; i++ {
		bad[i] ^= 0x5a
	}
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	if _, err := s.Import(ctx, bytes.NewReader(bad), "broken", nil); err == nil {
		t.Fatal("Import of a corrupt gzip succeeded")
	}
	// A truncated stream too.
	if _, err := s.Import(ctx, bytes.NewReader(data[:len(data)-100]), "broken", nil); err == nil {
		t.Fatal("Import of a truncated gzip succeeded")
	}
	imgs, err := s.DB().ListImages(ctx, nil)
	if err != nil || len(imgs) != 0 {
		t.Fatalf("images after failed import: %v %v", imgs, err)
	}
	s.Snapshotter().Walk(func(i snapshot.Info) error {
		t.Errorf("snapshot left: %+v", i)
		return nil
	})
	leases, _ := s.DB().ListLeases(ctx)
	if len(leases) != 0 {
		t.Errorf("leases left: %v", leases)
	}
	// Blobs that were written are collected.
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	s.Content().Walk(func(i content.Info) error {
		t.Errorf("blob left after GC: %s", i.Digest)
		return nil
	})
}

func TestImportChanges(t *testing.T) {
	layer, _ := busyboxLayer(t)
	s := openStore(t, t.TempDir())
	importFile(t, s, layer, "example.com:5000/team/app:v1",
		`CMD ["/bin/sh", "-c", "echo hi"]`, "ENV A=1 B=\"two words\"", "ENV C 3 4",
		"WORKDIR /srv", "WORKDIR data", "USER 1000:1000", "EXPOSE 80 53/udp",
		"LABEL k=v", "STOPSIGNAL SIGTERM", "ENTRYPOINT /bin/sh -c")
	img, err := s.Get(context.Background(), "example.com:5000/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	c := img.Config.Config
	if strings.Join(c.Cmd, "|") != "/bin/sh|-c|echo hi" ||
		strings.Join(c.Env, "|") != "A=1|B=two words|C=3 4" ||
		c.WorkingDir != "/srv/data" || c.User != "1000:1000" || c.StopSignal != "SIGTERM" ||
		c.Labels["k"] != "v" || len(c.ExposedPorts) != 2 ||
		strings.Join(c.Entrypoint, "|") != "/bin/sh|-c|/bin/sh -c" {
		t.Errorf("config %+v", c)
	}
	if img.Repository != "example.com:5000/team/app" || img.Tag != "v1" {
		t.Errorf("repo %q tag %q", img.Repository, img.Tag)
	}
	f, _ := os.Open(layer)
	defer f.Close()
	_, err = s.Import(context.Background(), f, "x", []string{"RUN true"})
	if err == nil || !strings.Contains(err.Error(), `"RUN"`) {
		t.Errorf("unknown instruction: %v", err)
	}
}

func TestTagRemoveGC(t *testing.T) {
	layer, diffID := busyboxLayer(t)
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	id := importFile(t, s, layer, "busybox")
	if err := s.Tag(ctx, "busybox", "localhost:5000/bb:1"); err != nil {
		t.Fatal(err)
	}
	res, err := s.Remove(ctx, "busybox:latest", false)
	if err != nil || len(res.Untagged) != 1 || len(res.Deleted) != 0 {
		t.Fatalf("Remove: %+v %v", res, err)
	}
	img, err := s.Get(ctx, "localhost:5000/bb:1")
	if err != nil || img.ID != id {
		t.Fatalf("other tag after rmi: %+v %v", img, err)
	}
	if _, err := s.Get(ctx, "busybox"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removed name: %v", err)
	}
	chainID := diffID.String()
	if _, err := s.Snapshotter().Stat(chainID); err != nil {
		t.Fatalf("snapshot gone while a name is left: %v", err)
	}
	if _, err := s.Content().Info(id); err != nil {
		t.Fatalf("config gone while a name is left: %v", err)
	}
	res, err = s.Remove(ctx, "localhost:5000/bb:1", false)
	if err != nil || len(res.Deleted) != 1 || res.Deleted[0] != id {
		t.Fatalf("Remove last: %+v %v", res, err)
	}
	if _, err := s.Snapshotter().Stat(chainID); err == nil {
		t.Error("snapshot kept after the last name was removed")
	}
	s.Content().Walk(func(i content.Info) error {
		t.Errorf("blob left: %s", i.Digest)
		return nil
	})
	if _, err := s.Remove(ctx, "nothere", false); !errors.Is(err, ErrNotFound) || err.Error() != `image "nothere" not found` {
		t.Errorf("remove missing: %v", err)
	}
}

func TestConcurrentImportProcesses(t *testing.T) {
	layer, diffID := busyboxLayer(t)
	root := t.TempDir()
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for i := 0; i < 2; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperRootEnv+"="+root, helperLayerEnv+"="+layer, fmt.Sprintf("%s=img%d", helperRefEnv, i))
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("import %d: %v\n%s", i, err, outs[i])
		}
	}
	s := openStore(t, root)
	imgs, err := s.Images(context.Background())
	if err != nil || len(imgs) != 2 {
		t.Fatalf("images: %+v %v", imgs, err)
	}
	n := 0
	s.Snapshotter().Walk(func(i snapshot.Info) error {
		n++
		if i.Key != diffID.String() || i.Kind != snapshot.KindCommitted {
			t.Errorf("snapshot %+v", i)
		}
		return nil
	})
	if n != 1 {
		t.Errorf("%d snapshots, want 1", n)
	}
}

// A layer that decompresses but does not apply leaves no snapshot.
func TestImportApplyFailure(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "a", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	tw.Write([]byte("x"))
	tw.WriteHeader(&tar.Header{Name: "b", Typeflag: tar.TypeLink, Linkname: "missing"})
	tw.Close()
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	if _, err := s.Import(ctx, &buf, "bad", nil); err == nil {
		t.Fatal("Import of a layer with a dangling hardlink succeeded")
	}
	imgs, _ := s.DB().ListImages(ctx, nil)
	if len(imgs) != 0 {
		t.Errorf("images: %v", imgs)
	}
	s.Snapshotter().Walk(func(i snapshot.Info) error {
		t.Errorf("snapshot left: %+v", i)
		return nil
	})
}
