// Command nullreg is the floor of bench/registry.sh: a registry that does
// no work a client could wait for. It serves one image from an OCI
// layout held in memory (pull), and answers pushes by reading and
// discarding what it is sent: no digest check, nothing stored, every blob
// unknown (so the client uploads them all; push to another repository
// than the one served). No registry can answer
// skopeo faster, so skopeo's time against it is the best time any
// registry can reach: the benchmark's ceiling for berth's ratio to
// distribution. It is a measuring tool, not a registry.
//
//	nullreg -addr 127.0.0.1:5000 -layout DIR -repo bench/big -tag latest
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

type server struct {
	repo, tag string
	manifest  []byte
	mediaType string
	mdigest   digest.Digest
	blobs     map[digest.Digest][]byte
	uploads   atomic.Int64
}

func main() {
	addr := flag.String("addr", "127.0.0.1:5000", "listen address")
	layout := flag.String("layout", "", "OCI layout whose first manifest is served")
	repo := flag.String("repo", "bench/big", "repository the image is served as")
	tag := flag.String("tag", "latest", "tag the image is served as")
	flag.Parse()
	s, err := load(*layout, *repo, *tag)
	if err != nil {
		log.Fatalf("nullreg: %v", err)
	}
	log.Fatal(http.ListenAndServe(*addr, s))
}

// load reads the layout's first manifest and every blob it names.
func load(layout, repo, tag string) (*server, error) {
	s := &server{repo: repo, tag: tag, blobs: map[digest.Digest][]byte{}}
	if layout == "" {
		return s, nil
	}
	var idx ocispec.Index
	if err := readJSON(filepath.Join(layout, "index.json"), &idx); err != nil {
		return nil, err
	}
	if len(idx.Manifests) == 0 {
		return nil, fmt.Errorf("%s: no manifest", layout)
	}
	blob := func(d digest.Digest) ([]byte, error) {
		return os.ReadFile(filepath.Join(layout, "blobs", d.Algorithm().String(), d.Encoded()))
	}
	desc := idx.Manifests[0]
	m, err := blob(desc.Digest)
	if err != nil {
		return nil, err
	}
	s.manifest, s.mediaType, s.mdigest = m, desc.MediaType, desc.Digest
	var man ocispec.Manifest
	if err := json.Unmarshal(m, &man); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	for _, d := range append([]ocispec.Descriptor{man.Config}, man.Layers...) {
		if s.blobs[d.Digest], err = blob(d.Digest); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	p := strings.TrimPrefix(r.URL.Path, "/v2/")
	if p == "" || p == "/" {
		return
	}
	name, rest, ok := cutLast(p, []string{"/manifests/", "/blobs/uploads/", "/blobs/"})
	if !ok {
		io.Copy(io.Discard, r.Body)
		http.NotFound(w, r)
		return
	}
	switch {
	case rest.kind == "/manifests/":
		s.manifests(w, r, rest.ref)
	case rest.kind == "/blobs/uploads/":
		s.upload(w, r, name, rest.ref)
	default:
		s.blob(w, r, name, rest.ref)
	}
}

type route struct{ kind, ref string }

// zeroTime: no Last-Modified header.
var zeroTime time.Time

// cutLast splits p at the last of seps it contains.
func cutLast(p string, seps []string) (string, route, bool) {
	best := -1
	var sep string
	for _, s := range seps {
		if i := strings.LastIndex(p, s); i > best {
			best, sep = i, s
		}
	}
	if best < 0 {
		return "", route{}, false
	}
	return p[:best], route{sep, p[best+len(sep):]}, true
}

func (s *server) manifests(w http.ResponseWriter, r *http.Request, ref string) {
	switch r.Method {
	case http.MethodPut:
		b, _ := io.ReadAll(r.Body)
		d := digest.FromBytes(b)
		w.Header().Set("Docker-Content-Digest", d.String())
		w.Header().Set("Location", "/v2/"+s.repo+"/manifests/"+d.String())
		w.WriteHeader(http.StatusCreated)
	case http.MethodGet, http.MethodHead:
		if s.manifest == nil || r.URL.Path != "/v2/"+s.repo+"/manifests/"+ref || (ref != s.tag && ref != s.mdigest.String()) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", s.mediaType)
		w.Header().Set("Docker-Content-Digest", s.mdigest.String())
		http.ServeContent(w, r, "", zeroTime, bytes.NewReader(s.manifest))
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (s *server) blob(w http.ResponseWriter, r *http.Request, name, ref string) {
	b, ok := s.blobs[digest.Digest(ref)]
	if !ok || name != s.repo || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.NotFound(w, r) // blobs pushed are unknown: the client uploads them all
		return
	}
	w.Header().Set("Docker-Content-Digest", ref)
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", zeroTime, bytes.NewReader(b))
}

func (s *server) upload(w http.ResponseWriter, r *http.Request, name, id string) {
	n, _ := io.Copy(io.Discard, r.Body)
	switch r.Method {
	case http.MethodPost:
		if d := r.URL.Query().Get("digest"); d != "" {
			w.Header().Set("Docker-Content-Digest", d)
			w.WriteHeader(http.StatusCreated)
			return
		}
		w.Header().Set("Location", fmt.Sprintf("/v2/%s/blobs/uploads/%d", name, s.uploads.Add(1)))
		w.Header().Set("Range", "0-0")
		w.WriteHeader(http.StatusAccepted)
	case http.MethodPatch:
		w.Header().Set("Location", r.URL.Path)
		w.Header().Set("Range", fmt.Sprintf("0-%d", max(n-1, 0)))
		w.WriteHeader(http.StatusAccepted)
	case http.MethodPut:
		d := r.URL.Query().Get("digest")
		w.Header().Set("Docker-Content-Digest", d)
		w.Header().Set("Location", "/v2/"+name+"/blobs/"+d)
		w.WriteHeader(http.StatusCreated)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}
