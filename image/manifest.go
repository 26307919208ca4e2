package image

import (
	"encoding/json"
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Size caps on JSON documents, checked before they are parsed. Callers read
// such blobs through [ReadBlob] (or an io.LimitReader of the cap plus one
// byte) so that an oversized blob is refused before it is held in memory.
const (
	MaxManifestSize = 4 << 20 // manifests and indexes
	MaxConfigSize   = 8 << 20 // image configs
)

// ParseIndex parses and validates an OCI image index or a Docker manifest
// list (whose JSON has the same shape; its media types are kept as they
// were). It checks schemaVersion 2, that the document is not also a
// manifest, and that every manifest descriptor has a media type, a valid
// digest and a non-negative size.
func ParseIndex(data []byte) (*ocispec.Index, error) {
	if int64(len(data)) > MaxManifestSize {
		return nil, tooLarge("index", len(data), MaxManifestSize)
	}
	p, err := probeDoc(data, "index")
	if err != nil {
		return nil, err
	}
	if p.MediaType != "" && !isIndexType(p.MediaType) {
		return nil, fmt.Errorf("parse index: document has media type %q, not an index", p.MediaType)
	}
	if present(p.Config) || present(p.Layers) {
		return nil, fmt.Errorf("parse index: document has config or layers, as a manifest does: ambiguous, refused")
	}
	if !present(p.Manifests) {
		return nil, fmt.Errorf("parse index: no manifests field")
	}
	if err := checkSchemaVersion(p, "index"); err != nil {
		return nil, err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("parse index: %w", err)
	}
	for i, d := range idx.Manifests {
		if err := checkDescriptor(d); err != nil {
			return nil, fmt.Errorf("parse index: manifests[%d]: %w", i, err)
		}
	}
	if idx.Subject != nil {
		if err := checkDescriptor(*idx.Subject); err != nil {
			return nil, fmt.Errorf("parse index: subject: %w", err)
		}
	}
	return &idx, nil
}

// ParseManifest parses and validates an OCI image manifest or a Docker
// schema2 manifest. It checks schemaVersion 2, that the document is not
// also an index, that the config descriptor is present and is an image
// config, that every descriptor has a valid digest and a non-negative size,
// and that every layer has a media type berth can unpack (the error names
// the layer's index and media type). Docker schema1 manifests are refused
// with a [*Schema1Error].
func ParseManifest(data []byte) (*ocispec.Manifest, error) {
	if int64(len(data)) > MaxManifestSize {
		return nil, tooLarge("manifest", len(data), MaxManifestSize)
	}
	p, err := probeDoc(data, "manifest")
	if err != nil {
		return nil, err
	}
	if p.MediaType != "" && !isManifestType(p.MediaType) {
		return nil, fmt.Errorf("parse manifest: document has media type %q, not a manifest", p.MediaType)
	}
	if present(p.Manifests) {
		return nil, fmt.Errorf("parse manifest: document has manifests, as an index does: ambiguous, refused")
	}
	if err := checkSchemaVersion(p, "manifest"); err != nil {
		return nil, err
	}
	if !present(p.Config) {
		return nil, fmt.Errorf("parse manifest: no config descriptor")
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("parse manifest: %w", err)
	}
	if err := checkDescriptor(m.Config); err != nil {
		return nil, fmt.Errorf("parse manifest: config: %w", err)
	}
	if !isConfigType(m.Config.MediaType) {
		return nil, fmt.Errorf("parse manifest: config has media type %q, not an image config (artifactType %q): not a runnable image", m.Config.MediaType, m.ArtifactType)
	}
	for i, l := range m.Layers {
		if err := checkDescriptor(l); err != nil {
			return nil, fmt.Errorf("parse manifest: layers[%d]: %w", i, err)
		}
		if !IsLayer(l.MediaType) {
			return nil, fmt.Errorf("parse manifest: layers[%d] (%s): unknown layer media type %q", i, l.Digest, l.MediaType)
		}
	}
	if m.Subject != nil {
		if err := checkDescriptor(*m.Subject); err != nil {
			return nil, fmt.Errorf("parse manifest: subject: %w", err)
		}
	}
	return &m, nil
}

func probeDoc(data []byte, what string) (*probe, error) {
	var p probe
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, fmt.Errorf("parse %s: %w", what, err)
	}
	if p.schema1() {
		return nil, newSchema1Error(data)
	}
	return &p, nil
}

func checkSchemaVersion(p *probe, what string) error {
	if p.SchemaVersion == nil {
		return fmt.Errorf("parse %s: no schemaVersion", what)
	}
	if *p.SchemaVersion != 2 {
		return fmt.Errorf("parse %s: schemaVersion %d, want 2", what, *p.SchemaVersion)
	}
	return nil
}

// checkDescriptor validates the fields every descriptor must have. Embedded
// data, when present, must match the digest and size.
func checkDescriptor(d ocispec.Descriptor) error {
	if d.MediaType == "" {
		return fmt.Errorf("descriptor %s has no media type", d.Digest)
	}
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("descriptor digest %q: %w", d.Digest, err)
	}
	if d.Size < 0 {
		return fmt.Errorf("descriptor %s: negative size %d", d.Digest, d.Size)
	}
	if d.Data != nil {
		if int64(len(d.Data)) != d.Size {
			return fmt.Errorf("descriptor %s: embedded data is %d bytes, size says %d", d.Digest, len(d.Data), d.Size)
		}
		if got := d.Digest.Algorithm().FromBytes(d.Data); got != d.Digest {
			return fmt.Errorf("descriptor %s: embedded data has digest %s", d.Digest, got)
		}
	}
	return nil
}

// ValidateDescriptor checks that d has a media type, a valid digest (so its
// encoded part is safe to use as a file name) and a non-negative size.
func ValidateDescriptor(d ocispec.Descriptor) error { return checkDescriptor(d) }
