package server

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxPage caps the n of a paginated list.
const maxPage = 10000

// paginate returns the items after last, at most n of them (n from the
// query, maxPage when absent), and whether more follow.
func paginate(items []string, q url.Values) ([]string, int, bool, error) {
	n := maxPage
	if v := q.Get("n"); v != "" {
		i, err := strconv.Atoi(v)
		if err != nil || i < 0 {
			return nil, 0, false, errorf(http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", "invalid n "+strconv.Quote(v), nil)
		}
		n = min(i, maxPage)
	}
	if last := q.Get("last"); last != "" {
		i := sort.SearchStrings(items, last)
		if i < len(items) && items[i] == last {
			i++
		}
		items = items[i:]
	}
	if len(items) > n {
		return items[:n], n, true, nil
	}
	return items, n, false, nil
}

// setNext sets the Link header of the next page.
func setNext(w http.ResponseWriter, path string, n int, page []string) {
	if len(page) == 0 {
		return
	}
	q := url.Values{"n": {strconv.Itoa(n)}, "last": {page[len(page)-1]}}
	w.Header().Set("Link", "<"+path+"?"+q.Encode()+`>; rel="next"`)
}

func writeJSON(w http.ResponseWriter, contentType string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(b)
	return nil
}

// listTags serves GET /v2/<name>/tags/list?n=&last=.
func (s *Server) listTags(w http.ResponseWriter, r *http.Request, rt route) error {
	if !s.store.repoExists(rt.Name) {
		return errorf(http.StatusNotFound, CodeNameUnknown, "repository name not known to registry", map[string]string{"name": rt.Name})
	}
	tags, err := s.store.tags(rt.Name)
	if err != nil {
		return err
	}
	page, n, more, err := paginate(tags, r.URL.Query())
	if err != nil {
		return err
	}
	if more {
		setNext(w, r.URL.Path, n, page)
	}
	if page == nil {
		page = []string{}
	}
	return writeJSON(w, "application/json", struct {
		Name string   `json:"name"`
		Tags []string `json:"tags"`
	}{rt.Name, page})
}

// catalog serves GET /v2/_catalog?n=&last=.
func (s *Server) catalog(w http.ResponseWriter, r *http.Request, _ route) error {
	repos, err := s.store.repositories()
	if err != nil {
		return err
	}
	page, n, more, err := paginate(repos, r.URL.Query())
	if err != nil {
		return err
	}
	if more {
		setNext(w, r.URL.Path, n, page)
	}
	if page == nil {
		page = []string{}
	}
	return writeJSON(w, "application/json", struct {
		Repositories []string `json:"repositories"`
	}{page})
}

// getReferrers serves GET /v2/<name>/referrers/<digest>?artifactType=: an
// image index of the manifests whose subject is digest.
func (s *Server) getReferrers(w http.ResponseWriter, r *http.Request, rt route) error {
	descs, err := s.store.referrers(rt.Name, digest.Digest(rt.Ref))
	if err != nil {
		return err
	}
	if at := r.URL.Query().Get("artifactType"); at != "" {
		kept := descs[:0]
		for _, d := range descs {
			if d.ArtifactType == at {
				kept = append(kept, d)
			}
		}
		descs = kept
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	if descs == nil {
		descs = []ocispec.Descriptor{}
	}
	idx := struct {
		SchemaVersion int                  `json:"schemaVersion"`
		MediaType     string               `json:"mediaType"`
		Manifests     []ocispec.Descriptor `json:"manifests"`
	}{2, ocispec.MediaTypeImageIndex, descs}
	return writeJSON(w, ocispec.MediaTypeImageIndex, idx)
}
