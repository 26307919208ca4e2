package progress_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/progress"
)

const (
	idA = "aaaaaaaaaaaa"
	idB = "bbbbbbbbbbbb"
)

// pullScript is a pull of two layers whose steps interleave, with byte
// counts repeated the way a Reader reports them.
func pullScript() []progress.Event {
	return []progress.Event{
		{ID: idA, Status: progress.StatusPullingFsLayer},
		{ID: idB, Status: progress.StatusPullingFsLayer},
		{ID: idB, Status: progress.StatusWaiting},
		{ID: idA, Status: progress.StatusDownloading, Current: 0, Total: 12_345_678},
		{ID: idA, Status: progress.StatusDownloading, Current: 65536, Total: 12_345_678},
		{ID: idB, Status: progress.StatusDownloading, Current: 0, Total: 512},
		{ID: idA, Status: progress.StatusDownloading, Current: 131072, Total: 12_345_678},
		{ID: idB, Status: progress.StatusDownloading, Current: 512, Total: 512},
		{ID: idB, Status: progress.StatusVerifyingChecksum},
		{ID: idB, Status: progress.StatusDownloadComplete},
		{ID: idA, Status: progress.StatusDownloading, Current: 12_345_678, Total: 12_345_678},
		{ID: idA, Status: progress.StatusVerifyingChecksum},
		{ID: idA, Status: progress.StatusDownloadComplete},
		{ID: idA, Status: progress.StatusExtracting, Current: 0, Total: 12_345_678},
		{ID: idA, Status: progress.StatusExtracting, Current: 12_345_678, Total: 12_345_678},
		{ID: idA, Status: progress.StatusPullComplete},
		{ID: idB, Status: progress.StatusExtracting, Current: 512, Total: 512},
		{ID: idB, Status: progress.StatusPullComplete},
		{Status: "Digest: sha256:" + strings.Repeat("c", 64)},
		{Status: "Status: Downloaded newer image for example.com/busybox:latest"},
	}
}

func send(s progress.Sink, events []progress.Event) {
	for _, e := range events {
		s.Event(e)
	}
}

func TestLines(t *testing.T) {
	var buf bytes.Buffer
	l := progress.Lines(&buf)
	send(l, pullScript())
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	want := `aaaaaaaaaaaa: Pulling fs layer
bbbbbbbbbbbb: Pulling fs layer
bbbbbbbbbbbb: Waiting
aaaaaaaaaaaa: Downloading 12.3MB
bbbbbbbbbbbb: Downloading 512B
bbbbbbbbbbbb: Verifying Checksum
bbbbbbbbbbbb: Download complete
aaaaaaaaaaaa: Verifying Checksum
aaaaaaaaaaaa: Download complete
aaaaaaaaaaaa: Extracting 12.3MB
aaaaaaaaaaaa: Pull complete
bbbbbbbbbbbb: Extracting 512B
bbbbbbbbbbbb: Pull complete
Digest: sha256:` + strings.Repeat("c", 64) + `
Status: Downloaded newer image for example.com/busybox:latest
`
	if got := buf.String(); got != want {
		t.Errorf("Lines output:\n%s\nwant:\n%s", got, want)
	}
	// After Close nothing more is written.
	l.Event(progress.Event{ID: idA, Status: "Late"})
	if got := buf.String(); got != want {
		t.Errorf("event after Close was written: %q", strings.TrimPrefix(got, want))
	}
}

func TestLinesPushUnknownSize(t *testing.T) {
	var buf bytes.Buffer
	l := progress.Lines(&buf)
	send(l, []progress.Event{
		{ID: idA, Status: progress.StatusPreparing},
		{ID: idA, Status: progress.StatusPushing, Current: 10},
		{ID: idA, Status: progress.StatusPushing, Current: 20},
		{ID: idA, Status: progress.StatusPushed},
		{ID: idB, Status: progress.MountedFrom("library/busybox")},
		{ID: idB, Status: progress.RetryingIn(1500 * time.Millisecond)},
	})
	want := "aaaaaaaaaaaa: Preparing\naaaaaaaaaaaa: Pushing\naaaaaaaaaaaa: Pushed\n" +
		"bbbbbbbbbbbb: Mounted from library/busybox\nbbbbbbbbbbbb: Retrying in 2 seconds\n"
	if got := buf.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, fmt.Errorf("disk full") }

func TestRenderersReportWriteError(t *testing.T) {
	for name, r := range map[string]progress.Renderer{
		"lines": progress.Lines(failWriter{}),
		"json":  progress.JSON(failWriter{}),
	} {
		r.Event(progress.Event{ID: idA, Status: progress.StatusWaiting})
		if err := r.Close(); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("%s: Close = %v, want the write error", name, err)
		}
	}
}

func decodeJSON(t *testing.T, data []byte) []progress.JSONMessage {
	t.Helper()
	var msgs []progress.JSONMessage
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Bytes()
		var raw map[string]any
		if err := json.Unmarshal(line, &raw); err != nil {
			t.Fatalf("line %d is not JSON: %q: %v", len(msgs)+1, line, err)
		}
		for k := range raw {
			switch k {
			case "status", "id", "progressDetail":
			default:
				t.Errorf("line %d: unexpected field %q in %s", len(msgs)+1, k, line)
			}
		}
		var m progress.JSONMessage
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return msgs
}

func TestJSONFields(t *testing.T) {
	var buf bytes.Buffer
	j := progress.JSON(&buf)
	send(j, pullScript())
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	msgs := decodeJSON(t, buf.Bytes())
	if len(msgs) == 0 {
		t.Fatal("no output")
	}
	if got := strings.Count(buf.String(), "\n"); got != len(msgs) {
		t.Fatalf("%d lines but %d messages", got, len(msgs))
	}
	for _, m := range msgs {
		byteStep := m.Status == progress.StatusDownloading || m.Status == progress.StatusExtracting
		if byteStep != (m.Progress != nil) {
			t.Errorf("%+v: progressDetail present = %v, want %v", m, m.Progress != nil, byteStep)
		}
		if strings.HasPrefix(m.Status, "Digest:") || strings.HasPrefix(m.Status, "Status:") {
			if m.ID != "" {
				t.Errorf("whole-image message has id: %+v", m)
			}
		} else if m.ID != idA && m.ID != idB {
			t.Errorf("message without a layer id: %+v", m)
		}
	}
	// The exact wire form of the three kinds of message.
	for _, want := range []string{
		`{"status":"Downloading","progressDetail":{"current":512,"total":512},"id":"bbbbbbbbbbbb"}`,
		`{"status":"Pull complete","id":"aaaaaaaaaaaa"}`,
		`{"status":"Digest: sha256:` + strings.Repeat("c", 64) + `"}`,
	} {
		if !strings.Contains(buf.String(), want+"\n") {
			t.Errorf("output lacks line %s:\n%s", want, buf.String())
		}
	}
	last := msgs[len(msgs)-1]
	if last.Status != "Status: Downloaded newer image for example.com/busybox:latest" {
		t.Errorf("last message %+v", last)
	}
}

func TestJSONThrottle(t *testing.T) {
	var buf bytes.Buffer
	j := progress.JSON(&buf)
	const n = 10_000
	const total = n * 4096
	j.Event(progress.Event{ID: idA, Status: progress.StatusPullingFsLayer})
	for i := 0; i <= n; i++ {
		j.Event(progress.Event{ID: idA, Status: progress.StatusDownloading, Current: int64(i) * 4096, Total: total})
	}
	j.Event(progress.Event{ID: idA, Status: progress.StatusDownloadComplete})
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	msgs := decodeJSON(t, buf.Bytes())
	var downloads []progress.JSONMessage
	for _, m := range msgs {
		if m.Status == progress.StatusDownloading {
			downloads = append(downloads, m)
		}
	}
	// 1% steps allow about 100 lines; the 100ms rule adds a handful on a
	// slow machine. Unthrottled there would be 10,001.
	if len(downloads) < 2 || len(downloads) > 150 {
		t.Fatalf("%d Downloading lines for %d events", len(downloads), n+1)
	}
	first, lastDL := downloads[0], downloads[len(downloads)-1]
	if first.Progress == nil || first.Progress.Current != 0 {
		t.Errorf("first Downloading %+v, want the start at 0", first.Progress)
	}
	if lastDL.Progress == nil || lastDL.Progress.Current != total || lastDL.Progress.Total != total {
		t.Errorf("last Downloading %+v, want %d/%d", lastDL.Progress, total, total)
	}
	if msgs[0].Status != progress.StatusPullingFsLayer || msgs[len(msgs)-1].Status != progress.StatusDownloadComplete {
		t.Errorf("status changes lost: first %+v last %+v", msgs[0], msgs[len(msgs)-1])
	}
	for i := 1; i < len(downloads); i++ {
		if downloads[i].Progress.Current <= downloads[i-1].Progress.Current {
			t.Errorf("line %d repeats or goes back: %d after %d", i, downloads[i].Progress.Current, downloads[i-1].Progress.Current)
		}
	}
}

func TestJSONThrottleUnknownTotal(t *testing.T) {
	var buf bytes.Buffer
	j := progress.JSON(&buf)
	start := time.Now()
	for i := 0; i < 10_000; i++ {
		j.Event(progress.Event{ID: idA, Status: progress.StatusPushing, Current: int64(i + 1)})
	}
	elapsed := time.Since(start)
	j.Close()
	msgs := decodeJSON(t, buf.Bytes())
	// Without a total only the 100ms rule applies: one line to start, then
	// at most one per 100ms elapsed.
	if max := 1 + int(elapsed/(100*time.Millisecond)) + 1; len(msgs) > max {
		t.Errorf("%d lines in %v, want at most %d", len(msgs), elapsed, max)
	}
}

func TestBars(t *testing.T) {
	var buf bytes.Buffer
	b := progress.BarsWidth(&buf, 100)
	send(b, pullScript()[:17]) // leave idB extracting: Close must finish it
	b.Event(progress.Event{ID: "cccccccccccc", Status: progress.StatusPushing, Current: 100})
	b.Event(progress.Event{ID: "dddddddddddd", Status: progress.StatusDownloading, Current: 512 << 10, Total: 1 << 20})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b.Event(progress.Event{ID: idA, Status: "after close"})
	b.Event(progress.Event{Status: "after close"})
	out := buf.String()
	lastFrame := out[strings.LastIndex(out, idA+":"):]
	for _, want := range []string{
		idA + ": Pull complete",
		idB + ": Extracting",
		"cccccccccccc: Pushing",
		"512.0 b / 512.0 b",
		// Stopped short: not drawn as complete.
		"dddddddddddd: Downloading",
		"512.0 KiB / 1.0 MiB",
	} {
		if !strings.Contains(lastFrame, want) {
			t.Errorf("last frame lacks %q:\n%s", want, lastFrame)
		}
	}
	if strings.Contains(out, "after close") {
		t.Errorf("event after Close rendered:\n%s", out)
	}
}

func TestBarsWholeImageLines(t *testing.T) {
	var buf bytes.Buffer
	b := progress.BarsWidth(&buf, 80)
	b.Event(progress.Event{ID: idA, Status: progress.StatusDownloading, Current: 1 << 20, Total: 2 << 20})
	b.Event(progress.Event{Status: "Digest: sha256:1234"})
	b.Event(progress.Event{ID: idA, Status: progress.StatusPullComplete})
	b.Event(progress.Event{Status: "Status: Downloaded newer image for x"})
	b.Close()
	out := buf.String()
	for _, want := range []string{"Digest: sha256:1234\n", "Status: Downloaded newer image for x\n", idA + ": Pull complete"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Index(out, "Digest:") > strings.Index(out, "Status: Downloaded") {
		t.Errorf("whole-image lines out of order:\n%s", out)
	}
}

// TestConcurrent sends from many goroutines to every renderer; run it
// with -race.
func TestConcurrent(t *testing.T) {
	var lb, jb, bb bytes.Buffer
	sinks := map[string]progress.Renderer{
		"lines": progress.Lines(&lb),
		"json":  progress.JSON(&jb),
		"bars":  progress.BarsWidth(&bb, 120),
	}
	var count atomic.Int64
	fn := progress.Func(func(progress.Event) { count.Add(1) })
	const workers, steps = 16, 200
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("%012x", w)
			for i := 0; i <= steps; i++ {
				e := progress.Event{ID: id, Status: progress.StatusDownloading, Current: int64(i), Total: steps}
				for _, s := range sinks {
					s.Event(e)
				}
				fn.Event(e)
				progress.Discard.Event(e)
			}
			done := progress.Event{ID: id, Status: progress.StatusPullComplete}
			for _, s := range sinks {
				s.Event(done)
				s.Event(progress.Event{Status: "whole " + id})
			}
		}()
	}
	wg.Wait()
	for name, s := range sinks {
		if err := s.Close(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for w := 0; w < workers; w++ {
		id := fmt.Sprintf("%012x", w)
		if !strings.Contains(lb.String(), id+": Pull complete\n") {
			t.Errorf("lines: %s never completed", id)
		}
		if !strings.Contains(jb.String(), `{"status":"Downloading","progressDetail":{"current":200,"total":200},"id":"`+id+`"}`) {
			t.Errorf("json: %s lacks its last byte count", id)
		}
		if !strings.Contains(bb.String(), id+": Pull complete") {
			t.Errorf("bars: %s never shown complete", id)
		}
	}
	if got, want := count.Load(), int64(workers*(steps+1)); got != want {
		t.Errorf("Func saw %d events, want %d", got, want)
	}
	decodeJSON(t, jb.Bytes())
}

type recorder struct {
	mu     sync.Mutex
	events []progress.Event
}

func (r *recorder) Event(e progress.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c chunkReader) Read(p []byte) (int, error) {
	if len(p) > c.n {
		p = p[:c.n]
	}
	return c.r.Read(p)
}

func TestReader(t *testing.T) {
	const size = 1<<20 + 123
	data := bytes.Repeat([]byte("x"), size)
	for _, tc := range []struct {
		name      string
		total     int64
		chunk     int
		wantTotal int64
	}{
		{"known total", size, 32 << 10, size},
		{"unknown total", 0, 32 << 10, size},
		{"small reads", size, 1000, size},
		{"longer than announced", size - 100, 32 << 10, size},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rec recorder
			r := progress.Reader(chunkReader{bytes.NewReader(data), tc.chunk}, &rec, idA, progress.StatusDownloading, tc.total)
			n, err := io.Copy(io.Discard, r)
			if err != nil || n != size {
				t.Fatalf("copied %d, %v", n, err)
			}
			ev := rec.events
			if len(ev) < 3 {
				t.Fatalf("only %d events", len(ev))
			}
			if ev[0].Current != 0 {
				t.Errorf("first event %+v, want Current 0", ev[0])
			}
			last := ev[len(ev)-1]
			if last.Current != size || last.Total != tc.wantTotal {
				t.Errorf("last event %+v, want %d/%d", last, size, tc.wantTotal)
			}
			// Bounded rate: about one event per 64 KiB, not one per Read.
			if max := size/(64<<10) + 4; len(ev) > max {
				t.Errorf("%d events for %d bytes, want at most %d", len(ev), size, max)
			}
			for i, e := range ev {
				if e.ID != idA || e.Status != progress.StatusDownloading {
					t.Errorf("event %d: %+v", i, e)
				}
				if i > 0 && e.Current <= ev[i-1].Current {
					t.Errorf("event %d repeats or goes back: %+v after %+v", i, e, ev[i-1])
				}
				if e.Total > 0 && e.Current > e.Total {
					t.Errorf("event %d: Current past Total: %+v", i, e)
				}
			}
		})
	}
}

func TestReaderShortStream(t *testing.T) {
	var rec recorder
	r := progress.Reader(strings.NewReader("hello"), &rec, idA, progress.StatusPushing, 10)
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatal(err)
	}
	last := rec.events[len(rec.events)-1]
	if last.Current != 5 || last.Total != 10 {
		t.Errorf("last event %+v, want 5/10: a short stream must not look complete", last)
	}
}

func TestShortID(t *testing.T) {
	for in, want := range map[digest.Digest]string{
		"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef": "0123456789ab",
		"sha512:fedcba":     "fedcba",
		"":                  "",
		"nocolon0123456789": "nocolon01234",
	} {
		if got := progress.ShortID(in); got != want {
			t.Errorf("ShortID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{
		0: "0B", 999: "999B", 1000: "1.0kB", 12_345_678: "12.3MB",
		999_960: "1.0MB", 1_100_000_000: "1.1GB",
	} {
		if got := progress.HumanSize(n); got != want {
			t.Errorf("HumanSize(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestIsTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "notatty")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if progress.IsTerminal(f) {
		t.Error("a regular file is a terminal")
	}
	if _, ok := progress.Auto(f).(*progress.LinesRenderer); !ok {
		t.Error("Auto on a file is not Lines")
	}
	// The master side of a pseudo-terminal is a terminal.
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("open a pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	if !progress.IsTerminal(ptmx) {
		t.Error("/dev/ptmx is not a terminal")
	}
	if progress.IsTerminal(nil) {
		t.Error("nil is a terminal")
	}
}
