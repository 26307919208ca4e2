// Package reference parses image references as docker does:
// [registry[:port]/]path[:tag][@digest], with docker's normalisation
// ("busybox" is docker.io/library/busybox:latest).
package reference

import (
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
)

const (
	// DefaultDomain is the registry of names that carry none.
	DefaultDomain = "docker.io"
	officialRepo  = "library/"
	// DefaultTag is the tag of names that carry neither tag nor digest.
	DefaultTag = "latest"
	// maxNameLength is the spec's limit on registry plus repository.
	maxNameLength = 255
)

// Reference is a parsed, normalized image reference.
type Reference struct {
	// Domain is the registry: "docker.io", "localhost:5000", "quay.io".
	Domain string
	// Path is the repository within the registry: "library/busybox".
	Path string
	// Tag is the tag; "latest" when the reference has neither tag nor
	// digest, "" when it has only a digest.
	Tag string
	// Digest is the manifest digest of a name@digest reference.
	Digest digest.Digest
}

// Parse parses and normalizes s. A reference without tag or digest gets
// the tag "latest"; one with a digest keeps the tag it also names, if any
// (name:tag@digest: the digest wins when pulling, as in docker).
func Parse(s string) (Reference, error) {
	if s == "" {
		return Reference{}, fmt.Errorf("invalid reference format: empty name")
	}
	var r Reference
	name := s
	if i := strings.IndexByte(s, '@'); i >= 0 {
		d, err := digest.Parse(s[i+1:])
		if err != nil {
			return Reference{}, fmt.Errorf("invalid reference %q: bad digest: %w", s, err)
		}
		name, r.Digest = s[:i], d
	}
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name, r.Tag = name[:i], name[i+1:]
		if !ValidTag(r.Tag) {
			return Reference{}, fmt.Errorf("invalid reference %q: bad tag %q", s, r.Tag)
		}
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = DefaultTag
	}
	r.Domain, r.Path = DefaultDomain, name
	if i := strings.IndexByte(name, '/'); i >= 0 {
		first := name[:i]
		if strings.ContainsAny(first, ".:[") || first == "localhost" || strings.ToLower(first) != first {
			if !ValidDomain(first) {
				return Reference{}, fmt.Errorf("invalid reference %q: bad registry %q", s, first)
			}
			r.Domain, r.Path = first, name[i+1:]
		}
	}
	if r.Domain == "index.docker.io" {
		r.Domain = DefaultDomain
	}
	if r.Domain == DefaultDomain && !strings.Contains(r.Path, "/") {
		r.Path = officialRepo + r.Path
	}
	for _, c := range strings.Split(r.Path, "/") {
		if !ValidPathComponent(c) {
			return Reference{}, fmt.Errorf("invalid reference %q: repository name component %q must be lowercase alphanumerics separated by . _ __ or -", s, c)
		}
	}
	if len(r.Name()) > maxNameLength {
		return Reference{}, fmt.Errorf("invalid reference %q: repository name longer than %d characters", s, maxNameLength)
	}
	return r, nil
}

// HasDomain reports whether the name s names its registry (its first
// component has a dot or a port, or is "localhost").
func HasDomain(s string) bool {
	first, _, ok := strings.Cut(s, "/")
	return ok && (strings.ContainsAny(first, ".:[") || first == "localhost")
}

// Name is the repository's full name: "docker.io/library/busybox".
func (r Reference) Name() string { return r.Domain + "/" + r.Path }

// Object is what the registry is asked for: the digest if there is one,
// else the tag.
func (r Reference) Object() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}

// String is the full normalized reference:
// "docker.io/library/busybox:latest", "quay.io/a/b@sha256:…".
func (r Reference) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// Tagged is the name with its tag (name:tag), or "" for a digest-only
// reference: the name an image pulled by it is stored under.
func (r Reference) Tagged() string {
	if r.Tag == "" {
		return ""
	}
	return r.Name() + ":" + r.Tag
}

// Familiar is the short form docker shows: "busybox:latest",
// "user/app:1", "quay.io/a/b:2".
func (r Reference) Familiar() string {
	s := Familiar(r.Name())
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// Familiar shortens a full repository name as docker shows it:
// docker.io/library/busybox is "busybox", docker.io/user/app "user/app".
func Familiar(name string) string {
	if rest, ok := strings.CutPrefix(name, DefaultDomain+"/"); ok {
		return strings.TrimPrefix(rest, officialRepo)
	}
	return name
}

// WithTag returns r naming tag instead of its tag or digest.
func (r Reference) WithTag(tag string) (Reference, error) {
	if !ValidTag(tag) {
		return Reference{}, fmt.Errorf("invalid tag %q", tag)
	}
	r.Tag, r.Digest = tag, ""
	return r, nil
}
