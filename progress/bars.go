package progress

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
)

// BarsRenderer is a Sink that draws one progress bar per item. It is made
// by Bars.
type BarsRenderer struct {
	p *mpb.Progress

	mu     sync.Mutex // guards items and closed
	items  map[string]*barItem
	order  []*barItem
	closed bool
}

// barItem is the bar of one ID. Decorators run on mpb's goroutines and
// read state only; Event calls serialize on op, which the decorators never
// take, because mpb's Bar methods wait for those goroutines.
type barItem struct {
	bar   *mpb.Bar
	state atomic.Pointer[barState]

	op      sync.Mutex // serializes calls on bar for this item
	last    time.Time  // time of the previous byte update, under op
	current int64      // counts of the last byte update, under op
	total   int64
}

type barState struct {
	status string
	bytes  bool // in a byte step: draw the bar, the counts and the speed
}

// Bars returns a Sink that draws, on w, one bar per item:
//
//	abcdef012345: Downloading [=====>      ] 1.2 MiB / 3.4 MiB 5.6 MiB/s
//
// during byte steps and "abcdef012345: Pull complete" otherwise. Messages
// about the whole image are printed as lines above the bars. On Close
// every bar is finished and stays at its last status. Bars is meant for a
// terminal; see IsTerminal and Auto.
func Bars(w io.Writer) *BarsRenderer {
	return BarsWidth(w, 0)
}

// BarsWidth is Bars drawing lines width columns wide, for output that is
// not a terminal (a recording, a test); width 0 means the terminal's width,
// or 80 columns off a terminal.
func BarsWidth(w io.Writer, width int) *BarsRenderer {
	opts := []mpb.ContainerOption{mpb.WithOutput(w), mpb.WithAutoRefresh()}
	if width > 0 {
		opts = append(opts, mpb.WithWidth(width))
	}
	return &BarsRenderer{p: mpb.New(opts...), items: make(map[string]*barItem)}
}

// Event updates the bar of e.ID, making it on the item's first event, or
// prints e.Status above the bars when e.ID is "".
func (b *BarsRenderer) Event(e Event) {
	if e.ID == "" {
		b.mu.Lock()
		closed := b.closed
		b.mu.Unlock()
		if !closed {
			// Fails only once the container has shut down, when there is
			// nothing left to print on.
			_, _ = fmt.Fprintln(b.p, e.Status)
		}
		return
	}
	it := b.item(e)
	if it == nil {
		return
	}
	it.op.Lock()
	defer it.op.Unlock()
	prev := it.state.Load()
	bytes := e.HasBytes()
	it.state.Store(&barState{status: e.Status, bytes: bytes})
	if !bytes {
		return
	}
	now := time.Now()
	if prev.status != e.Status || !prev.bytes {
		// A new byte step: start its count from scratch, not as speed.
		it.bar.SetTotal(e.Total, false)
		it.bar.SetCurrent(e.Current)
	} else {
		if e.Total > 0 {
			it.bar.SetTotal(e.Total, false)
		}
		it.bar.EwmaSetCurrent(e.Current, now.Sub(it.last))
	}
	it.last, it.current, it.total = now, e.Current, e.Total
}

// item returns the bar of e.ID, making it if needed, or nil once closed.
func (b *BarsRenderer) item(e Event) *barItem {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	if it, ok := b.items[e.ID]; ok {
		return it
	}
	it := &barItem{}
	it.state.Store(&barState{})
	inBytes := func(d decor.Decorator) decor.Decorator { return byteOnly{d, it} }
	it.bar = b.p.New(0, mpb.BarStyle(),
		mpb.BarFillerMiddleware(func(base mpb.BarFiller) mpb.BarFiller {
			return mpb.BarFillerFunc(func(w io.Writer, s decor.Statistics) error {
				if !it.state.Load().bytes {
					return nil
				}
				return base.Fill(w, s)
			})
		}),
		mpb.PrependDecorators(
			decor.Name(e.ID+": "),
			decor.Any(func(decor.Statistics) string { return it.state.Load().status },
				decor.WC{C: decor.DSyncWidthR}),
		),
		mpb.AppendDecorators(
			inBytes(decor.Any(func(s decor.Statistics) string {
				if s.Total <= 0 {
					return fmt.Sprintf("% .1f", decor.SizeB1024(s.Current))
				}
				return fmt.Sprintf("% .1f / % .1f", decor.SizeB1024(s.Current), decor.SizeB1024(s.Total))
			}, decor.WC{C: decor.DextraSpace})),
			inBytes(decor.EwmaSpeed(decor.SizeB1024(0), "% .1f", 30, decor.WC{C: decor.DextraSpace})),
		),
	)
	b.items[e.ID] = it
	b.order = append(b.order, it)
	return it
}

// byteOnly shows its decorator only while the item is in a byte step. It
// unwraps to the decorator so that mpb still feeds an EWMA decorator.
type byteOnly struct {
	decor.Decorator
	it *barItem
}

func (d byteOnly) Decor(s decor.Statistics) (string, int) {
	if !d.it.state.Load().bytes {
		return d.Format("")
	}
	return d.Decorator.Decor(s)
}

func (d byteOnly) Unwrap() decor.Decorator { return d.Decorator }

// Close finishes every bar at its last status, draws them a last time and
// stops. A bar whose byte step stopped short stays as far as it got. Later events are dropped. It always returns nil: mpb keeps
// write errors to itself.
func (b *BarsRenderer) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	items := b.order
	b.mu.Unlock()
	for _, it := range items {
		it.op.Lock()
		if it.state.Load().bytes && it.total > 0 && it.current < it.total {
			// Stopped short (a failed transfer): keep the bar where it
			// is rather than drawing it full.
			it.bar.Abort(false)
		} else {
			it.bar.SetTotal(-1, true) // complete at the current count
		}
		it.op.Unlock()
	}
	b.p.Wait()
	return nil
}
