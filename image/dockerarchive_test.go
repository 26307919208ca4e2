package image

import (
	"strings"
	"testing"
)

func TestParseDockerArchiveManifest(t *testing.T) {
	tests := []struct {
		name   string
		data   string
		errors []string
	}{
		{"classic", `[{"Config":"abc.json","RepoTags":["busybox:latest"],"Layers":["d1/layer.tar","d2/layer.tar"]}]`, nil},
		{"oci style", `[{"Config":"blobs/sha256/` + strings.Repeat("a", 64) + `","RepoTags":null,"Layers":["blobs/sha256/` + strings.Repeat("b", 64) + `"],"LayerSources":{}}]`, nil},
		{"two images", `[{"Config":"a.json","Layers":[]},{"Config":"b.json","RepoTags":["x:1","x:2"],"Layers":["l.tar"]}]`, nil},
		{"malformed", `[{"Config":`, []string{"manifest.json", "unexpected end of JSON"}},
		{"not a list", `{"Config":"a.json"}`, []string{"cannot unmarshal object"}},
		{"empty", `[]`, []string{"no images"}},
		{"no config", `[{"Layers":["a.tar"]}]`, []string{"entry 0", "no Config"}},
		{"absolute config", `[{"Config":"/etc/passwd","Layers":[]}]`, []string{"entry 0: Config", `"/etc/passwd" is absolute`}},
		{"dotdot layer", `[{"Config":"a.json","Layers":["ok.tar"]},{"Config":"b.json","Layers":["x.tar","../../etc/shadow"]}]`,
			[]string{"entry 1: Layers[1]", `"../../etc/shadow" leaves the archive`}},
		{"hidden dotdot", `[{"Config":"a.json","Layers":["a/../../b.tar"]}]`, []string{"Layers[0]", "not clean"}},
		{"unclean", `[{"Config":"a//b.json","Layers":[]}]`, []string{"not clean"}},
		{"dot slash", `[{"Config":"./a.json","Layers":[]}]`, []string{"not clean"}},
		{"dot", `[{"Config":".","Layers":[]}]`, []string{"empty path"}},
		{"empty layer path", `[{"Config":"a.json","Layers":[""]}]`, []string{"Layers[0]", "empty path"}},
		{"nul", `[{"Config":"a\u0000.json","Layers":[]}]`, []string{"NUL"}},
		{"oversized", `[{"Config":"a.json","RepoTags":["` + strings.Repeat("x", MaxManifestSize) + `"]}]`, []string{"more than the limit"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseDockerArchiveManifest([]byte(tc.data))
			wantErr(t, err, tc.errors...)
			if err == nil && (len(m) == 0 || m[0].Config == "") {
				t.Fatalf("parsed %+v", m)
			}
		})
	}
	m, err := ParseDockerArchiveManifest([]byte(tests[0].data))
	if err != nil {
		t.Fatal(err)
	}
	if m[0].Config != "abc.json" || m[0].RepoTags[0] != "busybox:latest" || len(m[0].Layers) != 2 || m[0].Layers[1] != "d2/layer.tar" {
		t.Fatalf("parsed %+v", m)
	}
}
