package engine

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
)

const (
	defaultDomain = "docker.io"
	officialRepo  = "library/"
	defaultTag    = "latest"
)

// The grammar of references, compiled on first use: every berth process
// (container inits included) links this package, and compiling these at
// package initialisation cost them 2 ms each time.
var (
	pathComponentRE = lazyRegexp(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)
	tagRE           = lazyRegexp(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	domainRE        = lazyRegexp(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?$`)
)

func lazyRegexp(expr string) func() *regexp.Regexp {
	return sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(expr) })
}

// NormalizeName returns the full form of the image reference ref, as
// docker resolves it: "busybox" is "docker.io/library/busybox:latest",
// "user/app" is "docker.io/user/app:latest", and a name whose first
// component looks like a host (has a dot or a port, or is "localhost")
// keeps it as its registry. A name without a tag gets ":latest". Digest
// references (name@sha256:…) are refused: berth names images by tag.
func NormalizeName(ref string) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("invalid reference format: empty name")
	}
	if strings.Contains(ref, "@") {
		return "", fmt.Errorf("invalid reference %q: digest references are not supported here", ref)
	}
	name, tag := ref, defaultTag
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		name, tag = ref[:i], ref[i+1:]
		if !tagRE().MatchString(tag) {
			return "", fmt.Errorf("invalid reference %q: bad tag %q", ref, tag)
		}
	}
	domain, path := defaultDomain, name
	if i := strings.IndexByte(name, '/'); i >= 0 {
		first := name[:i]
		if strings.ContainsAny(first, ".:") || first == "localhost" {
			if !domainRE().MatchString(first) {
				return "", fmt.Errorf("invalid reference %q: bad registry %q", ref, first)
			}
			domain, path = first, name[i+1:]
		}
	}
	if domain == defaultDomain && !strings.Contains(path, "/") {
		path = officialRepo + path
	}
	for _, c := range strings.Split(path, "/") {
		if !pathComponentRE().MatchString(c) {
			return "", fmt.Errorf("invalid reference %q: repository name component %q must be lowercase alphanumerics separated by . _ __ or -", ref, c)
		}
	}
	full := domain + "/" + path
	if len(full) > 255 {
		return "", fmt.Errorf("invalid reference %q: repository name longer than 255 characters", ref)
	}
	return full + ":" + tag, nil
}

// SplitName splits a normalized name into the repository, in docker's
// short form ("busybox" for docker.io/library/busybox,
// "user/app" for docker.io/user/app), and the tag.
func SplitName(name string) (repo, tag string) {
	repo, tag = name, ""
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		repo, tag = name[:i], name[i+1:]
	}
	repo = strings.TrimPrefix(repo, defaultDomain+"/")
	repo = strings.TrimPrefix(repo, officialRepo)
	return repo, tag
}
