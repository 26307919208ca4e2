package image

import (
	"errors"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ErrSchema1 is matched (errors.Is) by every [*Schema1Error].
var ErrSchema1 = errors.New("docker schema1 manifests are not supported")

// Schema1Error refuses a Docker schema1 manifest. The parse functions fill
// in Digest (of the bytes they were given); a caller that knows the image's
// name sets Name (errors.As) before passing the error on.
type Schema1Error struct {
	Name   string        // image reference, when known
	Digest digest.Digest // digest of the manifest
}

func (e *Schema1Error) Error() string {
	var ctx []string
	if e.Name != "" {
		ctx = append(ctx, "image "+e.Name)
	}
	if e.Digest != "" {
		ctx = append(ctx, "digest "+e.Digest.String())
	}
	s := ErrSchema1.Error()
	if len(ctx) > 0 {
		s += " (" + strings.Join(ctx, ", ") + ")"
	}
	return s + ": re-push the image with a current tool"
}

// Is makes errors.Is(err, ErrSchema1) true.
func (e *Schema1Error) Is(target error) bool { return target == ErrSchema1 }

func newSchema1Error(data []byte) *Schema1Error {
	return &Schema1Error{Digest: digest.FromBytes(data)}
}

// NoMatchError says that an index has no manifest for a platform. A caller
// that knows the index's digest sets Index (errors.As) before passing the
// error on.
type NoMatchError struct {
	Platform  ocispec.Platform
	Index     digest.Digest // digest of the index, when known
	Available []string      // platforms the index does have, formatted
}

func (e *NoMatchError) Error() string {
	s := "no manifest for " + FormatPlatform(e.Platform) + " in index"
	if e.Index != "" {
		s += " " + e.Index.String()
	}
	if len(e.Available) == 0 {
		return s + " (it lists no platforms)"
	}
	return s + " (available: " + strings.Join(e.Available, ", ") + ")"
}

// tooLarge is the error for a document over its size cap.
func tooLarge(what string, n int, limit int64) error {
	return fmt.Errorf("%s is %d bytes, more than the limit of %d", what, n, limit)
}
