package engine

import (
	"fmt"
	"strings"

	"github.com/berth-project/berth/reference"
)

// NormalizeName returns the full form of the image reference ref, as
// docker resolves it (reference.Parse): "busybox" is
// "docker.io/library/busybox:latest". Digest references (name@sha256:…)
// are refused: berth names images by tag.
func NormalizeName(ref string) (string, error) {
	r, err := reference.Parse(ref)
	if err != nil {
		return "", err
	}
	if r.Digest != "" {
		return "", fmt.Errorf("invalid reference %q: digest references are not supported here", ref)
	}
	return r.String(), nil
}

// SplitName splits a normalized name into the repository, in docker's
// short form ("busybox" for docker.io/library/busybox,
// "user/app" for docker.io/user/app), and the tag.
func SplitName(name string) (repo, tag string) {
	repo, tag = name, ""
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		repo, tag = name[:i], name[i+1:]
	}
	return reference.Familiar(repo), tag
}
