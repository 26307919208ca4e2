package image

import (
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

type obj = map[string]any

func desc(mt string, d digest.Digest, size int64) obj {
	return obj{"mediaType": mt, "digest": string(d), "size": size}
}

func goodManifest() obj {
	return obj{
		"schemaVersion": 2,
		"mediaType":     MediaTypeOCIManifest,
		"config":        desc(MediaTypeOCIConfig, dg("config"), 100),
		"layers": []any{
			desc(MediaTypeOCILayerGzip, dg("l0"), 10),
			desc(MediaTypeOCILayerZstd, dg("l1"), 11),
			desc(MediaTypeOCILayer, dg("l2"), 0),
		},
	}
}

func TestParseManifest(t *testing.T) {
	layer := func(mt string, d any, size any) obj { return obj{"mediaType": mt, "digest": d, "size": size} }
	big := goodManifest()
	big["annotations"] = obj{"pad": strings.Repeat("x", MaxManifestSize)}

	tests := []struct {
		name   string
		mod    func(m obj)
		raw    string // used instead of the modified good manifest
		errors []string
	}{
		{name: "oci", mod: func(obj) {}},
		{name: "no media type field", mod: func(m obj) { delete(m, "mediaType") }},
		{name: "docker schema2", mod: func(m obj) {
			m["mediaType"] = MediaTypeDockerManifest
			m["config"] = desc(MediaTypeDockerConfig, dg("config"), 100)
			m["layers"] = []any{desc(MediaTypeDockerLayerGzip, dg("l0"), 10), desc(MediaTypeDockerLayerForeign, dg("l1"), 10)}
		}},
		{name: "nondistributable", mod: func(m obj) {
			m["layers"] = []any{desc(MediaTypeOCILayerNondistributableGzip, dg("l0"), 10)}
		}},
		{name: "no layers", mod: func(m obj) { delete(m, "layers") }},
		{name: "malformed json", raw: `{"schemaVersion": 2, "config": {`, errors: []string{"parse manifest", "unexpected end of JSON"}},
		{name: "not an object", raw: `[1,2]`, errors: []string{"parse manifest", "cannot unmarshal array"}},
		{name: "wrong type of field", mod: func(m obj) { m["layers"] = "x" }, errors: []string{"parse manifest", "cannot unmarshal string"}},
		{name: "schemaVersion 3", mod: func(m obj) { m["schemaVersion"] = 3 }, errors: []string{"schemaVersion 3, want 2"}},
		{name: "no schemaVersion", mod: func(m obj) { delete(m, "schemaVersion") }, errors: []string{"no schemaVersion"}},
		{name: "schema1 by media type", mod: func(m obj) { m["mediaType"] = MediaTypeDockerSchema1Signed },
			errors: []string{"docker schema1 manifests are not supported", "digest sha256:", "re-push the image"}},
		{name: "schema1 by shape", raw: `{"schemaVersion":1,"name":"library/x","tag":"latest","fsLayers":[{"blobSum":"` + string(dg("a")) + `"}]}`,
			errors: []string{"docker schema1 manifests are not supported", "re-push"}},
		{name: "schema1 fsLayers only", raw: `{"fsLayers":[]}`, errors: []string{"docker schema1"}},
		{name: "index media type", mod: func(m obj) { m["mediaType"] = MediaTypeOCIIndex }, errors: []string{MediaTypeOCIIndex, "not a manifest"}},
		{name: "also an index", mod: func(m obj) { m["manifests"] = []any{} }, errors: []string{"ambiguous"}},
		{name: "no config", mod: func(m obj) { delete(m, "config") }, errors: []string{"no config descriptor"}},
		{name: "null config", mod: func(m obj) { m["config"] = nil }, errors: []string{"no config descriptor"}},
		{name: "config bad digest", mod: func(m obj) { m["config"] = desc(MediaTypeOCIConfig, "sha256:1234", 1) },
			errors: []string{"config", `"sha256:1234"`, "invalid"}},
		{name: "config not an image config", mod: func(m obj) { m["config"] = desc("application/vnd.oci.empty.v1+json", dg("{}"), 2) },
			errors: []string{"application/vnd.oci.empty.v1+json", "not an image config"}},
		{name: "config without media type", mod: func(m obj) { m["config"] = obj{"digest": string(dg("c")), "size": 1} },
			errors: []string{"config", "no media type"}},
		{name: "bad layer digest", mod: func(m obj) {
			m["layers"] = []any{desc(MediaTypeOCILayerGzip, dg("l0"), 1), layer(MediaTypeOCILayerGzip, "sha256:../../etc/passwd", 1)}
		}, errors: []string{"layers[1]", "sha256:../../etc/passwd"}},
		{name: "unknown digest algorithm", mod: func(m obj) {
			m["layers"] = []any{layer(MediaTypeOCILayerGzip, "md5:d41d8cd98f00b204e9800998ecf8427e", 1)}
		}, errors: []string{"layers[0]", "md5:"}},
		{name: "negative size", mod: func(m obj) { m["layers"] = []any{desc(MediaTypeOCILayerGzip, dg("l0"), -5)} },
			errors: []string{"layers[0]", "negative size -5"}},
		{name: "unknown layer media type", mod: func(m obj) {
			m["layers"] = []any{desc(MediaTypeOCILayerGzip, dg("l0"), 1), desc(MediaTypeOCILayerGzip, dg("l1"), 1), desc("application/x-tar+lz4", dg("l2"), 1)}
		}, errors: []string{"layers[2]", `"application/x-tar+lz4"`, string(dg("l2"))}},
		{name: "embedded data matches", mod: func(m obj) {
			m["config"] = obj{"mediaType": MediaTypeOCIConfig, "digest": string(dg("{}")), "size": 2, "data": "e30="}
		}},
		{name: "embedded data mismatch", mod: func(m obj) {
			m["config"] = obj{"mediaType": MediaTypeOCIConfig, "digest": string(dg("xx")), "size": 2, "data": "e30="}
		}, errors: []string{"embedded data has digest " + string(dg("{}"))}},
		{name: "bad subject", mod: func(m obj) { m["subject"] = desc(MediaTypeOCIManifest, "sha256:zz", 1) }, errors: []string{"subject"}},
		{name: "oversized", raw: string(doc(t, big)), errors: []string{"manifest is", "more than the limit of 4194304"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.raw)
			if tc.raw == "" {
				m := goodManifest()
				tc.mod(m)
				data = doc(t, m)
			}
			m, err := ParseManifest(data)
			wantErr(t, err, tc.errors...)
			if err == nil && m.Config.Digest == "" {
				t.Fatal("parsed manifest has no config digest")
			}
		})
	}
}

func TestParseManifestSchema1Error(t *testing.T) {
	data := []byte(`{"schemaVersion":1,"fsLayers":[]}`)
	_, err := ParseManifest(data)
	if !errors.Is(err, ErrSchema1) {
		t.Fatalf("error %v is not ErrSchema1", err)
	}
	var s1 *Schema1Error
	if !errors.As(err, &s1) {
		t.Fatalf("error %T is not a *Schema1Error", err)
	}
	if s1.Digest != digest.FromBytes(data) {
		t.Fatalf("digest %s, want %s", s1.Digest, digest.FromBytes(data))
	}
	s1.Name = "docker.io/library/old:1"
	want := "docker schema1 manifests are not supported (image docker.io/library/old:1, digest " + digest.FromBytes(data).String() + "): re-push the image with a current tool"
	if err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
}

func goodIndex() obj {
	return obj{
		"schemaVersion": 2,
		"mediaType":     MediaTypeOCIIndex,
		"manifests": []any{
			obj{"mediaType": MediaTypeOCIManifest, "digest": string(dg("m0")), "size": 10, "platform": obj{"os": "linux", "architecture": "amd64"}},
			obj{"mediaType": MediaTypeOCIManifest, "digest": string(dg("m1")), "size": 10, "platform": obj{"os": "linux", "architecture": "arm64", "variant": "v8"}},
		},
	}
}

func TestParseIndex(t *testing.T) {
	big := goodIndex()
	big["annotations"] = obj{"pad": strings.Repeat("x", MaxManifestSize)}
	tests := []struct {
		name   string
		mod    func(m obj)
		raw    string
		errors []string
	}{
		{name: "oci", mod: func(obj) {}},
		{name: "empty", mod: func(m obj) { m["manifests"] = []any{} }},
		{name: "no media type field", mod: func(m obj) { delete(m, "mediaType") }},
		{name: "nested index entry", mod: func(m obj) {
			m["manifests"] = []any{desc(MediaTypeOCIIndex, dg("i"), 5)}
		}},
		{name: "malformed json", raw: `{"manifests": [`, errors: []string{"parse index", "unexpected end of JSON"}},
		{name: "schemaVersion 1", raw: `{"schemaVersion":1,"manifests":[]}`, errors: []string{"docker schema1"}},
		{name: "schemaVersion 3", mod: func(m obj) { m["schemaVersion"] = 3 }, errors: []string{"parse index", "schemaVersion 3, want 2"}},
		{name: "schema1 media type", mod: func(m obj) { m["mediaType"] = MediaTypeDockerSchema1 }, errors: []string{"docker schema1"}},
		{name: "manifest media type", mod: func(m obj) { m["mediaType"] = MediaTypeDockerManifest }, errors: []string{MediaTypeDockerManifest, "not an index"}},
		{name: "also a manifest", mod: func(m obj) { m["layers"] = []any{} }, errors: []string{"ambiguous"}},
		{name: "no manifests", mod: func(m obj) { delete(m, "manifests") }, errors: []string{"no manifests field"}},
		{name: "bad digest", mod: func(m obj) {
			m["manifests"] = []any{desc(MediaTypeOCIManifest, dg("a"), 1), desc(MediaTypeOCIManifest, "sha256:../../etc/passwd", 1)}
		}, errors: []string{"manifests[1]", "sha256:../../etc/passwd"}},
		{name: "uppercase hex digest", mod: func(m obj) {
			m["manifests"] = []any{desc(MediaTypeOCIManifest, digest.Digest(strings.ToUpper(string(dg("a")))), 1)}
		}, errors: []string{"manifests[0]"}},
		{name: "negative size", mod: func(m obj) { m["manifests"] = []any{desc(MediaTypeOCIManifest, dg("a"), -1)} },
			errors: []string{"manifests[0]", "negative size -1"}},
		{name: "no media type", mod: func(m obj) { m["manifests"] = []any{obj{"digest": string(dg("a")), "size": 1}} },
			errors: []string{"manifests[0]", "no media type"}},
		{name: "oversized", raw: string(doc(t, big)), errors: []string{"index is", "more than the limit"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.raw)
			if tc.raw == "" {
				m := goodIndex()
				tc.mod(m)
				data = doc(t, m)
			}
			_, err := ParseIndex(data)
			wantErr(t, err, tc.errors...)
		})
	}
}

func TestParseIndexDockerManifestList(t *testing.T) {
	// A manifest list as the Docker registry serves it, with the
	// Docker-only "features" platform field.
	data := []byte(`{
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
   "manifests": [
      {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 527,
       "digest": "` + string(dg("amd")) + `",
       "platform": {"architecture": "amd64", "os": "linux"}},
      {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 527,
       "digest": "` + string(dg("arm")) + `",
       "platform": {"architecture": "arm", "os": "linux", "variant": "v7", "features": ["sse4"]}},
      {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 527,
       "digest": "` + string(dg("win")) + `",
       "platform": {"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.1817"}}
   ]
}`)
	idx, err := ParseIndex(data)
	if err != nil {
		t.Fatal(err)
	}
	if idx.MediaType != MediaTypeDockerManifestList || len(idx.Manifests) != 3 {
		t.Fatalf("media type %q, %d manifests", idx.MediaType, len(idx.Manifests))
	}
	m := idx.Manifests[1]
	if m.MediaType != MediaTypeDockerManifest || m.Digest != dg("arm") || m.Size != 527 ||
		m.Platform == nil || m.Platform.Architecture != "arm" || m.Platform.Variant != "v7" {
		t.Fatalf("manifests[1] = %+v", m)
	}
	if idx.Manifests[2].Platform.OSVersion != "10.0.17763.1817" {
		t.Fatalf("os.version lost: %+v", idx.Manifests[2].Platform)
	}
}

func TestDetectKind(t *testing.T) {
	tests := []struct {
		name      string
		mediaType string
		data      string
		want      Kind
		errors    []string
	}{
		{"oci index", MediaTypeOCIIndex, "", KindIndex, nil},
		{"docker list", MediaTypeDockerManifestList, "", KindIndex, nil},
		{"oci manifest", MediaTypeOCIManifest, "", KindManifest, nil},
		{"docker manifest", MediaTypeDockerManifest, "", KindManifest, nil},
		{"oci config", MediaTypeOCIConfig, "", KindConfig, nil},
		{"docker config", MediaTypeDockerConfig, "", KindConfig, nil},
		{"zstd layer", MediaTypeOCILayerZstd, "", KindLayer, nil},
		{"docker layer", MediaTypeDockerLayerGzip, "", KindLayer, nil},
		{"schema1 type", MediaTypeDockerSchema1Signed, `{}`, KindUnknown, []string{"docker schema1", "re-push"}},
		{"unknown type", "application/vnd.example+json", "", KindUnknown, []string{`unknown media type "application/vnd.example+json"`}},
		{"sniff index", "", `{"schemaVersion":2,"manifests":[]}`, KindIndex, nil},
		{"sniff manifest", "application/json", `{"schemaVersion":2,"config":{},"layers":[]}`, KindManifest, nil},
		{"sniff by mediaType field", "", `{"mediaType":"` + MediaTypeDockerManifestList + `"}`, KindIndex, nil},
		{"sniff config", "", `{"architecture":"amd64","os":"linux","rootfs":{"type":"layers"}}`, KindConfig, nil},
		{"sniff schema1", "", `{"schemaVersion":1,"fsLayers":[]}`, KindUnknown, []string{"docker schema1"}},
		{"sniff ambiguous", "", `{"schemaVersion":2,"manifests":[],"layers":[]}`, KindUnknown, []string{"cannot tell"}},
		{"sniff unknown mediaType", "", `{"mediaType":"text/x-foo"}`, KindUnknown, []string{`"text/x-foo"`}},
		{"sniff not json", "", `hello`, KindUnknown, []string{"not a JSON document"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := DetectKind(tc.mediaType, []byte(tc.data))
			wantErr(t, err, tc.errors...)
			if k != tc.want {
				t.Fatalf("kind %v, want %v", k, tc.want)
			}
		})
	}
}

func TestLayerCompression(t *testing.T) {
	for mt, want := range map[string]Compression{
		MediaTypeOCILayer:                     Uncompressed,
		MediaTypeOCILayerGzip:                 Gzip,
		MediaTypeOCILayerZstd:                 Zstd,
		MediaTypeOCILayerNondistributableZstd: Zstd,
		MediaTypeDockerLayerGzip:              Gzip,
		MediaTypeDockerLayerForeign:           Gzip,
	} {
		got, err := LayerCompression(mt)
		if err != nil || got != want {
			t.Errorf("LayerCompression(%q) = %v, %v; want %v", mt, got, err, want)
		}
	}
	_, err := LayerCompression(MediaTypeOCIConfig)
	wantErr(t, err, "unknown layer media type", MediaTypeOCIConfig)
}
