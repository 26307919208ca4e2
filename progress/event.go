package progress

import (
	"fmt"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// Event is one step of one item (a layer, a config, a manifest) of a
// transfer, in the words docker's pull and push output uses, so that the
// Docker API can stream events as docker's JSON messages.
type Event struct {
	// ID is the item's short id (see ShortID), or "" for a message about
	// the whole image.
	ID string
	// Status is the step, such as StatusDownloading or "Mounted from
	// library/busybox", or for ID "" a whole-image line such as
	// "Digest: sha256:...".
	Status string
	// Current is the number of bytes done in a byte step.
	Current int64
	// Total is the number of bytes in all in a byte step, 0 when unknown.
	Total int64
}

// Steps of an item, as docker words them.
const (
	StatusPullingFsLayer     = "Pulling fs layer"
	StatusWaiting            = "Waiting"
	StatusDownloading        = "Downloading"
	StatusVerifyingChecksum  = "Verifying Checksum"
	StatusDownloadComplete   = "Download complete"
	StatusExtracting         = "Extracting"
	StatusPullComplete       = "Pull complete"
	StatusAlreadyExists      = "Already exists"
	StatusPreparing          = "Preparing"
	StatusPushing            = "Pushing"
	StatusPushed             = "Pushed"
	StatusLayerAlreadyExists = "Layer already exists"
)

// MountedFrom returns the status of a layer a registry mounted from
// another repository instead of receiving it: "Mounted from NAME".
func MountedFrom(name string) string {
	return "Mounted from " + name
}

// RetryingIn returns the status of an item waiting d before its next
// attempt, in whole seconds as docker says it: "Retrying in 5 seconds".
func RetryingIn(d time.Duration) string {
	s := int64((d + time.Second - 1) / time.Second)
	if s == 1 {
		return "Retrying in 1 second"
	}
	return fmt.Sprintf("Retrying in %d seconds", s)
}

// HasBytes reports whether e is a byte step: one of Downloading,
// Extracting and Pushing, or any event that counts bytes.
func (e Event) HasBytes() bool {
	switch e.Status {
	case StatusDownloading, StatusExtracting, StatusPushing:
		return true
	}
	return e.Current != 0 || e.Total != 0
}

// Sink receives events. Implementations must be safe for concurrent use,
// because the items of a transfer proceed in parallel.
type Sink interface {
	Event(Event)
}

// Func adapts a function to a Sink. The function must be safe for
// concurrent use.
type Func func(Event)

// Event calls f(e).
func (f Func) Event(e Event) { f(e) }

type discard struct{}

func (discard) Event(Event) {}

// Discard is a Sink that drops every event.
var Discard Sink = discard{}

// ShortID returns the id docker shows for d: the first 12 characters of
// its encoded part ("sha256:abcdef0123456789..." gives "abcdef012345").
// A shorter or malformed digest is returned as far as it goes.
func ShortID(d digest.Digest) string {
	_, enc, ok := strings.Cut(string(d), ":")
	if !ok {
		enc = string(d)
	}
	if len(enc) > 12 {
		enc = enc[:12]
	}
	return enc
}

// HumanSize formats n bytes the way docker's pull output does, in decimal
// units with one digit after the point: "512B", "12.3MB", "1.1GB".
func HumanSize(n int64) string {
	if n < 1000 && n > -1000 {
		return fmt.Sprintf("%dB", n)
	}
	units := []string{"kB", "MB", "GB", "TB", "PB", "EB"}
	f := float64(n) / 1000
	i := 0
	for (f >= 999.95 || f <= -999.95) && i < len(units)-1 {
		f /= 1000
		i++
	}
	return fmt.Sprintf("%.1f%s", f, units[i])
}
