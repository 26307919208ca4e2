package transfer

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/berth-project/berth/reference"
)

// The transports an image reference can name.
const (
	Docker        = "docker"         // docker://NAME[:TAG|@DIGEST]
	OCI           = "oci"            // oci:DIR[:REF]
	OCIArchive    = "oci-archive"    // oci-archive:FILE[:REF]
	DockerArchive = "docker-archive" // docker-archive:FILE[:NAME]
	Berth         = "berth"          // berth:NAME
)

var transports = []string{Docker, OCI, OCIArchive, DockerArchive, Berth}

// Ref is a parsed image reference "TRANSPORT:DETAILS".
type Ref struct {
	// Transport is one of Docker, OCI, OCIArchive, DockerArchive, Berth.
	Transport string
	// Path is the directory or file of OCI, OCIArchive and DockerArchive.
	Path string
	// Name is the OCI ref name (tag) of OCI and OCIArchive, the docker
	// reference of DockerArchive, the image (name or ID) of Berth; "" when
	// not given.
	Name string
	// Docker is the registry reference of Docker.
	Docker reference.Reference
}

// ParseRef parses an image reference: docker://NAME[:TAG|@DIGEST],
// oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:NAME] or
// berth:NAME. As in skopeo, the path ends at its first colon.
func ParseRef(s string) (Ref, error) {
	t, rest, ok := strings.Cut(s, ":")
	if !ok {
		return Ref{}, fmt.Errorf("invalid image reference %q: want TRANSPORT:DETAILS, with transport %s", s, strings.Join(transports, ", "))
	}
	r := Ref{Transport: t}
	switch t {
	case Docker:
		name, ok := strings.CutPrefix(rest, "//")
		if !ok {
			return Ref{}, fmt.Errorf("invalid image reference %q: docker references start with docker://", s)
		}
		ref, err := reference.Parse(name)
		if err != nil {
			return Ref{}, fmt.Errorf("docker transport: %w", err)
		}
		r.Docker = ref
	case OCI, OCIArchive, DockerArchive:
		r.Path, r.Name, _ = strings.Cut(rest, ":")
		if r.Path == "" {
			return Ref{}, fmt.Errorf("invalid image reference %q: %s transport needs a path", s, t)
		}
		if t == DockerArchive && r.Name != "" {
			ref, err := reference.Parse(r.Name)
			if err != nil {
				return Ref{}, fmt.Errorf("docker-archive transport: %w", err)
			}
			if ref.Digest != "" {
				return Ref{}, fmt.Errorf("docker-archive transport: %q: a docker archive names images by tag, not digest", r.Name)
			}
		}
		if t != DockerArchive && r.Name != "" && strings.ContainsAny(r.Name, "\x00\n") {
			return Ref{}, fmt.Errorf("%s transport: invalid ref name %q", t, r.Name)
		}
	case Berth:
		if rest == "" {
			return Ref{}, fmt.Errorf("invalid image reference %q: berth transport needs an image name or ID", s)
		}
		r.Name = rest
	default:
		return Ref{}, fmt.Errorf("unknown transport %q (%s)", t, strings.Join(transports, ", "))
	}
	return r, nil
}

// String returns the reference in the form ParseRef reads.
func (r Ref) String() string {
	switch r.Transport {
	case Docker:
		return "docker://" + r.Docker.String()
	case Berth:
		return "berth:" + r.Name
	}
	if r.Name == "" {
		return r.Transport + ":" + r.Path
	}
	return r.Transport + ":" + r.Path + ":" + r.Name
}

// same reports whether r and o name the same image.
func (r Ref) same(o Ref) bool {
	if r.Transport != o.Transport {
		return false
	}
	switch r.Transport {
	case Docker:
		return r.Docker.String() == o.Docker.String()
	case Berth:
		return r.Name == o.Name
	}
	a, err1 := filepath.Abs(r.Path)
	b, err2 := filepath.Abs(o.Path)
	return errors.Join(err1, err2) == nil && a == b && r.Name == o.Name
}
