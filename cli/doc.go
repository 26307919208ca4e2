// Package cli implements berth's top-level image commands (import,
// images, image inspect, tag, rmi) as cobra commands working on the
// engine's image store.
package cli
