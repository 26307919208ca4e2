package image

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// addLayoutSeeds adds index.json and every blob of the test layouts.
func addLayoutSeeds(f *testing.F) {
	dir := testImages(f)
	for _, name := range []string{"busybox", "layered"} {
		paths, _ := filepath.Glob(filepath.Join(dir, name, "blobs", "sha256", "*"))
		paths = append(paths, filepath.Join(dir, name, "index.json"))
		for _, p := range paths {
			if st, err := os.Stat(p); err != nil || st.Size() > 64<<10 {
				continue // layers
			}
			data, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":1,"fsLayers":[]}`))
	f.Add([]byte(`{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"data":"e30="},"layers":[]}`))
	b, _ := json.Marshal(goodManifest())
	f.Add(b)
	addLayoutSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseManifest(data)
		if err != nil {
			return
		}
		if m.SchemaVersion != 2 || m.Config.Digest.Validate() != nil || m.Config.Size < 0 {
			t.Fatalf("accepted a bad manifest: %+v", m)
		}
		for i, l := range m.Layers {
			if !IsLayer(l.MediaType) || l.Digest.Validate() != nil || l.Size < 0 {
				t.Fatalf("accepted bad layer %d: %+v", i, l)
			}
		}
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatalf("accepted manifest does not marshal: %v", err)
		}
		m2, err := ParseManifest(out)
		if err != nil {
			t.Fatalf("re-marshalled manifest %s is refused: %v", out, err)
		}
		out2, err := json.Marshal(m2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("round trip changed the manifest:\n%s\n%s", out, out2)
		}
	})
}

func FuzzParseIndex(f *testing.F) {
	f.Add([]byte(`{"schemaVersion":2,"manifests":[]}`))
	f.Add([]byte(`{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"platform":{"os":"linux","architecture":"arm","variant":"v7"}}]}`))
	b, _ := json.Marshal(goodIndex())
	f.Add(b)
	addLayoutSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		idx, err := ParseIndex(data)
		if err != nil {
			return
		}
		for i, d := range idx.Manifests {
			if d.MediaType == "" || d.Digest.Validate() != nil || d.Size < 0 {
				t.Fatalf("accepted bad descriptor %d: %+v", i, d)
			}
		}
		// Matching never panics, whatever the platforms say.
		_, _ = MatchIndex(idx, DefaultPlatform())
		for _, d := range idx.Manifests {
			if d.Platform != nil {
				_, _ = MatchIndex(idx, *d.Platform)
			}
		}
		out, err := json.Marshal(idx)
		if err != nil {
			t.Fatalf("accepted index does not marshal: %v", err)
		}
		idx2, err := ParseIndex(out)
		if err != nil {
			t.Fatalf("re-marshalled index %s is refused: %v", out, err)
		}
		out2, err := json.Marshal(idx2)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, out2) {
			t.Fatalf("round trip changed the index:\n%s\n%s", out, out2)
		}
	})
}
