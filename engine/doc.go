// Package engine orchestrates berth's image store: it ties the content
// store, the metadata database and a snapshotter together under one root
// directory and implements the image operations of berth's top-level
// commands (import, images, inspect, tag, rmi).
//
// Layout under the root (default /var/lib/berth):
//
//	content/             the content store (blobs and ingests)
//	metadata.db          the metadata database (images, leases, containers;
//	                     with its -wal, -shm, .open-lock and .gc-lock files)
//	snapshots/overlay/   the overlay snapshotter, or, where overlayfs is
//	snapshots/native/    unusable, the native (copying) snapshotter
//
// Every operation that writes content or snapshots follows the metadata
// package's lease protocol, so a concurrent garbage collection in another
// process never removes what it is building, and a failed operation leaves
// no image record behind.
package engine
