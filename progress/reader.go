package progress

import "io"

// readerStep is how many bytes a Reader lets pass between two events.
const readerStep = 64 << 10

// Reader returns a reader that reads from r and reports to sink, as Events
// with the given id and status, how many bytes have been read of total (0
// when unknown). It emits one event on the first Read, then one each time
// another 64 KiB have passed, one as soon as total bytes have been read,
// and one at io.EOF unless that would repeat the previous event. At EOF an
// unknown total, or one the stream turned out to exceed, becomes the count
// read, so the last event has Current == Total unless the stream ended
// short of total.
//
// The returned reader adds a few integer operations per Read. Like most
// readers it is not safe for concurrent Reads.
func Reader(r io.Reader, sink Sink, id, status string, total int64) io.Reader {
	if sink == nil {
		sink = Discard
	}
	return &reader{r: r, sink: sink, id: id, status: status, total: total, next: -1}
}

type reader struct {
	r      io.Reader
	sink   Sink
	id     string
	status string
	total  int64
	n      int64 // bytes read so far
	next   int64 // emit when n reaches next; -1 before the first event
	sent   int64 // Current of the last event
	full   bool  // an event with Current >= Total (Total > 0) was sent
}

func (r *reader) Read(p []byte) (int, error) {
	if r.next < 0 {
		r.next = readerStep
		r.emit()
	}
	n, err := r.r.Read(p)
	r.n += int64(n)
	switch {
	case err == io.EOF:
		if r.total <= 0 || r.n > r.total {
			r.total = r.n
		}
		if !r.full || r.sent != r.n {
			r.full = true
			r.emit()
		}
	case r.full:
		// Past the announced total: wait for EOF to report the real size.
	case r.total > 0 && r.n >= r.total:
		r.total = r.n
		r.full = true
		r.emit()
	case r.n >= r.next:
		r.next = r.n + readerStep
		r.emit()
	}
	return n, err
}

func (r *reader) emit() {
	r.sent = r.n
	r.sink.Event(Event{ID: r.id, Status: r.status, Current: r.n, Total: r.total})
}
