// Package image parses and validates the JSON documents that describe a
// container image — OCI image-spec v1.1 indexes, manifests and configs, and
// their Docker schema2 equivalents — before anything else trusts them.
//
// Every parse function is strict: sizes are capped before parsing
// ([MaxManifestSize], [MaxConfigSize]), every descriptor must carry a valid
// digest and a non-negative size, layer media types must be ones berth can
// unpack, and documents that could be read as two different kinds (an index
// with layers, a manifest with manifests) are refused. Docker schema1
// manifests are refused with a [*Schema1Error].
//
// The package also chooses a manifest for a platform from an index
// ([ParsePlatform], [DefaultPlatform], [MatchIndex]), computes layer chain
// IDs ([ChainIDs]), reads OCI image layouts ([OpenLayout]) with every blob
// verified against its digest, and validates the manifest.json of a
// "docker save" archive ([ParseDockerArchiveManifest]).
package image
