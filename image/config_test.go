package image

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func goodConfig() obj {
	return obj{
		"architecture": "amd64",
		"os":           "linux",
		"config":       obj{"Cmd": []string{"sh"}, "Env": []string{"PATH=/bin"}},
		"rootfs":       obj{"type": "layers", "diff_ids": []string{string(dg("d0")), string(dg("d1"))}},
		"history":      []any{obj{"created_by": "x"}, obj{"created_by": "y", "empty_layer": true}},
	}
}

func TestParseConfig(t *testing.T) {
	big := goodConfig()
	big["author"] = strings.Repeat("x", MaxConfigSize)
	tests := []struct {
		name   string
		mod    func(c obj)
		raw    string
		errors []string
	}{
		{name: "good", mod: func(obj) {}},
		{name: "no layers", mod: func(c obj) { c["rootfs"] = obj{"type": "layers", "diff_ids": []string{}} }},
		{name: "malformed", raw: `{"os":`, errors: []string{"parse config", "unexpected end of JSON"}},
		{name: "no os", mod: func(c obj) { delete(c, "os") }, errors: []string{"no os"}},
		{name: "no architecture", mod: func(c obj) { c["architecture"] = "" }, errors: []string{"no architecture"}},
		{name: "rootfs type", mod: func(c obj) { c["rootfs"] = obj{"type": "tarballs"} }, errors: []string{`rootfs.type is "tarballs"`}},
		{name: "no rootfs", mod: func(c obj) { delete(c, "rootfs") }, errors: []string{`rootfs.type is ""`}},
		{name: "bad diff id", mod: func(c obj) {
			c["rootfs"] = obj{"type": "layers", "diff_ids": []string{string(dg("d0")), "sha256:nothex"}}
		}, errors: []string{"rootfs.diff_ids[1]", `"sha256:nothex"`}},
		{name: "oversized", raw: string(doc(t, big)), errors: []string{"config is", "more than the limit of 8388608"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.raw)
			if tc.raw == "" {
				c := goodConfig()
				tc.mod(c)
				data = doc(t, c)
			}
			c, err := ParseConfig(data)
			wantErr(t, err, tc.errors...)
			if err == nil && tc.name == "good" {
				if c.Config.Cmd[0] != "sh" || len(c.RootFS.DiffIDs) != 2 || c.RootFS.DiffIDs[1] != dg("d1") {
					t.Fatalf("parsed config %+v", c)
				}
			}
		})
	}
}

func TestCheckLayers(t *testing.T) {
	m := &ocispec.Manifest{
		Config: ocispec.Descriptor{Digest: dg("cfg")},
		Layers: []ocispec.Descriptor{{Digest: dg("l0")}, {Digest: dg("l1")}, {Digest: dg("l2")}},
	}
	c := &ocispec.Image{RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{dg("d0"), dg("d1"), dg("d2")}}}
	wantErr(t, CheckLayers(m, c))
	c.RootFS.DiffIDs = c.RootFS.DiffIDs[:2]
	wantErr(t, CheckLayers(m, c), "manifest has 3 layers", "has 2 rootfs.diff_ids", string(dg("cfg")))
}

// sha256hex computes a chain ID step without go-digest.
func sha256hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func TestChainIDs(t *testing.T) {
	if got := ChainIDs(nil); len(got) != 0 {
		t.Fatalf("ChainIDs(nil) = %v", got)
	}
	a := "sha256:" + strings.Repeat("a", 64)
	b := "sha256:" + strings.Repeat("b", 64)
	c := "sha256:" + strings.Repeat("c", 64)
	ab := sha256hex(a + " " + b)
	abc := sha256hex(ab + " " + c)
	got := ChainIDs([]digest.Digest{digest.Digest(a), digest.Digest(b), digest.Digest(c)})
	want := []string{a, ab, abc}
	if len(got) != 3 {
		t.Fatalf("got %d chain IDs", len(got))
	}
	for i := range want {
		if string(got[i]) != want[i] {
			t.Errorf("chainID[%d] = %s, want %s", i, got[i], want[i])
		}
	}
	// A layer's chain ID depends on everything below it.
	if ChainIDs([]digest.Digest{digest.Digest(b), digest.Digest(a), digest.Digest(c)})[2] == got[2] {
		t.Error("chain ID did not change when the lower layers were swapped")
	}
}

// TestChainIDsLayeredImage checks the chain IDs of the real layered test
// image against ones computed by python's hashlib.
func TestChainIDsLayeredImage(t *testing.T) {
	dir := filepath.Join(testImages(t), "layered")
	l, err := OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	mdata, err := l.ReadBlob(l.Index().Manifests[0], MaxManifestSize)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseManifest(mdata)
	if err != nil {
		t.Fatal(err)
	}
	cdata, err := l.ReadBlob(m.Config, MaxConfigSize)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(cdata)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckLayers(m, c); err != nil {
		t.Fatal(err)
	}
	if len(c.RootFS.DiffIDs) < 3 {
		t.Fatalf("layered image has %d layers, want several", len(c.RootFS.DiffIDs))
	}
	cfgPath := filepath.Join(dir, "blobs", "sha256", m.Config.Digest.Encoded())
	py := `import hashlib, json, sys
ids = json.load(open(sys.argv[1]))["rootfs"]["diff_ids"]
chain = [ids[0]]
for d in ids[1:]:
    chain.append("sha256:" + hashlib.sha256((chain[-1] + " " + d).encode()).hexdigest())
print(json.dumps(chain))`
	out, err := exec.Command("python3", "-c", py, cfgPath).Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	var want []digest.Digest
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	got := ChainIDs(c.RootFS.DiffIDs)
	if len(got) != len(want) {
		t.Fatalf("%d chain IDs, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("chainID[%d] = %s, want %s", i, got[i], want[i])
		}
	}
}
