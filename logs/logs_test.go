package logs

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var base = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// line is entry i's JSON line: its text is "line i", at base + i seconds.
func line(i int) string {
	stream := "stdout"
	if i%3 == 0 {
		stream = "stderr"
	}
	b, _ := json.Marshal(map[string]string{
		"log":    fmt.Sprintf("line %d\n", i),
		"stream": stream,
		"time":   base.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano),
	})
	return string(b) + "\n"
}

func lines(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		b.WriteString(line(i))
	}
	return b.String()
}

func writeFile(t *testing.T, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// collect reads the log and returns the entries' texts, trimmed.
func collect(t *testing.T, path string, opts ReadOptions) []string {
	t.Helper()
	var got []string
	err := Read(context.Background(), path, opts, func(e Entry) error {
		got = append(got, strings.TrimSuffix(string(e.Line), "\n"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func texts(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("line %d", i))
	}
	return out
}

// rotatedLog writes entries 0-29 as LOG.2 (0-9), LOG.1 (10-19), LOG (20-29).
func rotatedLog(t *testing.T) string {
	dir := t.TempDir()
	path := filepath.Join(dir, "ctr-json.log")
	writeFile(t, path+".2", lines(0, 10))
	writeFile(t, path+".1", lines(10, 20))
	writeFile(t, path, lines(20, 30))
	return path
}

func TestReadAllAndTail(t *testing.T) {
	path := rotatedLog(t)
	if got := collect(t, path, ReadOptions{Tail: -1}); !reflect.DeepEqual(got, texts(0, 30)) {
		t.Errorf("all: %q", got)
	}
	for _, tc := range []struct{ tail, from int }{{0, 30}, {1, 29}, {5, 25}, {10, 20}, {11, 19}, {25, 5}, {30, 0}, {100, 0}} {
		got := collect(t, path, ReadOptions{Tail: tc.tail})
		if want := texts(tc.from, 30); !reflect.DeepEqual(got, want) {
			t.Errorf("tail %d: %q, want %q", tc.tail, got, want)
		}
	}
	var e Entry
	_ = Read(context.Background(), path, ReadOptions{Tail: 1}, func(x Entry) error { e = x; return nil })
	if e.Stream != "stdout" || !e.Time.Equal(base.Add(29*time.Second)) || string(e.Line) != "line 29\n" {
		t.Errorf("entry %+v", e)
	}
}

func TestTailLargeFile(t *testing.T) {
	// More than one 64 KiB block, to cross block boundaries backwards.
	path := filepath.Join(t.TempDir(), "log")
	writeFile(t, path, lines(0, 3000))
	if got := collect(t, path, ReadOptions{Tail: 2500}); !reflect.DeepEqual(got, texts(500, 3000)) {
		t.Errorf("tail 2500: %d lines, first %q", len(got), got[:1])
	}
}

func TestSinceUntil(t *testing.T) {
	path := rotatedLog(t)
	got := collect(t, path, ReadOptions{Tail: -1, Since: base.Add(8 * time.Second), Until: base.Add(21 * time.Second)})
	if want := texts(8, 22); !reflect.DeepEqual(got, want) {
		t.Errorf("since/until: %q, want %q", got, want)
	}
	// Tail first, then since.
	got = collect(t, path, ReadOptions{Tail: 5, Since: base.Add(27 * time.Second)})
	if want := texts(27, 30); !reflect.DeepEqual(got, want) {
		t.Errorf("tail+since: %q, want %q", got, want)
	}
}

func TestMalformedLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	// A garbage line in the middle, a crash's partial line, then the
	// writer went on; finally a partial last line.
	content := line(0) + "not json\n" + line(1) + `{"log":"lost` + "\n" + line(2) + `{"log":"half","stre`
	writeFile(t, path, content)
	if got := collect(t, path, ReadOptions{Tail: -1}); !reflect.DeepEqual(got, texts(0, 3)) {
		t.Errorf("got %q", got)
	}
	if got := collect(t, path, ReadOptions{Tail: 1}); !reflect.DeepEqual(got, texts(2, 3)) {
		t.Errorf("tail 1 with a partial last line: %q", got)
	}
}

func TestMissingLog(t *testing.T) {
	if got := collect(t, filepath.Join(t.TempDir(), "none"), ReadOptions{Tail: -1}); len(got) != 0 {
		t.Errorf("got %q", got)
	}
}

func TestFollowWithRotation(t *testing.T) {
	// fast: several rotations between two polls; slow: the reader sees
	// each rotation, and the gap before the new file exists.
	for _, slow := range []bool{false, true} {
		t.Run(fmt.Sprintf("slow=%v", slow), func(t *testing.T) { followWithRotation(t, slow) })
	}
}

func followWithRotation(t *testing.T, slow bool) {
	dir := t.TempDir()
	path := filepath.Join(dir, "log")
	writeFile(t, path+".1", lines(0, 5))
	writeFile(t, path, lines(5, 10))

	const total = 400
	pause := func(d time.Duration) {
		if slow {
			time.Sleep(d)
		}
	}
	var finished atomic.Bool
	writerErr := make(chan error, 1)
	go func() {
		writerErr <- func() error {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			defer func() { f.Close() }()
			for i := 10; i < total; i++ {
				l := line(i)
				// Half a line, maybe a pause, the rest: the reader must
				// wait for the newline.
				if _, err := f.WriteString(l[:len(l)/2]); err != nil {
					return err
				}
				if i%20 == 0 {
					pause(5 * time.Millisecond)
				}
				if _, err := f.WriteString(l[len(l)/2:]); err != nil {
					return err
				}
				if i%47 == 0 { // rotate, the way the monitor does
					f.Close()
					if err := rotate(path); err != nil {
						return err
					}
					pause(30 * time.Millisecond)
					if f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644); err != nil {
						return err
					}
				}
			}
			return nil
		}()
		finished.Store(true)
	}()

	var got []string
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := Read(ctx, path, ReadOptions{Tail: -1, Follow: true, Stop: finished.Load}, func(e Entry) error {
		got = append(got, strings.TrimSuffix(string(e.Line), "\n"))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-writerErr; err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, texts(0, total)) {
		t.Errorf("followed %d lines, want %d (lost or doubled)", len(got), total)
		seen := map[string]int{}
		for _, g := range got {
			seen[g]++
		}
		for _, w := range texts(0, total) {
			if seen[w] != 1 {
				t.Errorf("%s seen %d times", w, seen[w])
			}
		}
	}
}

// rotate renames path.N to path.N+1, oldest first, down to path to
// path.1, as the monitor does. It deletes nothing: a file rotated out
// before a reader reaches it is lost to docker's readers too.
func rotate(path string) error {
	n := 0
	for {
		if _, err := os.Stat(fmt.Sprintf("%s.%d", path, n+1)); err != nil {
			break
		}
		n++
	}
	for i := n; i >= 1; i-- {
		if err := os.Rename(fmt.Sprintf("%s.%d", path, i), fmt.Sprintf("%s.%d", path, i+1)); err != nil {
			return err
		}
	}
	return os.Rename(path, path+".1")
}

func TestFollowEnds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	writeFile(t, path, lines(0, 3))
	// Done ends following.
	done := make(chan struct{})
	n := 0
	go func() { time.Sleep(50 * time.Millisecond); close(done) }()
	err := Read(context.Background(), path, ReadOptions{Tail: 0, Follow: true, Done: done}, func(Entry) error { n++; return nil })
	if err != nil || n != 0 {
		t.Errorf("tail 0 follow: %d entries, %v", n, err)
	}
	// The context ends following with its error.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := Read(ctx, path, ReadOptions{Tail: -1, Follow: true}, func(Entry) error { return nil }); err != context.DeadlineExceeded {
		t.Errorf("context: %v", err)
	}
	// Until in the past: follow returns after the old lines.
	got := collect(t, path, ReadOptions{Tail: -1, Follow: true, Until: base.Add(time.Second)})
	if !reflect.DeepEqual(got, texts(0, 2)) {
		t.Errorf("until: %q", got)
	}
	// An error from fn ends Read with it.
	boom := fmt.Errorf("boom")
	if err := Read(context.Background(), path, ReadOptions{Tail: -1}, func(Entry) error { return boom }); err != boom {
		t.Errorf("fn error: %v", err)
	}
	// Following a log not yet created picks it up when it appears.
	late := filepath.Join(t.TempDir(), "late")
	var stop atomic.Bool
	go func() {
		time.Sleep(30 * time.Millisecond)
		os.WriteFile(late, []byte(lines(0, 2)), 0o644)
		time.Sleep(30 * time.Millisecond)
		stop.Store(true)
	}()
	got = collect(t, late, ReadOptions{Tail: -1, Follow: true, Stop: stop.Load})
	if !reflect.DeepEqual(got, texts(0, 2)) {
		t.Errorf("late log: %q", got)
	}
}

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2026-01-02T03:04:05Z", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"2026-01-02T03:04:05.123456789Z", time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)},
		{"2026-01-02T03:04:05+02:00", time.Date(2026, 1, 2, 1, 4, 5, 0, time.UTC)},
		{"2026-01-02T03:04:05", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{"2026-01-02T03:04", time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)},
		{"2026-01-02", time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)},
		{"1700000000", time.Unix(1700000000, 0)},
		{"1700000000.5", time.Unix(1700000000, 500000000)},
		{"1700000000.000000001", time.Unix(1700000000, 1)},
		{"0", time.Unix(0, 0)},
		{"10m", now.Add(-10 * time.Minute)},
		{"1h30m", now.Add(-90 * time.Minute)},
	} {
		got, err := ParseTime(tc.in, now)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "yesterday", "10x", "2026-13-01", "17000.x", "1.2.3", "2026-01-02T25:00:00Z"} {
		if _, err := ParseTime(bad, now); err == nil {
			t.Errorf("ParseTime(%q): no error", bad)
		} else if bad != "" && !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseTime(%q): error %q does not name the value", bad, err)
		}
	}
}

func TestWrite(t *testing.T) {
	e := Entry{Stream: "stdout", Time: time.Date(2026, 1, 2, 3, 4, 5, 120000000, time.FixedZone("x", 3600)), Line: []byte("hi\n")}
	for _, tc := range []struct {
		ts      bool
		details []string
		want    string
	}{
		{false, nil, "hi\n"},
		{true, nil, "2026-01-02T02:04:05.120000000Z hi\n"},
		{true, []string{"a=b", "c=d"}, "2026-01-02T02:04:05.120000000Z a=b,c=d hi\n"},
	} {
		var b bytes.Buffer
		if err := Write(&b, e, tc.ts, tc.details...); err != nil || b.String() != tc.want {
			t.Errorf("Write(ts=%v, %v) = %q, %v; want %q", tc.ts, tc.details, b.String(), err, tc.want)
		}
	}
}
