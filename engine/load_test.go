package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/content"
	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/internal/testimage"
	"github.com/berth-project/berth/snapshot"
)

// tarEntry is one entry of an archive a test writes.
type tarEntry struct {
	name string
	typ  byte // tar.TypeReg if 0
	body []byte
	link string
}

func writeTar(t testing.TB, entries []tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Linkname: e.link}
		switch e.typ {
		case 0:
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(e.body))
		case tar.TypeDir:
			hdr.Mode = 0o755
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// dirEntries returns the files of dir as archive entries, sorted.
func dirEntries(t testing.TB, dir string) []tarEntry {
	t.Helper()
	var out []tarEntry
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		body, err := os.ReadFile(p)
		out = append(out, tarEntry{name: rel, body: body})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// layoutImage is the first image of an OCI layout, read by the test.
type layoutImage struct {
	dir      string
	manifest ocispec.Manifest
	config   []byte
	diffIDs  []digest.Digest
}

func readLayout(t testing.TB, dir string) layoutImage {
	t.Helper()
	var idx ocispec.Index
	readJSONFile(t, filepath.Join(dir, "index.json"), &idx)
	img := layoutImage{dir: dir}
	readJSONFile(t, blobFile(dir, idx.Manifests[0].Digest), &img.manifest)
	var err error
	if img.config, err = os.ReadFile(blobFile(dir, img.manifest.Config.Digest)); err != nil {
		t.Fatal(err)
	}
	var cfg ocispec.Image
	if err := json.Unmarshal(img.config, &cfg); err != nil {
		t.Fatal(err)
	}
	img.diffIDs = cfg.RootFS.DiffIDs
	return img
}

func readJSONFile(t testing.TB, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func blobFile(dir string, d digest.Digest) string {
	return filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
}

// uncompressedLayer returns layer i of img as a plain tar.
func (img layoutImage) uncompressedLayer(t testing.TB, i int) []byte {
	t.Helper()
	f, err := os.Open(blobFile(img.dir, img.manifest.Layers[i].Digest))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// dockerArchive returns the entries of a docker-save archive of img in the
// classic layout: <n>/layer.tar (uncompressed), <config hex>.json,
// manifest.json with tags. The last layer is stored once more under
// another directory as a symlink, as docker does for a repeated layer.
func dockerArchive(t testing.TB, img layoutImage, tags ...string) []tarEntry {
	t.Helper()
	cfgName := img.manifest.Config.Digest.Encoded() + ".json"
	entries := []tarEntry{{name: cfgName, body: img.config}}
	var layers []string
	for i := range img.manifest.Layers {
		dir := digest.FromString(string(rune('a' + i))).Encoded()
		entries = append(entries,
			tarEntry{name: dir, typ: tar.TypeDir},
			tarEntry{name: dir + "/layer.tar", body: img.uncompressedLayer(t, i)},
			tarEntry{name: dir + "/VERSION", body: []byte("1.0")})
		layers = append(layers, dir+"/layer.tar")
	}
	last := layers[len(layers)-1]
	entries = append(entries, tarEntry{name: "alias/layer.tar", typ: tar.TypeSymlink, link: "../" + last})
	layers[len(layers)-1] = "alias/layer.tar"
	m, err := json.Marshal(image.DockerArchiveManifest{{Config: cfgName, RepoTags: tags, Layers: layers}})
	if err != nil {
		t.Fatal(err)
	}
	return append(entries, tarEntry{name: "manifest.json", body: m})
}

// checkLoadedTree mounts a view of the image's top layer and compares it
// with the layered image's expect file.
func checkLoadedTree(t *testing.T, s *Store, images string, img Loaded) {
	t.Helper()
	got, err := s.Get(context.Background(), img.ID.String())
	if err != nil {
		t.Fatal(err)
	}
	chain := image.ChainIDs(got.Config.RootFS.DiffIDs)
	withView(t, s, chain[len(chain)-1].String(), func(dir string) {
		testimage.CheckExpect(t, dir, filepath.Join(images, "layered.expect"))
	})
}

func load(t *testing.T, s *Store, data []byte, opts LoadOptions) []Loaded {
	t.Helper()
	imgs, err := s.Load(context.Background(), bytes.NewReader(data), opts)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return imgs
}

func TestLoadLayered(t *testing.T) {
	images := testimage.Build(t, "layered")
	layout := filepath.Join(images, "layered")
	src := readLayout(t, layout)
	for _, sn := range []string{"overlay", "native"} {
		t.Run(sn, func(t *testing.T) {
			s, err := OpenWith(t.TempDir(), Options{Snapshotter: sn})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()

			// The layout directory.
			imgs, err := s.LoadLayout(ctx, layout, LoadOptions{Name: "layered:dir"})
			if err != nil {
				t.Fatalf("LoadLayout: %v", err)
			}
			if len(imgs) != 1 || imgs[0].ID != src.manifest.Config.Digest || strings.Join(imgs[0].Names, ",") != "docker.io/library/layered:dir" {
				t.Fatalf("LoadLayout = %+v, want config %s named layered:dir", imgs, src.manifest.Config.Digest)
			}
			checkLoadedTree(t, s, images, imgs[0])

			// The same as an OCI archive, gzip compressed, into a fresh
			// store; and a docker archive.
			s2, err := OpenWith(t.TempDir(), Options{Snapshotter: sn})
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			var gz bytes.Buffer
			zw := gzip.NewWriter(&gz)
			zw.Write(writeTar(t, dirEntries(t, layout)))
			zw.Close()
			imgs = load(t, s2, gz.Bytes(), LoadOptions{})
			if len(imgs) != 1 || len(imgs[0].Names) != 0 || imgs[0].ID != src.manifest.Config.Digest {
				t.Fatalf("Load(oci archive) = %+v; a bare tag names no repository", imgs)
			}
			checkLoadedTree(t, s2, images, imgs[0])
			if got, err := s2.Get(ctx, imgs[0].ID.String()); err != nil || got.Name != "" {
				t.Errorf("image loaded without a name: %+v, %v; want it recorded by ID", got, err)
			}

			imgs = load(t, s2, writeTar(t, dockerArchive(t, src, "example.com/layered:docker", "layered:2")), LoadOptions{})
			want := []string{"example.com/layered:docker", "docker.io/library/layered:2"}
			if len(imgs) != 1 || imgs[0].ID != src.manifest.Config.Digest || strings.Join(imgs[0].Names, " ") != strings.Join(want, " ") {
				t.Fatalf("Load(docker archive) = %+v, want %v", imgs, want)
			}
			checkLoadedTree(t, s2, images, imgs[0])
			for _, n := range want {
				if _, err := s2.Get(ctx, n); err != nil {
					t.Errorf("Get(%s): %v", n, err)
				}
			}
		})
	}
}

// storeState lists what a store holds that a user could see or that
// takes space: image names, blobs, snapshots.
func storeState(t *testing.T, s *Store) string {
	t.Helper()
	var lines []string
	recs, err := s.DB().ListImages(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		lines = append(lines, "image "+r.Name+" "+r.Target.Digest.String())
	}
	if err := s.Content().Walk(func(i content.Info) error {
		lines = append(lines, "blob "+i.Digest.String())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Snapshotter().Walk(func(i snapshot.Info) error {
		lines = append(lines, "snapshot "+i.Key+" "+i.Kind.String())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestLoadBadArchives loads broken and hostile archives into a store that
// already holds an image: each must fail with an error naming what was
// wrong and leave the store exactly as it was.
func TestLoadBadArchives(t *testing.T) {
	images := testimage.Build(t, "busybox", "layered")
	src := readLayout(t, filepath.Join(images, "layered"))
	s := openStore(t, t.TempDir())
	if _, err := s.LoadLayout(context.Background(), filepath.Join(images, "busybox"), LoadOptions{Name: "busybox"}); err != nil {
		t.Fatal(err)
	}
	before := storeState(t, s)

	good := dockerArchive(t, src, "layered:bad")
	replace := func(name string, e tarEntry) []tarEntry {
		out := append([]tarEntry(nil), good...)
		for i := range out {
			if out[i].name == name {
				out[i] = e
				return out
			}
		}
		t.Fatalf("no entry %s", name)
		return nil
	}
	manifest := func(m image.DockerArchiveManifest) []tarEntry {
		data, _ := json.Marshal(m)
		return replace("manifest.json", tarEntry{name: "manifest.json", body: data})
	}
	var goodManifest image.DockerArchiveManifest
	json.Unmarshal(good[len(good)-1].body, &goodManifest)
	cfgName := goodManifest[0].Config

	badDiff := bytes.Replace(src.config, []byte(src.diffIDs[1].Encoded()), []byte(digest.FromString("x").Encoded()), 1)
	badCfgName := digest.FromBytes(badDiff).Encoded() + ".json"
	badCfg := replace(cfgName, tarEntry{name: badCfgName, body: badDiff})
	m := goodManifest
	m[0].Config = badCfgName
	badCfgManifest, _ := json.Marshal(m)
	for i := range badCfg {
		if badCfg[i].name == "manifest.json" {
			badCfg[i].body = badCfgManifest
		}
	}

	escapeLayer := writeTar(t, []tarEntry{{name: "../../escaped", body: []byte("x")}})
	whole := writeTar(t, good)

	// An OCI archive whose layer blob does not match its name.
	oci := dirEntries(t, src.dir)
	for i := range oci {
		if oci[i].name == "blobs/sha256/"+src.manifest.Layers[1].Digest.Encoded() {
			oci[i].body = append([]byte(nil), oci[i].body...)
			oci[i].body[len(oci[i].body)/2] ^= 0xff
		}
	}
	// An OCI archive whose index lists something that is not an image.
	var idx ocispec.Index
	readJSONFile(t, filepath.Join(src.dir, "index.json"), &idx)
	idx.Manifests[0].MediaType = "application/vnd.example.thing"
	odd, _ := json.Marshal(idx)
	ociOdd := dirEntries(t, src.dir)
	for i := range ociOdd {
		if ociOdd[i].name == "index.json" {
			ociOdd[i].body = odd
		}
	}

	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty archive"},
		{"not a tar", bytes.Repeat([]byte("not an archive "), 100), "read archive"},
		{"truncated", whole[:len(whole)/2], "unexpected EOF"},
		{"dotdot entry", writeTar(t, append(good, tarEntry{name: "../evil", body: []byte("x")})), `"../evil": name leaves the archive`},
		{"absolute entry", writeTar(t, append(good, tarEntry{name: "/etc/evil", body: []byte("x")})), `"/etc/evil": absolute name`},
		{"duplicate entry", writeTar(t, append(good, tarEntry{name: "manifest.json", body: []byte("[]")})), `"manifest.json" appears twice`},
		{"symlink out", writeTar(t, append(good, tarEntry{name: "x/layer.tar", typ: tar.TypeSymlink, link: "../../etc/passwd"})), "outside the archive"},
		{"device entry", writeTar(t, append(good, tarEntry{name: "dev", typ: tar.TypeChar})), `"dev": unexpected type`},
		{"no manifest", writeTar(t, good[:len(good)-1]), "neither a docker archive"},
		{"missing layer", writeTar(t, manifest(image.DockerArchiveManifest{{Config: cfgName, Layers: append(goodManifest[0].Layers[:len(src.diffIDs)-1:len(src.diffIDs)-1], "nope/layer.tar")}})), `"nope/layer.tar" is missing`},
		{"layer count", writeTar(t, manifest(image.DockerArchiveManifest{{Config: cfgName, Layers: goodManifest[0].Layers[:2]}})), "lists 2 layers but config"},
		{"path in manifest", writeTar(t, manifest(image.DockerArchiveManifest{{Config: "../" + cfgName}})), "leaves the archive"},
		{"wrong diff id", writeTar(t, badCfg), "diff ID"},
		{"escaping layer", writeTar(t, replace(goodManifest[0].Layers[2], tarEntry{name: goodManifest[0].Layers[2], body: escapeLayer})), "../../escaped"},
		{"oci blob mismatch", writeTar(t, oci), src.manifest.Layers[1].Digest.String()},
		{"oci odd media type", writeTar(t, ociOdd), "application/vnd.example.thing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Load(context.Background(), bytes.NewReader(c.data), LoadOptions{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load: %v; want an error containing %q", err, c.want)
			}
			if after := storeState(t, s); after != before {
				t.Errorf("the store changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
	// The store still works: the good archive loads.
	imgs := load(t, s, whole, LoadOptions{})
	checkLoadedTree(t, s, images, imgs[0])
}

// An image that gets a name is no longer listed by its ID, as in docker;
// loading it again without a name adds no "<none>" row; removing its last
// name deletes it.
func TestNamedImageDropsIDRecord(t *testing.T) {
	images := testimage.Build(t, "busybox")
	ctx := context.Background()
	s := openStore(t, t.TempDir())
	layout := filepath.Join(images, "busybox")
	imgs, err := s.LoadLayout(ctx, layout, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	id := imgs[0].ID
	names := func() []string {
		recs, err := s.DB().ListImages(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range recs {
			out = append(out, r.Name)
		}
		return out
	}
	if got := names(); len(got) != 1 || got[0] != id.String() {
		t.Fatalf("after an unnamed load: records %v, want the ID only", got)
	}
	if err := s.Tag(ctx, id.Encoded()[:12], "x/y:1"); err != nil {
		t.Fatal(err)
	}
	if got := names(); strings.Join(got, ",") != "docker.io/x/y:1" {
		t.Errorf("after tag: records %v, want the name only", got)
	}
	if _, err := s.LoadLayout(ctx, layout, LoadOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := names(); strings.Join(got, ",") != "docker.io/x/y:1" {
		t.Errorf("after an unnamed load of a named image: records %v", got)
	}
	res, err := s.Remove(ctx, "x/y:1", false)
	if err != nil || len(res.Deleted) != 1 {
		t.Fatalf("Remove = %+v, %v", res, err)
	}
	if state := storeState(t, s); state != "" {
		t.Errorf("after its last name was removed the image is still stored:\n%s", state)
	}
}
