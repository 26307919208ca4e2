// Package progress carries what happens during an image transfer (pull,
// push, copy) from the code doing the work to whoever shows it.
//
// # Model
//
// A transfer is a set of items — layers, a config, manifests — each known
// by a short ID (ShortID: the first 12 hex digits of its digest, as docker
// shows them). Each item moves through steps named in the words of docker's
// pull and push output: "Pulling fs layer", "Waiting", "Downloading",
// "Verifying Checksum", "Download complete", "Extracting", "Pull complete"
// when pulling; "Preparing", "Waiting", "Pushing", "Pushed" when pushing;
// "Already exists", "Layer already exists" or "Mounted from NAME" when no
// bytes need to move, and "Retrying in N seconds" after a failed attempt.
// Byte steps (Downloading, Extracting, Pushing) report Current and Total
// bytes as they advance. Messages about the whole image ("Digest: ...",
// "Status: Downloaded newer image for ...") carry an empty ID.
//
// Each step is one Event sent to a Sink. The code doing the work only
// emits; it neither formats nor throttles. A Sink must accept events from
// many goroutines at once, because items transfer in parallel. Reader wraps
// a stream so that reading it emits byte-step events at a bounded rate.
//
// # Renderers
//
// Three Sinks turn events into output; each has a Close method that
// flushes and must be called once the transfer is over:
//
//   - Bars draws one bar per item with github.com/vbauerster/mpb/v8, for a
//     terminal (see IsTerminal and Auto).
//   - Lines prints one plain line each time an item's step changes, for
//     logs and CI; its output is deterministic for a given event order.
//   - JSON writes docker's JSON message stream, one object per line, so the
//     Docker API can pass it on; byte-step events are throttled.
//
// The package knows nothing of registries, manifests or stores: callers
// decide which items exist and what their steps are.
package progress
