package server

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/berth-project/berth/content"
)

// repoStore is the registry's storage under its root:
//
//	content/                 berth's content store: every blob and manifest
//	repositories/<name>/     one directory per repository (name may hold '/'):
//	    _layers/<alg>/<hex>              the blobs the repository holds (empty files)
//	    _manifests/revisions/<alg>/<hex> its manifests (the file holds the media type)
//	    _manifests/tags/<tag>            its tags (the file holds the digest)
//	    _referrers/<alg>/<hex>/<alg>-<hex>  descriptors (JSON) of the manifests whose
//	                                     subject is <alg>:<hex>
//	uploads/<id>.json        upload sessions: repository and start time; the
//	                         bytes are the content store's ingest "registry-upload-<id>"
//
// Names and tags are checked against the spec's expressions before they
// become paths, so no path component is "." or "..", and components
// beginning with '_' or '.' never collide with names or tags.
type repoStore struct {
	root    string
	content *content.Store
	sync    bool // fsync every commit (Config.Sync)
}

func openRepoStore(root string, sync bool) (*repoStore, error) {
	cs, err := content.OpenWith(filepath.Join(root, "content"), content.Options{NoSync: !sync})
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"repositories", "uploads"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return nil, fmt.Errorf("open registry storage %s: %w", root, err)
		}
	}
	return &repoStore{root: root, content: cs, sync: sync}, nil
}

func (s *repoStore) repoDir(name string) string {
	return filepath.Join(s.root, "repositories", filepath.FromSlash(name))
}

func (s *repoStore) layerLink(name string, d digest.Digest) string {
	return filepath.Join(s.repoDir(name), "_layers", d.Algorithm().String(), d.Encoded())
}

func (s *repoStore) revisionLink(name string, d digest.Digest) string {
	return filepath.Join(s.repoDir(name), "_manifests", "revisions", d.Algorithm().String(), d.Encoded())
}

func (s *repoStore) tagsDir(name string) string {
	return filepath.Join(s.repoDir(name), "_manifests", "tags")
}

func (s *repoStore) referrersDir(name string, subject digest.Digest) string {
	return filepath.Join(s.repoDir(name), "_referrers", subject.Algorithm().String(), subject.Encoded())
}

// blobPath is the content store's file of a committed blob (its documented
// layout blobs/<alg>/<hex>), opened directly so that responses are sent
// from an *os.File (sendfile).
func (s *repoStore) blobPath(d digest.Digest) string {
	return filepath.Join(s.root, "content", "blobs", d.Algorithm().String(), d.Encoded())
}

// writeFile writes data to path through a temporary file in the same
// directory (named .tmp-*, which no tag or digest file can be), fsynced
// when s.sync, and renamed into place.
func (s *repoStore) writeFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if s.sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("sync %s: %w", f.Name(), err)
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("rename %s: %w", path, err)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// repoExists reports whether the repository holds anything.
func (s *repoStore) repoExists(name string) bool {
	dir := s.repoDir(name)
	return exists(filepath.Join(dir, "_manifests")) || exists(filepath.Join(dir, "_layers"))
}

// hasBlob reports whether the repository holds blob d (a layer or config,
// or one of its manifests) and the content store has it.
func (s *repoStore) hasBlob(name string, d digest.Digest) bool {
	if !exists(s.layerLink(name, d)) && !exists(s.revisionLink(name, d)) {
		return false
	}
	return exists(s.blobPath(d))
}

// linkBlob records that the repository holds blob d.
func (s *repoStore) linkBlob(name string, d digest.Digest) error {
	p := s.layerLink(name, d)
	if exists(p) {
		return nil
	}
	return s.writeFile(p, nil)
}

// unlinkBlob removes blob d from the repository (the content store keeps
// it until garbage collection).
func (s *repoStore) unlinkBlob(name string, d digest.Digest) error {
	err := os.Remove(s.layerLink(name, d))
	if errors.Is(err, fs.ErrNotExist) {
		return content.ErrNotFound
	}
	return err
}

// manifestType returns the media type of manifest d of the repository, or
// content.ErrNotFound.
func (s *repoStore) manifestType(name string, d digest.Digest) (string, error) {
	b, err := readSmallFile(s.revisionLink(name, d), maxLinkSize)
	if errors.Is(err, fs.ErrNotExist) {
		return "", content.ErrNotFound
	}
	if err != nil {
		return "", err
	}
	if !exists(s.blobPath(d)) {
		return "", content.ErrNotFound
	}
	return string(b), nil
}

// maxLinkSize bounds the tag and revision link files read.
const maxLinkSize = 4096

// readManifest returns manifest d of repository name, at most max bytes,
// and its media type, or content.ErrNotFound.
func (s *repoStore) readManifest(name string, d digest.Digest, max int) ([]byte, string, error) {
	mt, err := readSmallFile(s.revisionLink(name, d), maxLinkSize)
	if err == nil {
		var b []byte
		if b, err = readSmallFile(s.blobPath(d), max); err == nil {
			return b, string(mt), nil
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		err = content.ErrNotFound
	}
	return nil, "", err
}

// resolveTag returns the digest tag points to, or content.ErrNotFound.
func (s *repoStore) resolveTag(name, tag string) (digest.Digest, error) {
	b, err := readSmallFile(filepath.Join(s.tagsDir(name), tag), maxLinkSize)
	if errors.Is(err, fs.ErrNotExist) {
		return "", content.ErrNotFound
	}
	if err != nil {
		return "", err
	}
	d, err := digest.Parse(strings.TrimSpace(string(b)))
	if err != nil {
		return "", fmt.Errorf("tag file %s: %w", filepath.Join(s.tagsDir(name), tag), err)
	}
	return d, nil
}

func (s *repoStore) putTag(name, tag string, d digest.Digest) error {
	return s.writeFile(filepath.Join(s.tagsDir(name), tag), []byte(d.String()))
}

func (s *repoStore) deleteTag(name, tag string) error {
	err := os.Remove(filepath.Join(s.tagsDir(name), tag))
	if errors.Is(err, fs.ErrNotExist) {
		return content.ErrNotFound
	}
	return err
}

// tags returns the repository's tags in lexical order.
func (s *repoStore) tags(name string) ([]string, error) {
	entries, err := os.ReadDir(s.tagsDir(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out, nil // ReadDir sorts by name
}

// putManifest records manifest d (already in the content store) of the
// given media type in the repository, and its referrer descriptor when it
// has a subject.
func (s *repoStore) putManifest(name string, d digest.Digest, mediaType string, referrer *ocispec.Descriptor, subject digest.Digest) error {
	if err := s.writeFile(s.revisionLink(name, d), []byte(mediaType)); err != nil {
		return err
	}
	if referrer != nil {
		b, err := json.Marshal(referrer)
		if err != nil {
			return err
		}
		p := filepath.Join(s.referrersDir(name, subject), d.Algorithm().String()+"-"+d.Encoded())
		if err := s.writeFile(p, b); err != nil {
			return err
		}
	}
	return nil
}

// deleteManifest removes manifest d from the repository, with the tags
// that point to it and its referrer descriptor.
func (s *repoStore) deleteManifest(name string, d digest.Digest, subject digest.Digest) error {
	err := os.Remove(s.revisionLink(name, d))
	if errors.Is(err, fs.ErrNotExist) {
		return content.ErrNotFound
	}
	if err != nil {
		return err
	}
	tags, err := s.tags(name)
	if err != nil {
		return err
	}
	for _, t := range tags {
		if td, err := s.resolveTag(name, t); err == nil && td == d {
			if err := s.deleteTag(name, t); err != nil && !errors.Is(err, content.ErrNotFound) {
				return err
			}
		}
	}
	if subject != "" {
		p := filepath.Join(s.referrersDir(name, subject), d.Algorithm().String()+"-"+d.Encoded())
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// referrers returns the descriptors of the repository's manifests whose
// subject is d, in digest order.
func (s *repoStore) referrers(name string, subject digest.Digest) ([]ocispec.Descriptor, error) {
	dir := s.referrersDir(name, subject)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []ocispec.Descriptor
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var desc ocispec.Descriptor
		if err := json.Unmarshal(b, &desc); err != nil {
			return nil, fmt.Errorf("referrer %s: %w", filepath.Join(dir, e.Name()), err)
		}
		if _, err := s.manifestType(name, desc.Digest); err != nil {
			continue // deleted since
		}
		out = append(out, desc)
	}
	return out, nil
}

// repositories returns every repository's name in lexical order.
func (s *repoStore) repositories() ([]string, error) {
	var out []string
	base := filepath.Join(s.root, "repositories")
	var walk func(dir, prefix string) error
	walk = func(dir, prefix string) error {
		entries, err := os.ReadDir(dir)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		isRepo := false
		for _, e := range entries {
			n := e.Name()
			if n == "_manifests" || n == "_layers" {
				isRepo = true
			}
		}
		if isRepo && prefix != "" {
			out = append(out, prefix)
		}
		for _, e := range entries {
			n := e.Name()
			if !e.IsDir() || strings.HasPrefix(n, "_") || strings.HasPrefix(n, ".") {
				continue
			}
			p := n
			if prefix != "" {
				p = prefix + "/" + n
			}
			if err := walk(filepath.Join(dir, n), p); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(base, ""); err != nil {
		return nil, fmt.Errorf("list repositories: %w", err)
	}
	sort.Strings(out)
	return out, nil
}

// session is an upload session's record.
type session struct {
	Repo    string    `json:"repository"`
	Started time.Time `json:"started"`
}

func newUploadID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func uploadRef(id string) string { return "registry-upload-" + id }

func (s *repoStore) sessionPath(id string) string {
	return filepath.Join(s.root, "uploads", id+".json")
}

func (s *repoStore) createSession(id, repo string) error {
	b, _ := json.Marshal(session{Repo: repo, Started: time.Now().UTC()})
	return s.writeFile(s.sessionPath(id), b)
}

// loadSession returns upload id's record, or content.ErrNotFound.
func (s *repoStore) loadSession(id string) (session, error) {
	var ss session
	b, err := os.ReadFile(s.sessionPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return ss, content.ErrNotFound
	}
	if err != nil {
		return ss, err
	}
	if err := json.Unmarshal(b, &ss); err != nil {
		return ss, fmt.Errorf("upload session %s: %w", s.sessionPath(id), err)
	}
	return ss, nil
}

func (s *repoStore) removeSession(id string) error {
	err := os.Remove(s.sessionPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
