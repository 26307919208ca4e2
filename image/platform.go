package image

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/cpu"
)

// ParsePlatform parses "os/arch" or "os/arch/variant" ("linux/amd64",
// "linux/arm64/v8", "linux/arm/v7") and returns it normalized
// ([NormalizePlatform]).
func ParsePlatform(s string) (ocispec.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return ocispec.Platform{}, fmt.Errorf("platform %q: want os/arch or os/arch/variant", s)
	}
	for i, part := range parts {
		if part == "" {
			return ocispec.Platform{}, fmt.Errorf("platform %q: empty %s", s, [...]string{"os", "architecture", "variant"}[i])
		}
		for _, r := range part {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.') {
				return ocispec.Platform{}, fmt.Errorf("platform %q: invalid character %q", s, r)
			}
		}
	}
	p := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return NormalizePlatform(p), nil
}

// FormatPlatform returns p as "os/arch" or "os/arch/variant".
func FormatPlatform(p ocispec.Platform) string {
	osName, arch := p.OS, p.Architecture
	if osName == "" {
		osName = "unknown"
	}
	if arch == "" {
		arch = "unknown"
	}
	s := osName + "/" + arch
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// NormalizePlatform returns p with its names in canonical form: lower case,
// architecture aliases resolved (x86_64 → amd64, aarch64 → arm64, armhf →
// arm/v7, i686 → 386), numeric variants prefixed with "v", and each
// architecture's base variant written the way image indexes write it:
// amd64 v1 and arm64 v8 become "", a bare arm becomes arm/v7.
// os.version and os.features are kept unchanged.
func NormalizePlatform(p ocispec.Platform) ocispec.Platform {
	p.OS = strings.ToLower(p.OS)
	if p.OS == "macos" {
		p.OS = "darwin"
	}
	p.Architecture = strings.ToLower(p.Architecture)
	p.Variant = strings.ToLower(p.Variant)
	if p.Variant != "" && p.Variant[0] >= '0' && p.Variant[0] <= '9' {
		p.Variant = "v" + p.Variant
	}
	switch p.Architecture {
	case "x86_64", "x86-64", "amd64":
		p.Architecture = "amd64"
		if p.Variant == "v1" {
			p.Variant = ""
		}
	case "i386", "i486", "i586", "i686", "386":
		p.Architecture = "386"
	case "aarch64", "arm64":
		p.Architecture = "arm64"
		if p.Variant == "v8" || p.Variant == "v8.0" {
			p.Variant = ""
		}
	case "armhf":
		p.Architecture, p.Variant = "arm", "v7"
	case "armel":
		p.Architecture, p.Variant = "arm", "v6"
	case "arm":
		if p.Variant == "" {
			p.Variant = "v7"
		}
	}
	return p
}

// variantLevel returns a normalized variant as a comparable number
// (major*1000 + minor): "" is the architecture's base level (amd64 v1,
// arm64 v8, otherwise 0). ok is false for variants that are not vN or vN.M.
func variantLevel(arch, variant string) (level int, ok bool) {
	if variant == "" {
		switch arch {
		case "amd64":
			return 1000, true
		case "arm64":
			return 8000, true
		}
		return 0, true
	}
	if variant[0] != 'v' {
		return 0, false
	}
	majS, minS, hasMinor := strings.Cut(variant[1:], ".")
	maj, err := strconv.Atoi(majS)
	if err != nil || maj < 0 || maj > 1000 {
		return 0, false
	}
	minor := 0
	if hasMinor {
		if minor, err = strconv.Atoi(minS); err != nil || minor < 0 || minor > 999 {
			return 0, false
		}
	}
	return maj*1000 + minor, true
}

// matchScore says whether an image for candidate runs on host, and how
// well: a higher score is a closer match. The OS and architecture must be
// equal; the candidate's variant must be the host's or an older level of
// the same architecture (amd64 v2 runs on v3, arm v6 on v7). os.version and
// os.features are ignored.
func matchScore(host, candidate ocispec.Platform) (int, bool) {
	host, candidate = NormalizePlatform(host), NormalizePlatform(candidate)
	if host.OS != candidate.OS || host.Architecture != candidate.Architecture {
		return 0, false
	}
	if host.Variant == candidate.Variant {
		return 1 << 30, true
	}
	h, okH := variantLevel(host.Architecture, host.Variant)
	c, okC := variantLevel(candidate.Architecture, candidate.Variant)
	if !okH || !okC || c > h {
		return 0, false
	}
	return c + 1, true
}

// Compatible reports whether an image built for candidate runs on host,
// by the rules of [MatchIndex].
func Compatible(host, candidate ocispec.Platform) bool {
	_, ok := matchScore(host, candidate)
	return ok
}

// MatchIndex picks the manifest (or nested index) for platform p from idx:
// among the entries whose platform is compatible with p (see [Compatible])
// the one with the closest variant, the first in index order on a tie.
// Entries without a platform are not matched. With no match it returns a
// [*NoMatchError] listing the platforms the index does have.
func MatchIndex(idx *ocispec.Index, p ocispec.Platform) (ocispec.Descriptor, error) {
	best, bestScore := -1, 0
	var available []string
	for i, d := range idx.Manifests {
		if !isManifestType(d.MediaType) && !isIndexType(d.MediaType) {
			continue
		}
		if d.Platform == nil {
			available = append(available, "(no platform)")
			continue
		}
		if d.Annotations["vnd.docker.reference.type"] == "" {
			available = append(available, FormatPlatform(*d.Platform))
		}
		if s, ok := matchScore(p, *d.Platform); ok && s > bestScore {
			best, bestScore = i, s
		}
	}
	if best < 0 {
		return ocispec.Descriptor{}, &NoMatchError{Platform: p, Available: available}
	}
	return idx.Manifests[best], nil
}

// DefaultPlatform returns the platform of this machine: runtime.GOOS and
// runtime.GOARCH, with the CPU variant of arm (from /proc/cpuinfo, else the
// GOARM the binary was built for, else v7) and of amd64 (the x86-64
// microarchitecture level v2..v4 the CPU supports).
func DefaultPlatform() ocispec.Platform {
	p := ocispec.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}
	switch runtime.GOARCH {
	case "arm":
		p.Variant = armVariant()
	case "amd64":
		p.Variant = amd64Variant()
	}
	return NormalizePlatform(p)
}

func armVariant() string {
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		v := armVariantFromCPUInfo(f)
		f.Close()
		if v != "" {
			return v
		}
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "GOARM" && s.Value != "" {
				return "v" + strings.SplitN(s.Value, ",", 2)[0]
			}
		}
	}
	return "v7"
}

// armVariantFromCPUInfo reads the "CPU architecture" line of
// /proc/cpuinfo: "7" → v7, "8" or "AArch64" → v8; "" if there is none.
func armVariantFromCPUInfo(r io.Reader) string {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || !strings.EqualFold(strings.TrimSpace(key), "CPU architecture") {
			continue
		}
		val = strings.ToLower(strings.TrimSpace(val))
		switch {
		case val == "aarch64" || strings.HasPrefix(val, "8"):
			return "v8"
		case strings.HasPrefix(val, "7") || strings.HasPrefix(val, "?("):
			return "v7"
		case strings.HasPrefix(val, "6"):
			return "v6"
		case strings.HasPrefix(val, "5"):
			return "v5"
		}
		return ""
	}
	return ""
}

// amd64Variant returns the x86-64 microarchitecture level of this CPU, by
// the feature lists of the x86-64 psABI (the ones GOAMD64 uses).
func amd64Variant() string {
	x := cpu.X86
	if !(x.HasCX16 && x.HasLAHF && x.HasPOPCNT && x.HasSSE3 && x.HasSSE41 && x.HasSSE42 && x.HasSSSE3) {
		return "v1"
	}
	if !(x.HasAVX && x.HasAVX2 && x.HasBMI1 && x.HasBMI2 && x.HasF16C && x.HasFMA && x.HasLZCNT && x.HasMOVBE && x.HasOSXSAVE) {
		return "v2"
	}
	if !(x.HasAVX512F && x.HasAVX512BW && x.HasAVX512CD && x.HasAVX512DQ && x.HasAVX512VL) {
		return "v3"
	}
	return "v4"
}
