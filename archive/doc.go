// Package archive applies OCI and Docker image layers (tar streams) to a
// directory and writes layer diffs back out as tar streams.
//
// Layers are hostile input. [Apply] never creates, changes or removes
// anything outside the directory it is given: entry names are cleaned and
// taken relative to that directory, names that climb out of it with ".."
// are refused, every parent directory is resolved inside the directory
// (symlinks included, like chroot(2) would) with pathrs-lite, the final
// component is always created or opened without following symlinks, and
// hardlink targets are resolved the same way. The uncompressed size and
// the number of entries of a layer are bounded (see [ApplyOptions]).
//
// Whiteouts follow the OCI image-spec changeset rules. With
// [ApplyOptions.Overlay] they are written in overlayfs' own format, for an
// upper directory on which the kernel merges the lower layers; without it
// they are carried out on a directory that already holds the lower layers.
package archive
