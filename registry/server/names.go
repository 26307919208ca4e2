package server

import (
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/reference"
)

// validUploadID reports whether s has the form of the upload session
// ids this server hands out: 32 lower-case hex digits.
func validUploadID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// maxNameLength bounds repository names, as the spec allows.
const maxNameLength = 255

// routeKind names an endpoint; it is also the route label of the metrics.
type routeKind string

const (
	routeBase      routeKind = "base"
	routeCatalog   routeKind = "catalog"
	routeManifest  routeKind = "manifest"
	routeBlob      routeKind = "blob"
	routeUploads   routeKind = "uploads" // POST /v2/<name>/blobs/uploads/
	routeUpload    routeKind = "upload"  // /v2/<name>/blobs/uploads/<id>
	routeTags      routeKind = "tags"
	routeReferrers routeKind = "referrers"
	routeUnknown   routeKind = "unknown"
)

// route is a parsed /v2/ request path.
type route struct {
	Kind routeKind
	Name string // repository name
	Ref  string // tag or digest (manifests), digest (blobs, referrers), upload id
}

// parseRoute parses the path of a /v2/ request. It returns a route of
// kind routeUnknown for paths that are no endpoint, and a *regError for
// endpoints whose name or reference is malformed.
func parseRoute(path string) (route, *regError) {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		if path == "/v2" {
			return route{Kind: routeBase}, nil
		}
		return route{Kind: routeUnknown}, nil
	}
	switch rest {
	case "":
		return route{Kind: routeBase}, nil
	case "_catalog":
		return route{Kind: routeCatalog}, nil
	}
	seg := strings.Split(rest, "/")
	k := len(seg) - 1
	var rt route
	var nameEnd int // segments [0, nameEnd) are the name
	switch {
	case k >= 2 && seg[k-1] == "tags" && seg[k] == "list":
		rt, nameEnd = route{Kind: routeTags}, k-1
	case k >= 2 && seg[k-1] == "blobs" && seg[k] == "uploads",
		k >= 3 && seg[k-2] == "blobs" && seg[k-1] == "uploads" && seg[k] == "":
		rt = route{Kind: routeUploads}
		nameEnd = k - 1
		if seg[k] == "" {
			nameEnd = k - 2
		}
	case k >= 3 && seg[k-2] == "blobs" && seg[k-1] == "uploads":
		rt, nameEnd = route{Kind: routeUpload, Ref: seg[k]}, k-2
	case k >= 2 && seg[k-1] == "manifests":
		rt, nameEnd = route{Kind: routeManifest, Ref: seg[k]}, k-1
	case k >= 2 && seg[k-1] == "blobs":
		rt, nameEnd = route{Kind: routeBlob, Ref: seg[k]}, k-1
	case k >= 2 && seg[k-1] == "referrers":
		rt, nameEnd = route{Kind: routeReferrers, Ref: seg[k]}, k-1
	default:
		return route{Kind: routeUnknown}, nil
	}
	rt.Name = strings.Join(seg[:nameEnd], "/")
	if err := checkName(rt.Name); err != nil {
		return rt, err
	}
	switch rt.Kind {
	case routeManifest:
		if strings.Contains(rt.Ref, ":") {
			if _, err := parseDigest(rt.Ref); err != nil {
				return rt, err
			}
		} else if !reference.ValidTag(rt.Ref) {
			return rt, errorf(http.StatusBadRequest, CodeManifestInvalid, "invalid tag", map[string]string{"tag": rt.Ref})
		}
	case routeBlob, routeReferrers:
		if _, err := parseDigest(rt.Ref); err != nil {
			return rt, err
		}
	case routeUpload:
		if !validUploadID(rt.Ref) {
			return rt, errorf(http.StatusNotFound, CodeBlobUploadUnknown, "unknown upload", map[string]string{"upload": rt.Ref})
		}
	}
	return rt, nil
}

// checkName checks a repository name against the spec's expression.
func checkName(name string) *regError {
	if len(name) == 0 || len(name) > maxNameLength || !reference.ValidRepository(name) {
		return errorf(http.StatusBadRequest, CodeNameInvalid, "invalid repository name", map[string]string{"name": name})
	}
	return nil
}

// parseDigest parses a digest of a supported algorithm (sha256, sha512).
func parseDigest(s string) (digest.Digest, *regError) {
	d, err := digest.Parse(s)
	if err == nil && d.Algorithm() != digest.SHA256 && d.Algorithm() != digest.SHA512 {
		err = digest.ErrDigestUnsupported
	}
	if err != nil {
		return "", errorf(http.StatusBadRequest, CodeDigestInvalid, "invalid digest: "+err.Error(), map[string]string{"digest": s})
	}
	return d, nil
}
