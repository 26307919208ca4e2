package progress

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestJSONInterval drives the 100ms rule with a fake clock.
func TestJSONInterval(t *testing.T) {
	var buf bytes.Buffer
	j := JSON(&buf)
	now := time.Unix(0, 0)
	j.now = func() time.Time { return now }
	const total = 1 << 30 // 1% is about 10 MiB: never reached below
	e := Event{ID: "aaaaaaaaaaaa", Status: StatusDownloading, Total: total}
	var want []int64
	for i := int64(0); i < 100; i++ {
		e.Current = i * 1024
		// One event every 30ms: written at 0, 120, 240, ... ms.
		if i%4 == 0 {
			want = append(want, e.Current)
		}
		j.Event(e)
		now = now.Add(30 * time.Millisecond)
	}
	e.Current = total
	want = append(want, total)
	j.Event(e)
	j.Event(e) // the completion again: nothing new
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, c := range want {
		if !strings.Contains(lines[i], `"current":`+strconv.FormatInt(c, 10)+`,`) {
			t.Errorf("line %d = %s, want current %d", i, lines[i], c)
		}
	}
}
