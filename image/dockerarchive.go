package image

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"
)

// DockerArchiveManifest is the manifest.json of a "docker save" archive:
// one entry per image.
type DockerArchiveManifest []DockerArchiveEntry

// DockerArchiveEntry is one image of a [DockerArchiveManifest]. Config and
// Layers are paths of files inside the archive.
type DockerArchiveEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// ParseDockerArchiveManifest parses and validates the manifest.json of a
// docker-save archive (capped at [MaxManifestSize]). Every path must be
// relative, clean, free of ".." and of NUL bytes, so that it can only name
// a file inside the archive; every entry must have a config.
func ParseDockerArchiveManifest(data []byte) (DockerArchiveManifest, error) {
	if int64(len(data)) > MaxManifestSize {
		return nil, tooLarge("docker archive manifest.json", len(data), MaxManifestSize)
	}
	var m DockerArchiveManifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("parse docker archive manifest.json: %w", err)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("parse docker archive manifest.json: no images")
	}
	for i, e := range m {
		if e.Config == "" {
			return nil, fmt.Errorf("parse docker archive manifest.json: entry %d: no Config", i)
		}
		if err := checkArchivePath(e.Config); err != nil {
			return nil, fmt.Errorf("parse docker archive manifest.json: entry %d: Config: %w", i, err)
		}
		for j, l := range e.Layers {
			if err := checkArchivePath(l); err != nil {
				return nil, fmt.Errorf("parse docker archive manifest.json: entry %d: Layers[%d]: %w", i, j, err)
			}
		}
	}
	return m, nil
}

// checkArchivePath checks that p names a file inside an archive.
func checkArchivePath(p string) error {
	switch {
	case p == "" || p == ".":
		return fmt.Errorf("empty path %q", p)
	case strings.ContainsRune(p, 0):
		return fmt.Errorf("path %q contains a NUL byte", p)
	case path.IsAbs(p):
		return fmt.Errorf("path %q is absolute", p)
	case path.Clean(p) != p:
		return fmt.Errorf("path %q is not clean (%q)", p, path.Clean(p))
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return fmt.Errorf("path %q leaves the archive", p)
		}
	}
	return nil
}
