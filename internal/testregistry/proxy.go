package testregistry

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// ProxyRule says which faults a Proxy injects into blob downloads: GET
// requests for /v2/NAME/blobs/sha256:HEX. Other requests pass through
// untouched. Faults apply in the order Status, then CutBlobAfter and
// CorruptBlob on the registry's answer.
type ProxyRule struct {
	// CutBlobAfter, when positive, closes the connection after this many
	// bytes of a blob body (200 or 206 answer), with the registry's
	// Content-Length already sent, for the first CutTimes such answers
	// (zero means once); later ones pass through. Requests, Range
	// included, reach the registry unchanged, so a client can resume with
	// Range: bytes=N-.
	CutBlobAfter int64
	CutTimes     int
	// Status, when non-zero, answers the first StatusTimes blob GETs
	// (zero means once) with this status and, if RetryAfter is set, a
	// Retry-After header, without asking the registry.
	Status      int
	StatusTimes int
	RetryAfter  string
	// CorruptBlob flips one byte in the middle of every blob body the
	// registry sends, so the bytes no longer match their digest.
	CorruptBlob bool
}

// Proxy is a plain-HTTP reverse proxy in front of a registry that
// injects the faults of its ProxyRule.
type Proxy struct {
	// Host is "127.0.0.1:PORT", the proxy's host in references.
	Host string

	target string
	rule   ProxyRule
	client *http.Client

	mu          sync.Mutex
	requests    []string
	cuts        int
	statuses    int
	corruptions int
}

// blobPath matches the path of a blob GET.
var blobPath = regexp.MustCompile(`^/v2/.+/blobs/sha256:[0-9a-f]{64}$`)

// StartProxy starts a proxy on 127.0.0.1 forwarding to target, a
// plain-HTTP registry's "host:port" (a Registry started without TLS),
// and closes it in t.Cleanup. The Host header is forwarded unchanged, so
// the registry's Location headers point back at the proxy.
func StartProxy(t testing.TB, target string, rule ProxyRule) *Proxy {
	t.Helper()
	if rule.CutBlobAfter > 0 && rule.CutTimes == 0 {
		rule.CutTimes = 1
	}
	if rule.Status != 0 && rule.StatusTimes == 0 {
		rule.StatusTimes = 1
	}
	p := &Proxy{
		target: target,
		rule:   rule,
		client: &http.Client{
			Transport: &http.Transport{DisableCompression: true},
			// Pass redirects to the client, as the registry sent them.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	srv := httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(srv.Close)
	p.Host = strings.TrimPrefix(srv.URL, "http://")
	return p
}

// Requests returns every request the proxy received, in order, as
// "METHOD REQUEST-URI", followed by " Range: VALUE" when the request had a
// Range header.
func (p *Proxy) Requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.requests)
}

// Faults returns how many blob answers the proxy cut short, replaced
// with ProxyRule.Status and corrupted.
func (p *Proxy) Faults() (cut, status, corrupted int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts, p.statuses, p.corruptions
}

// hopHeaders are connection-level headers a proxy does not forward.
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	entry := r.Method + " " + r.URL.RequestURI()
	if rg := r.Header.Get("Range"); rg != "" {
		entry += " Range: " + rg
	}
	blob := r.Method == http.MethodGet && blobPath.MatchString(r.URL.Path)

	p.mu.Lock()
	p.requests = append(p.requests, entry)
	replace := blob && p.statuses < p.rule.StatusTimes
	if replace {
		p.statuses++
	}
	p.mu.Unlock()
	if replace {
		if p.rule.RetryAfter != "" {
			w.Header().Set("Retry-After", p.rule.RetryAfter)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(p.rule.Status)
		fmt.Fprintf(w, `{"errors":[{"code":"UNAVAILABLE","message":"testregistry proxy: injected status %d"}]}`+"\n", p.rule.Status)
		return
	}

	out, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+p.target+r.URL.RequestURI(), r.Body)
	if err != nil {
		http.Error(w, fmt.Sprintf("testregistry proxy: %v", err), http.StatusBadGateway)
		return
	}
	if r.ContentLength == 0 {
		out.Body = nil
	}
	out.ContentLength = r.ContentLength
	out.Header = r.Header.Clone()
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	out.Host = r.Host
	resp, err := p.client.Do(out)
	if err != nil {
		http.Error(w, fmt.Sprintf("testregistry proxy: %s %s: %v", r.Method, out.URL, err), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, v := range resp.Header {
		if !slices.Contains(hopHeaders, k) {
			w.Header()[k] = v
		}
	}

	ok := resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusPartialContent
	p.mu.Lock()
	cut := blob && ok && p.rule.CutBlobAfter > 0 && p.cuts < p.rule.CutTimes
	if cut {
		p.cuts++
	}
	corrupt := blob && ok && p.rule.CorruptBlob
	if corrupt {
		p.corruptions++
	}
	p.mu.Unlock()

	if !cut && !corrupt {
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
		return
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		// The registry broke the body; break ours the same way.
		panic(http.ErrAbortHandler)
	}
	if corrupt && len(body) > 0 {
		body[len(body)/2] ^= 0xff
	}
	w.WriteHeader(resp.StatusCode)
	if !cut {
		w.Write(body)
		return
	}
	n := min(p.rule.CutBlobAfter, int64(len(body)))
	w.Write(body[:n])
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
	// Close the connection with the body short of its Content-Length.
	panic(http.ErrAbortHandler)
}
