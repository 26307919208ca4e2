package image

import (
	"encoding/json"
	"fmt"
)

// Media types of the documents and layers berth understands.
const (
	MediaTypeOCIIndex    = "application/vnd.oci.image.index.v1+json"
	MediaTypeOCIManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeOCIConfig   = "application/vnd.oci.image.config.v1+json"

	MediaTypeOCILayer                     = "application/vnd.oci.image.layer.v1.tar"
	MediaTypeOCILayerGzip                 = "application/vnd.oci.image.layer.v1.tar+gzip"
	MediaTypeOCILayerZstd                 = "application/vnd.oci.image.layer.v1.tar+zstd"
	MediaTypeOCILayerNondistributable     = "application/vnd.oci.image.layer.nondistributable.v1.tar"
	MediaTypeOCILayerNondistributableGzip = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
	MediaTypeOCILayerNondistributableZstd = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayerZstd    = "application/vnd.docker.image.rootfs.diff.tar.zstd"
	MediaTypeDockerLayerForeign = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

	MediaTypeDockerSchema1       = "application/vnd.docker.distribution.manifest.v1+json"
	MediaTypeDockerSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// Kind is what a blob is: an index, a manifest, a config or a layer.
type Kind int

// The kinds of blob. KindUnknown is the zero value and is never returned
// without an error.
const (
	KindUnknown  Kind = iota
	KindIndex         // OCI image index or Docker manifest list
	KindManifest      // OCI image manifest or Docker schema2 manifest
	KindConfig        // OCI or Docker image config
	KindLayer         // a filesystem changeset (tar, possibly compressed)
)

func (k Kind) String() string {
	switch k {
	case KindIndex:
		return "index"
	case KindManifest:
		return "manifest"
	case KindConfig:
		return "config"
	case KindLayer:
		return "layer"
	}
	return "unknown"
}

// Compression is how a layer's tar stream is compressed.
type Compression int

// The layer compressions.
const (
	Uncompressed Compression = iota
	Gzip
	Zstd
)

func (c Compression) String() string {
	switch c {
	case Uncompressed:
		return "uncompressed"
	case Gzip:
		return "gzip"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("compression(%d)", int(c))
}

var layerCompression = map[string]Compression{
	MediaTypeOCILayer:                     Uncompressed,
	MediaTypeOCILayerGzip:                 Gzip,
	MediaTypeOCILayerZstd:                 Zstd,
	MediaTypeOCILayerNondistributable:     Uncompressed,
	MediaTypeOCILayerNondistributableGzip: Gzip,
	MediaTypeOCILayerNondistributableZstd: Zstd,
	MediaTypeDockerLayer:                  Uncompressed,
	MediaTypeDockerLayerGzip:              Gzip,
	MediaTypeDockerLayerZstd:              Zstd,
	MediaTypeDockerLayerForeign:           Gzip,
}

// LayerCompression reports how a layer of the given media type is
// compressed, or an error if mediaType is not a layer type berth can unpack.
func LayerCompression(mediaType string) (Compression, error) {
	c, ok := layerCompression[mediaType]
	if !ok {
		return 0, fmt.Errorf("unknown layer media type %q", mediaType)
	}
	return c, nil
}

// IsLayer reports whether mediaType is a layer type berth can unpack.
func IsLayer(mediaType string) bool {
	_, ok := layerCompression[mediaType]
	return ok
}

func isIndexType(mt string) bool { return mt == MediaTypeOCIIndex || mt == MediaTypeDockerManifestList }

func isManifestType(mt string) bool {
	return mt == MediaTypeOCIManifest || mt == MediaTypeDockerManifest
}

func isConfigType(mt string) bool { return mt == MediaTypeOCIConfig || mt == MediaTypeDockerConfig }

func isSchema1Type(mt string) bool {
	return mt == MediaTypeDockerSchema1 || mt == MediaTypeDockerSchema1Signed
}

// probe holds the fields that tell the kinds of JSON document apart.
type probe struct {
	SchemaVersion *int            `json:"schemaVersion"`
	MediaType     string          `json:"mediaType"`
	Manifests     json.RawMessage `json:"manifests"`
	Config        json.RawMessage `json:"config"`
	Layers        json.RawMessage `json:"layers"`
	FSLayers      json.RawMessage `json:"fsLayers"`
	RootFS        json.RawMessage `json:"rootfs"`
}

// present reports whether a field was in the document with a non-null value.
func present(raw json.RawMessage) bool { return raw != nil && string(raw) != "null" }

func (p *probe) schema1() bool {
	return isSchema1Type(p.MediaType) || present(p.FSLayers) ||
		(p.SchemaVersion != nil && *p.SchemaVersion == 1)
}

// kind infers the document's kind from its own fields, for blobs whose
// media type is missing or generic.
func (p *probe) kind() Kind {
	switch {
	case isIndexType(p.MediaType):
		return KindIndex
	case isManifestType(p.MediaType):
		return KindManifest
	case isConfigType(p.MediaType):
		return KindConfig
	case p.MediaType != "":
		return KindUnknown
	case present(p.Manifests) && !present(p.Config) && !present(p.Layers):
		return KindIndex
	case present(p.Config) && !present(p.Manifests):
		return KindManifest
	case present(p.RootFS):
		return KindConfig
	}
	return KindUnknown
}

// DetectKind tells what a blob is from its media type or, when the media
// type is empty or a generic JSON type, from the JSON document's
// mediaType, schemaVersion, manifests, config, layers and rootfs fields.
// A Docker schema1 manifest is refused with a [*Schema1Error].
func DetectKind(mediaType string, data []byte) (Kind, error) {
	switch {
	case isSchema1Type(mediaType):
		return KindUnknown, newSchema1Error(data)
	case isIndexType(mediaType):
		return KindIndex, nil
	case isManifestType(mediaType):
		return KindManifest, nil
	case isConfigType(mediaType):
		return KindConfig, nil
	case IsLayer(mediaType):
		return KindLayer, nil
	case mediaType != "" && mediaType != "application/json" && mediaType != "text/plain":
		return KindUnknown, fmt.Errorf("unknown media type %q", mediaType)
	}
	if int64(len(data)) > MaxConfigSize {
		return KindUnknown, fmt.Errorf("cannot tell what a %d-byte blob without a media type is: too large for a JSON document", len(data))
	}
	var p probe
	if err := json.Unmarshal(data, &p); err != nil {
		return KindUnknown, fmt.Errorf("blob without a media type is not a JSON document: %w", err)
	}
	if p.schema1() {
		return KindUnknown, newSchema1Error(data)
	}
	k := p.kind()
	if k == KindUnknown {
		if p.MediaType != "" {
			return KindUnknown, fmt.Errorf("unknown media type %q in the document", p.MediaType)
		}
		return KindUnknown, fmt.Errorf("cannot tell what the document is: it has no mediaType and none of manifests, config or rootfs")
	}
	return k, nil
}
