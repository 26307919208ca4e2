package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest media types the server accepts.
const (
	MediaTypeOCIManifest    = ocispec.MediaTypeImageManifest
	MediaTypeOCIIndex       = ocispec.MediaTypeImageIndex
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerSchema1  = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeDockerSigned   = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// rawManifest holds the fields of every accepted manifest kind.
type rawManifest struct {
	SchemaVersion *int                `json:"schemaVersion"`
	MediaType     string              `json:"mediaType"`
	ArtifactType  string              `json:"artifactType"`
	Config        *ocispec.Descriptor `json:"config"`
	Layers        []json.RawMessage   `json:"layers"`
	Manifests     []json.RawMessage   `json:"manifests"`
	Subject       *ocispec.Descriptor `json:"subject"`
	Annotations   map[string]string   `json:"annotations"`
	FSLayers      json.RawMessage     `json:"fsLayers"` // schema1
}

// manifest is a parsed, validated manifest.
type manifest struct {
	MediaType    string
	ArtifactType string // the referrers API's artifactType
	Index        bool
	// Blobs are the config and layers of an image manifest; Children the
	// manifests of an index.
	Blobs       []ocispec.Descriptor
	Children    []ocispec.Descriptor
	Subject     *ocispec.Descriptor
	Annotations map[string]string
}

func manifestInvalid(format string, args ...any) *regError {
	return errorf(http.StatusBadRequest, CodeManifestInvalid, "manifest invalid: "+fmt.Sprintf(format, args...), nil)
}

// parseManifest parses and validates manifest bytes b sent with
// Content-Type contentType: an OCI image manifest or index, or a Docker
// schema2 manifest or manifest list. Schema1 is refused.
func parseManifest(b []byte, contentType string) (*manifest, *regError) {
	var raw rawManifest
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil {
		return nil, manifestInvalid("not JSON: %v", err)
	}
	if dec.More() {
		return nil, manifestInvalid("trailing data after the JSON document")
	}
	if raw.SchemaVersion == nil {
		return nil, manifestInvalid("no schemaVersion")
	}
	if *raw.SchemaVersion == 1 || raw.FSLayers != nil || contentType == mediaTypeDockerSchema1 || contentType == mediaTypeDockerSigned {
		return nil, manifestInvalid("Docker schema1 manifests are not supported")
	}
	if *raw.SchemaVersion != 2 {
		return nil, manifestInvalid("schemaVersion %d, want 2", *raw.SchemaVersion)
	}
	mt := raw.MediaType
	if mt == "" {
		mt = contentType
	}
	if raw.MediaType != "" && contentType != "" && contentType != raw.MediaType && !isGenericType(contentType) {
		return nil, manifestInvalid("mediaType %q does not match Content-Type %q", raw.MediaType, contentType)
	}
	if mt == "" || isGenericType(mt) {
		// Neither says: the structure does.
		switch {
		case raw.Manifests != nil && raw.Config == nil:
			mt = MediaTypeOCIIndex
		case raw.Config != nil:
			mt = MediaTypeOCIManifest
		default:
			return nil, manifestInvalid("no mediaType and neither config nor manifests")
		}
	}
	m := &manifest{MediaType: mt, Subject: raw.Subject, Annotations: raw.Annotations, ArtifactType: raw.ArtifactType}
	switch mt {
	case MediaTypeOCIManifest, MediaTypeDockerManifest:
		if raw.Config == nil {
			return nil, manifestInvalid("image manifest without config")
		}
		if raw.Manifests != nil {
			return nil, manifestInvalid("image manifest with a manifests list")
		}
		if err := checkDescriptor("config", *raw.Config); err != nil {
			return nil, err
		}
		m.Blobs = append(m.Blobs, *raw.Config)
		for i, l := range raw.Layers {
			d, err := decodeDescriptor(fmt.Sprintf("layers[%d]", i), l)
			if err != nil {
				return nil, err
			}
			if len(d.URLs) > 0 {
				continue // non-distributable: not stored here
			}
			m.Blobs = append(m.Blobs, d)
		}
		if m.ArtifactType == "" {
			m.ArtifactType = raw.Config.MediaType
		}
	case MediaTypeOCIIndex, MediaTypeDockerList:
		if raw.Config != nil || raw.Layers != nil {
			return nil, manifestInvalid("index with config or layers")
		}
		for i, c := range raw.Manifests {
			d, err := decodeDescriptor(fmt.Sprintf("manifests[%d]", i), c)
			if err != nil {
				return nil, err
			}
			m.Children = append(m.Children, d)
		}
		m.Index = true
	default:
		return nil, manifestInvalid("unsupported media type %q", mt)
	}
	if m.Subject != nil {
		if err := checkDescriptor("subject", *m.Subject); err != nil {
			return nil, err
		}
	}
	if mt == MediaTypeDockerManifest || mt == MediaTypeDockerList {
		m.Subject = nil // not part of Docker's formats
	}
	return m, nil
}

func isGenericType(t string) bool {
	return t == "application/json" || t == "application/octet-stream"
}

func decodeDescriptor(what string, b json.RawMessage) (ocispec.Descriptor, *regError) {
	var d ocispec.Descriptor
	if err := json.Unmarshal(b, &d); err != nil {
		return d, manifestInvalid("%s: %v", what, err)
	}
	return d, checkDescriptor(what, d)
}

func checkDescriptor(what string, d ocispec.Descriptor) *regError {
	if d.MediaType == "" {
		return manifestInvalid("%s: no mediaType", what)
	}
	if d.Size < 0 {
		return manifestInvalid("%s: negative size %d", what, d.Size)
	}
	if err := d.Digest.Validate(); err != nil {
		return manifestInvalid("%s: digest %q: %v", what, d.Digest, err)
	}
	if d.Digest.Algorithm() != digest.SHA256 && d.Digest.Algorithm() != digest.SHA512 {
		return manifestInvalid("%s: unsupported digest algorithm %q", what, d.Digest.Algorithm())
	}
	return nil
}
