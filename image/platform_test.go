package image

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func plat(os, arch, variant string) ocispec.Platform {
	return ocispec.Platform{OS: os, Architecture: arch, Variant: variant}
}

func TestParsePlatform(t *testing.T) {
	tests := []struct {
		in     string
		want   ocispec.Platform
		errors []string
	}{
		{"linux/amd64", plat("linux", "amd64", ""), nil},
		{"linux/amd64/v1", plat("linux", "amd64", ""), nil},
		{"linux/amd64/v3", plat("linux", "amd64", "v3"), nil},
		{"Linux/X86_64", plat("linux", "amd64", ""), nil},
		{"linux/arm64/v8", plat("linux", "arm64", ""), nil},
		{"linux/aarch64", plat("linux", "arm64", ""), nil},
		{"linux/arm64/v9", plat("linux", "arm64", "v9"), nil},
		{"linux/arm/v7", plat("linux", "arm", "v7"), nil},
		{"linux/arm", plat("linux", "arm", "v7"), nil},
		{"linux/arm/6", plat("linux", "arm", "v6"), nil},
		{"linux/armhf", plat("linux", "arm", "v7"), nil},
		{"linux/armel", plat("linux", "arm", "v6"), nil},
		{"linux/i686", plat("linux", "386", ""), nil},
		{"linux/s390x", plat("linux", "s390x", ""), nil},
		{"windows/amd64", plat("windows", "amd64", ""), nil},
		{"linux", ocispec.Platform{}, []string{`platform "linux"`, "os/arch"}},
		{"linux/amd64/v3/x", ocispec.Platform{}, []string{"os/arch or os/arch/variant"}},
		{"/amd64", ocispec.Platform{}, []string{"empty os"}},
		{"linux/", ocispec.Platform{}, []string{"empty architecture"}},
		{"linux/arm/", ocispec.Platform{}, []string{"empty variant"}},
		{"linux/am d64", ocispec.Platform{}, []string{"invalid character ' '"}},
		{"", ocispec.Platform{}, []string{"os/arch"}},
	}
	for _, tc := range tests {
		got, err := ParsePlatform(tc.in)
		if len(tc.errors) > 0 {
			if err == nil {
				t.Errorf("ParsePlatform(%q) = %+v, want an error", tc.in, got)
				continue
			}
			for _, p := range tc.errors {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("ParsePlatform(%q): error %q does not contain %q", tc.in, err, p)
				}
			}
			continue
		}
		if err != nil {
			t.Errorf("ParsePlatform(%q): %v", tc.in, err)
			continue
		}
		if got.OS != tc.want.OS || got.Architecture != tc.want.Architecture || got.Variant != tc.want.Variant {
			t.Errorf("ParsePlatform(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestFormatPlatform(t *testing.T) {
	for in, want := range map[string]string{"linux/amd64": "linux/amd64", "linux/arm/v7": "linux/arm/v7", "linux/arm64/v8": "linux/arm64"} {
		p, err := ParsePlatform(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := FormatPlatform(p); got != want {
			t.Errorf("FormatPlatform(ParsePlatform(%q)) = %q, want %q", in, got, want)
		}
	}
}

func TestCompatible(t *testing.T) {
	tests := []struct {
		host, cand string
		want       bool
	}{
		{"linux/amd64", "linux/amd64", true},
		{"linux/amd64", "linux/amd64/v1", true},
		{"linux/amd64", "linux/amd64/v2", false},
		{"linux/amd64/v3", "linux/amd64/v2", true},
		{"linux/amd64/v3", "linux/amd64", true},
		{"linux/amd64/v3", "linux/amd64/v4", false},
		{"linux/arm64", "linux/arm64/v8", true},
		{"linux/arm64/v8", "linux/arm64", true},
		{"linux/arm64", "linux/arm64/v9", false},
		{"linux/arm64/v9", "linux/arm64/v8.2", true},
		{"linux/arm/v7", "linux/arm/v6", true},
		{"linux/arm/v7", "linux/arm/v5", true},
		{"linux/arm/v6", "linux/arm/v7", false},
		{"linux/arm/v8", "linux/arm/v7", true},
		{"linux/arm64", "linux/arm/v7", false},
		{"linux/amd64", "linux/386", false},
		{"linux/amd64", "windows/amd64", false},
		{"linux/riscv64", "linux/riscv64/rva22u64", false},
		{"linux/riscv64/rva22u64", "linux/riscv64/rva22u64", true},
	}
	for _, tc := range tests {
		host, err := ParsePlatform(tc.host)
		if err != nil {
			t.Fatal(err)
		}
		cand, err := ParsePlatform(tc.cand)
		if err != nil {
			t.Fatal(err)
		}
		if got := Compatible(host, cand); got != tc.want {
			t.Errorf("Compatible(%s, %s) = %v, want %v", tc.host, tc.cand, got, tc.want)
		}
	}
	// Raw, unnormalized index platforms are normalized before comparing.
	if !Compatible(plat("linux", "arm64", ""), plat("linux", "aarch64", "8")) {
		t.Error("linux/arm64 does not match an index's linux/aarch64/8")
	}
}

func entry(name string, p *ocispec.Platform) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: MediaTypeOCIManifest, Digest: dg(name), Size: 1, Platform: p}
}

func pp(os, arch, variant string) *ocispec.Platform {
	p := plat(os, arch, variant)
	return &p
}

func TestMatchIndex(t *testing.T) {
	attestation := entry("att", pp("unknown", "unknown", ""))
	attestation.Annotations = map[string]string{"vnd.docker.reference.type": "attestation-manifest"}
	idx := &ocispec.Index{Manifests: []ocispec.Descriptor{
		entry("noplat", nil),
		entry("amd64", pp("linux", "amd64", "")),
		entry("amd64v3", pp("linux", "amd64", "v3")),
		entry("arm64", pp("linux", "arm64", "v8")),
		entry("armv5", pp("linux", "arm", "v5")),
		entry("armv7", pp("linux", "arm", "v7")),
		entry("armv6", pp("linux", "arm", "v6")),
		entry("win", &ocispec.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763"}),
		entry("amd64-dup", pp("linux", "amd64", "")),
		attestation,
		{MediaType: "application/vnd.oci.empty.v1+json", Digest: dg("art"), Platform: pp("linux", "s390x", "")},
	}}
	tests := []struct {
		platform string
		want     string
	}{
		{"linux/amd64", "amd64"}, // first of two equal entries
		{"linux/amd64/v2", "amd64"},
		{"linux/amd64/v3", "amd64v3"},
		{"linux/amd64/v4", "amd64v3"},
		{"linux/arm64", "arm64"},
		{"linux/arm64/v8", "arm64"},
		{"linux/arm/v7", "armv7"},
		{"linux/arm/v8", "armv7"},
		{"linux/arm/v6", "armv6"},
		{"windows/amd64", "win"},
	}
	for _, tc := range tests {
		p, err := ParsePlatform(tc.platform)
		if err != nil {
			t.Fatal(err)
		}
		d, err := MatchIndex(idx, p)
		if err != nil {
			t.Errorf("MatchIndex(%s): %v", tc.platform, err)
			continue
		}
		if d.Digest != dg(tc.want) {
			t.Errorf("MatchIndex(%s) = %s, want %s", tc.platform, d.Digest, tc.want)
		}
	}

	_, err := MatchIndex(idx, plat("linux", "s390x", ""))
	wantErr(t, err, "no manifest for linux/s390x in index (available: (no platform), linux/amd64, linux/amd64/v3, linux/arm64/v8, linux/arm/v5, linux/arm/v7, linux/arm/v6, windows/amd64, linux/amd64)")
	var nm *NoMatchError
	if !errors.As(err, &nm) {
		t.Fatalf("error %T is not a *NoMatchError", err)
	}
	nm.Index = dg("index")
	wantErr(t, err, "no manifest for linux/s390x in index "+string(dg("index"))+" (available: ")

	_, err = MatchIndex(&ocispec.Index{}, plat("linux", "arm", "v4"))
	wantErr(t, err, "no manifest for linux/arm/v4 in index (it lists no platforms)")
	_, err = MatchIndex(idx, plat("linux", "arm", "v4"))
	wantErr(t, err, "no manifest for linux/arm/v4")
}

func TestMatchIndexDockerList(t *testing.T) {
	// Docker manifest lists and raw architecture names from the wild.
	idx, err := ParseIndex(doc(t, obj{
		"schemaVersion": 2,
		"mediaType":     MediaTypeDockerManifestList,
		"manifests": []any{
			obj{"mediaType": MediaTypeDockerManifest, "digest": string(dg("a")), "size": 1, "platform": obj{"os": "linux", "architecture": "arm64", "variant": "v8"}},
			obj{"mediaType": MediaTypeDockerManifest, "digest": string(dg("b")), "size": 1, "platform": obj{"os": "linux", "architecture": "arm"}},
		},
	}))
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"linux/arm64": "a", "linux/arm/v7": "b", "linux/armhf": "b"} {
		pl, err := ParsePlatform(p)
		if err != nil {
			t.Fatal(err)
		}
		d, err := MatchIndex(idx, pl)
		if err != nil || d.Digest != dg(want) {
			t.Errorf("MatchIndex(%s) = %s, %v; want %s", p, d.Digest, err, want)
		}
	}
}

func TestDefaultPlatform(t *testing.T) {
	p := DefaultPlatform()
	if p.OS != runtime.GOOS {
		t.Errorf("os %q, want %q", p.OS, runtime.GOOS)
	}
	want := NormalizePlatform(plat(runtime.GOOS, runtime.GOARCH, "")).Architecture
	if p.Architecture != want {
		t.Errorf("architecture %q, want %q", p.Architecture, want)
	}
	if n := NormalizePlatform(p); n.Architecture != p.Architecture || n.Variant != p.Variant || n.OS != p.OS {
		t.Errorf("DefaultPlatform %+v is not normalized", p)
	}
	// This machine can run images built for its own base platform.
	if !Compatible(p, plat(runtime.GOOS, runtime.GOARCH, "")) && runtime.GOARCH != "arm" {
		t.Errorf("DefaultPlatform %+v cannot run %s/%s", p, runtime.GOOS, runtime.GOARCH)
	}
	if _, err := ParsePlatform(FormatPlatform(p)); err != nil {
		t.Errorf("DefaultPlatform %s does not parse: %v", FormatPlatform(p), err)
	}
}

func TestArmVariantFromCPUInfo(t *testing.T) {
	for in, want := range map[string]string{
		"processor\t: 0\nCPU architecture: 7\nCPU variant\t: 0x0\n": "v7",
		"CPU architecture: 8\n":       "v8",
		"CPU architecture: AArch64\n": "v8",
		"CPU architecture: 6TEJ\n":    "v6",
		"CPU architecture: 5TE\n":     "v5",
		"CPU architecture: ?(12)\n":   "v7",
		"model name: x86\n":           "",
		"CPU architecture: banana\n":  "",
	} {
		if got := armVariantFromCPUInfo(strings.NewReader(in)); got != want {
			t.Errorf("armVariantFromCPUInfo(%q) = %q, want %q", in, got, want)
		}
	}
}
