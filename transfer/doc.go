// Package transfer copies one image between image transports, as skopeo
// copy does: a registry (docker://NAME), an OCI image layout directory
// (oci:DIR[:REF]) or tar (oci-archive:FILE[:REF]), a docker save archive
// (docker-archive:FILE[:NAME]) and berth's own image store (berth:NAME).
//
// Every transport but the store is a Source (the image's manifest and its
// blobs) and a Destination (blobs, then the manifest, then Commit). Copy
// moves the config and the layers from one to the other, verifying every
// blob against its descriptor's digest and size as it goes through: a
// destination never keeps bytes that were not verified, and a file or
// directory destination is written beside its final name and renamed
// into place only by Commit, so a failed copy leaves nothing behind.
//
// The manifest is copied as it is, so its digest stays the same between
// docker://, oci:, oci-archive: and berth: (skopeo's --preserve-digests).
// A docker archive has no manifest and only uncompressed layers: as a
// source, a Docker schema2 manifest is made for it (layers as they are in
// the archive); as a destination, layers are decompressed and checked
// against the config's diff IDs, and the digest Copy reports is that of
// the manifest reading the archive back would give.
//
// The store is a destination through the engine's own Pull (for a
// registry source) and Load or LoadLayout (for the others), which verify,
// unpack and record atomically.
package transfer
