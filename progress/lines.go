package progress

import (
	"io"
	"sync"
)

// LinesRenderer is a Sink that prints plain text lines, for logs and CI.
// It is made by Lines.
type LinesRenderer struct {
	mu     sync.Mutex
	w      io.Writer
	last   map[string]string // ID -> last status printed
	err    error             // first write error
	closed bool
}

// Lines returns a Sink that writes one line "ID: Status" to w each time an
// item's status changes — never one per byte count — and whole-image
// messages (ID "") as they are. The first line of a byte step carries the
// total size when it is known ("abcdef012345: Downloading 12.3MB").
// Lines are written in the order events arrive, so a given sequence of
// events always gives the same text.
func Lines(w io.Writer) *LinesRenderer {
	return &LinesRenderer{w: w, last: make(map[string]string)}
}

// Event prints e if it starts a new step of its item.
func (l *LinesRenderer) Event(e Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.err != nil {
		return
	}
	var line string
	if e.ID == "" {
		line = e.Status + "\n"
	} else {
		if last, ok := l.last[e.ID]; ok && last == e.Status {
			return
		}
		l.last[e.ID] = e.Status
		line = e.ID + ": " + e.Status
		if e.HasBytes() && e.Total > 0 {
			line += " " + HumanSize(e.Total)
		}
		line += "\n"
	}
	if _, err := io.WriteString(l.w, line); err != nil {
		l.err = err
	}
}

// Close stops printing and returns the first error writing to w, if any.
// Later events are dropped.
func (l *LinesRenderer) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	return l.err
}
