package image

import (
	_ "crypto/sha256" // digest algorithms used by go-digest
	_ "crypto/sha512"
	"encoding/json"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ParseConfig parses and validates an OCI or Docker image config. It checks
// that os and architecture are set, that rootfs.type is "layers", and that
// every rootfs.diff_ids entry is a valid digest. Whether the diff IDs match
// the manifest's layers is checked by [CheckLayers].
func ParseConfig(data []byte) (*ocispec.Image, error) {
	if int64(len(data)) > MaxConfigSize {
		return nil, tooLarge("config", len(data), MaxConfigSize)
	}
	var c ocispec.Image
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	if c.OS == "" {
		return nil, fmt.Errorf("parse config: no os")
	}
	if c.Architecture == "" {
		return nil, fmt.Errorf("parse config: no architecture")
	}
	if c.RootFS.Type != "layers" {
		return nil, fmt.Errorf("parse config: rootfs.type is %q, want \"layers\"", c.RootFS.Type)
	}
	for i, d := range c.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return nil, fmt.Errorf("parse config: rootfs.diff_ids[%d] %q: %w", i, d, err)
		}
	}
	return &c, nil
}

// CheckLayers checks that a manifest and its config describe the same
// number of layers: one diff ID for each layer descriptor.
func CheckLayers(m *ocispec.Manifest, c *ocispec.Image) error {
	if len(m.Layers) != len(c.RootFS.DiffIDs) {
		return fmt.Errorf("manifest has %d layers but config %s has %d rootfs.diff_ids",
			len(m.Layers), m.Config.Digest, len(c.RootFS.DiffIDs))
	}
	return nil
}

// ChainIDs returns the chain ID of each layer in diffIDs (bottom first): the
// identity of the filesystem made by applying layers 0..n in order, used as
// the key of its snapshot. chainID(0) = diffID(0), and chainID(n) =
// sha256(chainID(n-1) + " " + diffID(n)).
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	if len(diffIDs) == 0 {
		return nil
	}
	out := make([]digest.Digest, len(diffIDs))
	out[0] = diffIDs[0]
	for i := 1; i < len(diffIDs); i++ {
		out[i] = digest.Canonical.FromString(out[i-1].String() + " " + diffIDs[i].String())
	}
	return out
}
