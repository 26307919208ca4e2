package transfer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/engine"
	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/internal/testimage"
	"github.com/berth-project/berth/internal/testregistry"
	"github.com/berth-project/berth/progress"
	"github.com/berth-project/berth/reference"
	"github.com/berth-project/berth/registry"
	"github.com/berth-project/berth/snapshot"
)

func mustParse(t *testing.T, s string) Ref {
	t.Helper()
	r, err := ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func copyImage(t *testing.T, src, dst string, opts Options) ocispec.Descriptor {
	t.Helper()
	desc, err := Copy(context.Background(), mustParse(t, src), mustParse(t, dst), opts)
	if err != nil {
		t.Fatalf("copy %s %s: %v", src, dst, err)
	}
	return desc
}

// repositories returns a registry client for the plain-HTTP test registry.
func repositories() func(reference.Reference, bool) (*registry.Repository, error) {
	c := registry.NewClient(registry.Options{
		Endpoints: func(domain, path string, push bool) ([]registry.Endpoint, error) {
			return []registry.Endpoint{{Host: domain, Path: path, Insecure: true}}, nil
		},
		Retries: -1,
	})
	return c.Repository
}

// layoutEntry returns the index.json entry of the layout dir named ref.
func layoutEntry(t *testing.T, dir, ref string) ocispec.Descriptor {
	t.Helper()
	l, err := image.OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range l.Index().Manifests {
		if m.Annotations[ocispec.AnnotationRefName] == ref {
			return m
		}
	}
	t.Fatalf("%s: no image %q in %+v", dir, ref, l.Index().Manifests)
	return ocispec.Descriptor{}
}

// TestRoundTrip copies oci: → docker:// → oci-archive: → oci: and checks
// that the manifest digest is kept all the way, and that a copy into an
// existing layout adds to it, replacing an entry of the same ref name.
func TestRoundTrip(t *testing.T) {
	images := testimage.Build(t, "busybox")
	reg := testregistry.Start(t, testregistry.Options{})
	orig := layoutEntry(t, filepath.Join(images, "busybox"), "latest").Digest
	out := t.TempDir()
	var events []progress.Event
	opts := Options{Repository: repositories(), Progress: progress.Func(func(e progress.Event) { events = append(events, e) })}

	steps := []struct{ src, dst string }{
		{"oci:" + filepath.Join(images, "busybox") + ":latest", "docker://" + reg.Host + "/copy/bb:v1"},
		{"docker://" + reg.Host + "/copy/bb:v1", "oci-archive:" + filepath.Join(out, "bb.tar") + ":v1"},
		{"oci-archive:" + filepath.Join(out, "bb.tar") + ":v1", "oci:" + filepath.Join(out, "dir") + ":x"},
	}
	for _, s := range steps {
		if got := copyImage(t, s.src, s.dst, opts).Digest; got != orig {
			t.Errorf("copy %s %s: digest %s, want %s", s.src, s.dst, got, orig)
		}
	}
	if got := reg.ManifestDigest(t, "copy/bb:v1"); got != orig {
		t.Errorf("the registry serves digest %s, want %s", got, orig)
	}
	if e := layoutEntry(t, filepath.Join(out, "dir"), "x"); e.Digest != orig {
		t.Errorf("oci:dir:x has %s, want %s", e.Digest, orig)
	}
	copied := false
	for _, e := range events {
		if e.ID != "" && strings.HasPrefix(e.Status, "Copying blob") && e.Total > 0 {
			copied = true
		}
	}
	if !copied {
		t.Errorf("no Copying blob byte events in %+v", events)
	}
	// A second copy to the same layout: one more entry, then a
	// replacement, with the blobs shared.
	copyImage(t, "oci:"+filepath.Join(out, "dir")+":x", "oci:"+filepath.Join(out, "dir")+":y", Options{})
	copyImage(t, "oci-archive:"+filepath.Join(out, "bb.tar"), "oci:"+filepath.Join(out, "dir")+":x", Options{})
	l, err := image.OpenLayout(filepath.Join(out, "dir"))
	if err != nil {
		t.Fatal(err)
	}
	if ms := l.Index().Manifests; len(ms) != 2 || ms[0].Annotations[ocispec.AnnotationRefName] != "y" || ms[1].Annotations[ocispec.AnnotationRefName] != "x" {
		t.Errorf("index after adding y and replacing x: %+v", ms)
	}
	// skopeo reads what was written.
	if raw, err := testregistry.Skopeo(t, "inspect", "--raw", "oci-archive:"+filepath.Join(out, "bb.tar")+":v1"); err != nil || digest.FromBytes(raw) != orig {
		t.Errorf("skopeo inspect of the oci-archive: %s, %v", digest.FromBytes(raw), err)
	}
}

// withView mounts a read-only view of the snapshot parent for fn.
func withView(t *testing.T, s *engine.Store, parent string, fn func(dir string)) {
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

func openStore(t *testing.T) *engine.Store {
	t.Helper()
	s, err := engine.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestDockerArchive copies oci: → docker-archive: (read by skopeo) →
// berth: (the unpacked tree matches layered.expect), and reads the
// archive back as a source.
func TestDockerArchive(t *testing.T) {
	images := testimage.Build(t, "layered")
	layout := filepath.Join(images, "layered")
	out := t.TempDir()
	tarPath := filepath.Join(out, "layered.tar")
	desc := copyImage(t, "oci:"+layout, "docker-archive:"+tarPath+":example.com/layered:v1", Options{})
	if desc.MediaType != image.MediaTypeDockerManifest {
		t.Errorf("docker archive manifest type %q", desc.MediaType)
	}

	raw, err := testregistry.Skopeo(t, "inspect", "--config", "docker-archive:"+tarPath)
	if err != nil {
		t.Fatal(err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	lraw, err := testregistry.Skopeo(t, "inspect", "docker-archive:"+tarPath)
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		RepoTags []string
		Layers   []digest.Digest
	}
	if err := json.Unmarshal(lraw, &info); err != nil {
		t.Fatal(err)
	}
	if len(info.Layers) != 4 || len(cfg.RootFS.DiffIDs) != 4 {
		t.Fatalf("skopeo sees layers %v and diff IDs %v, want 4", info.Layers, cfg.RootFS.DiffIDs)
	}
	for i := range info.Layers {
		if info.Layers[i] != cfg.RootFS.DiffIDs[i] {
			t.Errorf("layer %d: %s, diff ID %s (layers must be uncompressed)", i, info.Layers[i], cfg.RootFS.DiffIDs[i])
		}
	}

	// Read back: the same manifest digest as reported when writing.
	back := copyImage(t, "docker-archive:"+tarPath+":example.com/layered:v1", "oci:"+filepath.Join(out, "back"), Options{})
	if back.Digest != desc.Digest {
		t.Errorf("reading the archive back gives %s, writing it reported %s", back.Digest, desc.Digest)
	}

	s := openStore(t)
	got := copyImage(t, "docker-archive:"+tarPath, "berth:layered:v2", Options{Store: s})
	img, err := s.Get(context.Background(), "layered:v2")
	if err != nil {
		t.Fatal(err)
	}
	if img.Target.Digest != got.Digest {
		t.Errorf("store has %s, copy reported %s", img.Target.Digest, got.Digest)
	}
	chain := image.ChainIDs(img.Config.RootFS.DiffIDs)
	withView(t, s, chain[len(chain)-1].String(), func(dir string) {
		testimage.CheckExpect(t, dir, filepath.Join(images, "layered.expect"))
	})
}

// TestStoreToRegistry copies berth: → docker:// (read back with skopeo,
// same digest) and docker:// → berth: under another name.
func TestStoreToRegistry(t *testing.T) {
	images := testimage.Build(t, "busybox")
	reg := testregistry.Start(t, testregistry.Options{})
	s := openStore(t)
	ctx := context.Background()
	if _, err := s.LoadLayout(ctx, filepath.Join(images, "busybox"), engine.LoadOptions{Name: "bb:1"}); err != nil {
		t.Fatal(err)
	}
	img, err := s.Get(ctx, "bb:1")
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Store: s, Repository: repositories()}
	desc := copyImage(t, "berth:bb:1", "docker://"+reg.Host+"/from/store:1", opts)
	if desc.Digest != img.Target.Digest {
		t.Errorf("copy reported %s, the image is %s", desc.Digest, img.Target.Digest)
	}
	args := append([]string{"inspect", "--raw"}, reg.SkopeoFlags("", false)...)
	raw, err := testregistry.Skopeo(t, append(args, reg.Ref("from/store:1"))...)
	if err != nil {
		t.Fatal(err)
	}
	if digest.FromBytes(raw) != img.Target.Digest {
		t.Errorf("skopeo reads %s, want %s", digest.FromBytes(raw), img.Target.Digest)
	}

	s2 := openStore(t)
	opts.Store = s2
	pulled := copyImage(t, "docker://"+reg.Host+"/from/store:1", "berth:other:2", opts)
	if pulled.Digest != img.Target.Digest {
		t.Errorf("pulled %s, want %s", pulled.Digest, img.Target.Digest)
	}
	imgs, err := s2.Images(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 1 || imgs[0].Name != "docker.io/library/other:2" {
		t.Errorf("store after docker:// → berth:other:2 has %+v", imgs)
	}
}

// corruptLayout copies the layout and flips a byte of its last layer.
func corruptLayout(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "corrupt")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	l, err := image.OpenLayout(dst)
	if err != nil {
		t.Fatal(err)
	}
	m := l.Index().Manifests[0]
	data, err := l.ReadBlob(m, image.MaxManifestSize)
	if err != nil {
		t.Fatal(err)
	}
	mf, err := image.ParseManifest(data)
	if err != nil {
		t.Fatal(err)
	}
	layer := blobPath(dst, mf.Layers[len(mf.Layers)-1].Digest)
	b, err := os.ReadFile(layer)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.Chmod(layer, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(layer, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestCorruptBlob(t *testing.T) {
	images := testimage.Build(t, "busybox", "layered")
	src := corruptLayout(t, filepath.Join(images, "layered"))
	out := t.TempDir()
	for _, dst := range []string{
		"oci:" + filepath.Join(out, "dir"),
		"oci-archive:" + filepath.Join(out, "a.tar"),
		"docker-archive:" + filepath.Join(out, "d.tar"),
	} {
		_, err := Copy(context.Background(), mustParse(t, "oci:"+src), mustParse(t, dst), Options{})
		if !errors.Is(err, image.ErrDigestMismatch) {
			t.Errorf("copy of a corrupt layout to %s: %v, want a digest mismatch", dst, err)
		}
	}
	if ents, err := os.ReadDir(out); err != nil || len(ents) != 0 {
		t.Errorf("failed copies left %v (%v)", ents, err)
	}
	if _, err := Copy(context.Background(), mustParse(t, "oci:"+src), mustParse(t, "oci:"+out), Options{}); !errors.Is(err, image.ErrDigestMismatch) {
		t.Errorf("copy of a corrupt layout into an empty directory: %v", err)
	}
	if ents, err := os.ReadDir(out); err != nil || len(ents) != 0 {
		t.Errorf("a failed copy into an empty directory left %v (%v)", ents, err)
	}
	// Into an existing layout (of another image, without the corrupt
	// layer): the layout is unchanged.
	dir := filepath.Join(out, "existing")
	copyImage(t, "oci:"+filepath.Join(images, "busybox"), "oci:"+dir+":good", Options{})
	before := listTree(t, dir)
	if _, err := Copy(context.Background(), mustParse(t, "oci:"+src), mustParse(t, "oci:"+dir+":bad"), Options{}); !errors.Is(err, image.ErrDigestMismatch) {
		t.Errorf("copy of a corrupt layout into a layout: %v", err)
	}
	if after := listTree(t, dir); after != before {
		t.Errorf("a failed copy changed the layout:\n%s\nwas\n%s", after, before)
	}
	// A store destination records nothing.
	s := openStore(t)
	if _, err := Copy(context.Background(), mustParse(t, "oci:"+src), mustParse(t, "berth:bad"), Options{Store: s}); err == nil {
		t.Error("copy of a corrupt layout into the store succeeded")
	}
	if imgs, err := s.Images(context.Background()); err != nil || len(imgs) != 0 {
		t.Errorf("store after a failed copy: %+v, %v", imgs, err)
	}
}

func listTree(t *testing.T, dir string) string {
	t.Helper()
	var b bytes.Buffer
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		data := []byte{}
		if fi.Mode().IsRegular() {
			data, err = os.ReadFile(p)
		}
		b.WriteString(p + " " + digest.FromBytes(data).String() + "\n")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestErrors(t *testing.T) {
	images := testimage.Build(t, "busybox")
	layout := filepath.Join(images, "busybox")
	out := t.TempDir()
	if _, err := ParseRef("foo:bar"); err == nil || err.Error() != `unknown transport "foo" (docker, oci, oci-archive, docker-archive, berth)` {
		t.Errorf("unknown transport: %v", err)
	}
	for _, c := range []struct{ src, dst, want string }{
		{"oci:" + filepath.Join(out, "missing"), "oci:" + filepath.Join(out, "x"), "oci:" + filepath.Join(out, "missing") + ": stat"},
		{"oci-archive:" + filepath.Join(out, "missing.tar"), "oci:" + filepath.Join(out, "x"), "no such file"},
		{"docker-archive:" + filepath.Join(out, "missing.tar"), "oci:" + filepath.Join(out, "x"), "docker-archive:"},
		{"oci:" + layout + ":nope", "oci:" + filepath.Join(out, "x"), `no image with ref name "nope" in index.json (it has: latest)`},
		{"oci:" + layout, "oci:" + layout, "the source and the destination are the same image"},
		{"oci:" + layout, "oci-archive:" + layout, "is a directory"},
	} {
		_, err := Copy(context.Background(), mustParse(t, c.src), mustParse(t, c.dst), Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("copy %s %s: %v, want an error with %q", c.src, c.dst, err, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "x")); !os.IsNotExist(err) {
		t.Errorf("failed copies made the destination: %v", err)
	}
	// An OCI archive is not a docker archive, and the other way round.
	copyImage(t, "oci:"+layout, "oci-archive:"+filepath.Join(out, "o.tar"), Options{})
	if _, err := Copy(context.Background(), mustParse(t, "docker-archive:"+filepath.Join(out, "o.tar")), mustParse(t, "oci:"+filepath.Join(out, "y")), Options{}); err == nil || !strings.Contains(err.Error(), "use oci-archive:") {
		t.Errorf("docker-archive: of an OCI archive: %v", err)
	}
}
