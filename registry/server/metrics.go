package server

import (
	"bufio"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// metrics are a Server's request metrics, exposed at /metrics in the
// Prometheus text format (version 0.0.4). They are kept here rather than
// with github.com/prometheus/client_golang, which would add 3.6 MB and
// about 4.6 ms of package initialisation to every berth process (the
// runtime and the container monitor's commands among them) for four
// metric families. Each series is an atomic counter found through a
// sync.Map, so requests share no lock.
type metrics struct {
	requests sync.Map // reqKey → *atomic.Uint64
	latency  sync.Map // latKey → *histogram
	bytesIn  sync.Map // routeKind → *atomic.Uint64
	bytesOut sync.Map // routeKind → *atomic.Uint64
}

type reqKey struct {
	method string
	route  routeKind
	status int
}

type latKey struct {
	method string
	route  routeKind
}

// latencyBuckets are the upper bounds (seconds) of the latency histogram.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// histogram counts observations per bucket (not cumulative; the
// exposition sums them) and their total in nanoseconds.
type histogram struct {
	buckets [17]atomic.Uint64 // len(latencyBuckets)+1: the last is +Inf
	count   atomic.Uint64
	sumNs   atomic.Int64
}

func newMetrics() *metrics { return &metrics{} }

func counter(m *sync.Map, key any) *atomic.Uint64 {
	if c, ok := m.Load(key); ok {
		return c.(*atomic.Uint64)
	}
	c, _ := m.LoadOrStore(key, new(atomic.Uint64))
	return c.(*atomic.Uint64)
}

func (m *metrics) observe(method string, route routeKind, status int, in, out int64, d time.Duration) {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		method = "other" // clients choose methods: keep the label set bounded
	}
	counter(&m.requests, reqKey{method, route, status}).Add(1)
	lk := latKey{method, route}
	h, ok := m.latency.Load(lk)
	if !ok {
		h, _ = m.latency.LoadOrStore(lk, new(histogram))
	}
	hist := h.(*histogram)
	secs := d.Seconds()
	i, _ := slices.BinarySearch(latencyBuckets, secs)
	hist.buckets[i].Add(1)
	hist.count.Add(1)
	hist.sumNs.Add(int64(d))
	if in > 0 {
		counter(&m.bytesIn, route).Add(uint64(in))
	}
	if out > 0 {
		counter(&m.bytesOut, route).Add(uint64(out))
	}
}

// label formats name="value" with the text format's escapes.
func label(name, value string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return name + `="` + r.Replace(value) + `"`
}

func formatFloat(f float64) string {
	if math.IsInf(f, 1) {
		return "+Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// sortedKeys returns the keys of m ordered by their formatted labels.
func sortedKeys[K any](m *sync.Map, format func(K) string) []K {
	var keys []K
	m.Range(func(k, _ any) bool {
		keys = append(keys, k.(K))
		return true
	})
	slices.SortFunc(keys, func(a, b K) int { return strings.Compare(format(a), format(b)) })
	return keys
}

// write writes every series in the Prometheus text format.
func (m *metrics) write(w *bufio.Writer) {
	fmt.Fprintln(w, "# HELP berth_registry_http_requests_total HTTP requests by method, route and status.")
	fmt.Fprintln(w, "# TYPE berth_registry_http_requests_total counter")
	reqLabels := func(k reqKey) string {
		return label("method", k.method) + "," + label("route", string(k.route)) + "," + label("status", strconv.Itoa(k.status))
	}
	for _, k := range sortedKeys(&m.requests, reqLabels) {
		c, _ := m.requests.Load(k)
		fmt.Fprintf(w, "berth_registry_http_requests_total{%s} %d\n", reqLabels(k), c.(*atomic.Uint64).Load())
	}

	fmt.Fprintln(w, "# HELP berth_registry_http_request_duration_seconds Time from a request's arrival to the end of its response.")
	fmt.Fprintln(w, "# TYPE berth_registry_http_request_duration_seconds histogram")
	latLabels := func(k latKey) string { return label("method", k.method) + "," + label("route", string(k.route)) }
	for _, k := range sortedKeys(&m.latency, latLabels) {
		v, _ := m.latency.Load(k)
		h := v.(*histogram)
		var cum uint64
		for i := range len(latencyBuckets) + 1 {
			cum += h.buckets[i].Load()
			le := math.Inf(1)
			if i < len(latencyBuckets) {
				le = latencyBuckets[i]
			}
			fmt.Fprintf(w, "berth_registry_http_request_duration_seconds_bucket{%s,%s} %d\n", latLabels(k), label("le", formatFloat(le)), cum)
		}
		fmt.Fprintf(w, "berth_registry_http_request_duration_seconds_sum{%s} %s\n", latLabels(k), formatFloat(time.Duration(h.sumNs.Load()).Seconds()))
		fmt.Fprintf(w, "berth_registry_http_request_duration_seconds_count{%s} %d\n", latLabels(k), cum)
	}

	routeLabels := func(r routeKind) string { return label("route", string(r)) }
	for _, c := range []struct {
		name, help string
		m          *sync.Map
	}{
		{"berth_registry_http_received_bytes_total", "Request body bytes received, by route.", &m.bytesIn},
		{"berth_registry_http_sent_bytes_total", "Response body bytes sent, by route.", &m.bytesOut},
	} {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", c.name, c.help, c.name)
		for _, k := range sortedKeys(c.m, routeLabels) {
			v, _ := c.m.Load(k)
			fmt.Fprintf(w, "%s{%s} %d\n", c.name, routeLabels(k), v.(*atomic.Uint64).Load())
		}
	}
}

func (m *metrics) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeError(w, errorf(http.StatusMethodNotAllowed, CodeUnsupported, "method "+r.Method+" not supported here", nil))
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		bw := bufio.NewWriter(w)
		if r.Method == http.MethodGet {
			m.write(bw)
		}
		bw.Flush()
	})
}
