package progress

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Throttling of byte-step events in the JSON stream.
const (
	jsonInterval = 100 * time.Millisecond
	jsonPercent  = 100 // emit when another 1/jsonPercent of the total is done
)

// JSONMessage is one object of docker's JSON message stream, as JSON
// writes it.
type JSONMessage struct {
	Status   string        `json:"status"`
	Progress *JSONProgress `json:"progressDetail,omitempty"`
	ID       string        `json:"id,omitempty"`
}

// JSONProgress is the byte count of a byte step in a JSONMessage.
type JSONProgress struct {
	Current int64 `json:"current"`
	Total   int64 `json:"total,omitempty"`
}

// JSONRenderer is a Sink that writes docker's JSON message stream. It is
// made by JSON.
type JSONRenderer struct {
	mu     sync.Mutex
	enc    *json.Encoder
	items  map[string]*jsonItem
	now    func() time.Time
	err    error
	closed bool
}

type jsonItem struct {
	status  string
	current int64 // Current of the last byte event written
	at      time.Time
}

// JSON returns a Sink that writes each event to w as one line of docker's
// JSON message stream:
//
//	{"status":"Downloading","progressDetail":{"current":1024,"total":4096},"id":"abcdef012345"}
//	{"status":"Pull complete","id":"abcdef012345"}
//	{"status":"Digest: sha256:..."}
//
// Every change of an item's status is written. Within a byte step, an
// event is written only once at least 100ms have passed or 1% of the
// total has been done since the last one written for that item; the
// event that completes the step (Current == Total) is always written.
func JSON(w io.Writer) *JSONRenderer {
	return &JSONRenderer{enc: json.NewEncoder(w), items: make(map[string]*jsonItem), now: time.Now}
}

// Event writes e unless it is a byte count too close to the previous one.
func (j *JSONRenderer) Event(e Event) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed || j.err != nil {
		return
	}
	m := JSONMessage{Status: e.Status, ID: e.ID}
	if e.ID != "" {
		if e.HasBytes() {
			m.Progress = &JSONProgress{Current: e.Current, Total: e.Total}
		}
		if !j.keep(e) {
			return
		}
	}
	if err := j.enc.Encode(m); err != nil {
		j.err = err
	}
}

// keep decides whether e is written, and records it if so.
func (j *JSONRenderer) keep(e Event) bool {
	it, ok := j.items[e.ID]
	if !ok {
		it = &jsonItem{}
		j.items[e.ID] = it
	}
	var now time.Time
	if e.HasBytes() {
		now = j.now()
	}
	if ok && it.status == e.Status {
		if !e.HasBytes() {
			return false // the same plain step again
		}
		done := e.Total > 0 && e.Current >= e.Total && it.current < e.Total
		step := e.Total > 0 && (e.Current-it.current)*jsonPercent >= e.Total
		if !done && !step && now.Sub(it.at) < jsonInterval {
			return false
		}
		if e.Current == it.current && !done {
			return false // nothing new to say
		}
	}
	it.status, it.current, it.at = e.Status, e.Current, now
	return true
}

// Close stops writing and returns the first error writing to w, if any.
// Later events are dropped.
func (j *JSONRenderer) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.closed = true
	return j.err
}
