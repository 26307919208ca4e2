package events

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/events"
)

func msg(id string, action events.Action) events.Message {
	return events.Message{Type: events.ContainerEventType, Action: action,
		Actor: events.Actor{ID: id, Attributes: map[string]string{"name": "n-" + id, "image": "busybox"}}}
}

func readAll(t *testing.T, j *Journal, opts ReadOptions) []events.Message {
	t.Helper()
	var got []events.Message
	if err := j.Read(context.Background(), opts, func(m events.Message) error {
		got = append(got, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestHelperAppender is run as a child process by
// TestConcurrentAppendProcesses.
func TestHelperAppender(t *testing.T) {
	dir := os.Getenv("EVENTS_TEST_DIR")
	if dir == "" {
		return
	}
	n, _ := strconv.Atoi(os.Getenv("EVENTS_TEST_N"))
	j := Open(dir, 0)
	for i := 0; i < n; i++ {
		if err := j.Append(msg(fmt.Sprintf("p%s-%d", os.Getenv("EVENTS_TEST_ID"), i), "start")); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConcurrentAppendGoroutines(t *testing.T) {
	j := Open(t.TempDir(), 0)
	const workers, each = 8, 200
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				m := msg(fmt.Sprintf("g%d-%d", w, i), "create")
				m.Actor.Attributes["pad"] = strings.Repeat("x", 4000) // lines longer than a pipe buffer
				if err := j.Append(m); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got := readAll(t, j, ReadOptions{})
	seen := map[string]bool{}
	for _, m := range got {
		seen[m.Actor.ID] = true
		if m.Scope != "local" || m.TimeNano == 0 || m.Time != m.TimeNano/1e9 {
			t.Fatalf("event %+v lacks scope or time", m)
		}
	}
	if len(got) != workers*each || len(seen) != workers*each {
		t.Fatalf("read %d events (%d distinct), want %d", len(got), len(seen), workers*each)
	}
}

func TestConcurrentAppendProcesses(t *testing.T) {
	dir := t.TempDir()
	const procs, each = 4, 150
	var cmds []*exec.Cmd
	for p := 0; p < procs; p++ {
		c := exec.Command(os.Args[0], "-test.run=^TestHelperAppender$", "-test.count=1")
		c.Env = append(os.Environ(), "EVENTS_TEST_DIR="+dir, "EVENTS_TEST_N="+strconv.Itoa(each), "EVENTS_TEST_ID="+strconv.Itoa(p))
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, c)
	}
	for _, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Fatalf("appender: %v", err)
		}
	}
	got := readAll(t, Open(dir, 0), ReadOptions{})
	seen := map[string]bool{}
	for _, m := range got {
		seen[m.Actor.ID] = true
	}
	if len(got) != procs*each || len(seen) != procs*each {
		t.Fatalf("read %d events (%d distinct), want %d", len(got), len(seen), procs*each)
	}
}

func TestRotation(t *testing.T) {
	dir := t.TempDir()
	j := Open(dir, 2000)
	for i := 0; i < 30; i++ {
		if err := j.Append(msg(strconv.Itoa(i), "start")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(j.oldPath()); err != nil {
		t.Fatalf("no rotated generation: %v", err)
	}
	for _, p := range []string{j.path(), j.oldPath()} {
		if fi, err := os.Stat(p); err != nil || fi.Size() > 2000+300 {
			t.Fatalf("%s: %v, size %d over the cap", p, err, fi.Size())
		}
	}
	got := readAll(t, j, ReadOptions{})
	if len(got) == 0 || len(got) >= 30 {
		t.Fatalf("read %d events after rotation, want the newest few", len(got))
	}
	// The newest are kept, in order.
	last := -1
	for _, m := range got {
		n, _ := strconv.Atoi(m.Actor.ID)
		if n <= last {
			t.Fatalf("events out of order: %d after %d", n, last)
		}
		last = n
	}
	if last != 29 {
		t.Fatalf("newest event %d, want 29", last)
	}
}

func TestSinceUntilFilter(t *testing.T) {
	j := Open(t.TempDir(), 0)
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	add := func(sec int, m events.Message) {
		m.TimeNano = base.Add(time.Duration(sec) * time.Second).UnixNano()
		if err := j.Append(m); err != nil {
			t.Fatal(err)
		}
	}
	add(0, msg("aaa", "create"))
	add(1, msg("aaa", "start"))
	add(2, msg("bbb", "start"))
	vol := events.Message{Type: events.VolumeEventType, Action: "create", Actor: events.Actor{ID: "vol1", Attributes: map[string]string{"driver": "local"}}}
	add(3, vol)
	exec := msg("aaa", "exec_start: sh -c true")
	exec.Actor.Attributes["com.example"] = "x"
	add(4, exec)

	ids := func(ms []events.Message) string {
		s := ""
		for _, m := range ms {
			s += m.Actor.ID + "/" + string(m.Action) + " "
		}
		return s
	}
	cases := []struct {
		since, until int
		filter       []string
		want         string
	}{
		{-1, -1, nil, "aaa/create aaa/start bbb/start vol1/create aaa/exec_start: sh -c true "},
		{1, 3, nil, "aaa/start bbb/start vol1/create "},
		{-1, -1, []string{"container=aaa"}, "aaa/create aaa/start aaa/exec_start: sh -c true "},
		{-1, -1, []string{"container=n-bbb"}, "bbb/start "},
		{-1, -1, []string{"event=start"}, "aaa/start bbb/start "},
		{-1, -1, []string{"event=exec_start"}, "aaa/exec_start: sh -c true "},
		{-1, -1, []string{"type=volume"}, "vol1/create "},
		{-1, -1, []string{"volume=vol1", "event=create"}, "vol1/create "},
		{-1, -1, []string{"event=create", "event=start", "container=bbb"}, "bbb/start "},
		{-1, -1, []string{"label=com.example"}, "aaa/exec_start: sh -c true "},
		{-1, -1, []string{"label=com.example=y"}, ""},
		{-1, -1, []string{"image=busybox", "event=create"}, "aaa/create "},
	}
	for _, c := range cases {
		opts := ReadOptions{}
		if c.since >= 0 {
			opts.Since = base.Add(time.Duration(c.since) * time.Second)
		}
		if c.until >= 0 {
			opts.Until = base.Add(time.Duration(c.until) * time.Second)
		}
		if c.filter != nil {
			f, err := ParseFilter(c.filter)
			if err != nil {
				t.Fatal(err)
			}
			opts.Filter = f
		}
		if got := ids(readAll(t, j, opts)); got != c.want {
			t.Errorf("since %d until %d filter %v: got %q, want %q", c.since, c.until, c.filter, got, c.want)
		}
	}
	if _, err := ParseFilter([]string{"bogus=1"}); err == nil {
		t.Error("unknown filter key accepted")
	}
	if _, err := ParseFilter([]string{"container"}); err == nil {
		t.Error("filter without = accepted")
	}
}

func TestFollow(t *testing.T) {
	j := Open(t.TempDir(), 1500)
	j.Poll = 10 * time.Millisecond
	if err := j.Append(msg("old", "start")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan string, 100)
	done := make(chan error, 1)
	go func() {
		done <- j.Read(ctx, ReadOptions{Follow: true}, func(m events.Message) error {
			got <- m.Actor.ID
			return nil
		})
	}()
	time.Sleep(50 * time.Millisecond)
	// Enough to rotate a few times while following.
	for i := 0; i < 20; i++ {
		if err := j.Append(msg("new"+strconv.Itoa(i), "start")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(15 * time.Millisecond)
	}
	for i := 0; i < 20; i++ {
		select {
		case id := <-got:
			if want := "new" + strconv.Itoa(i); id != want {
				t.Fatalf("followed event %d is %s, want %s", i, id, want)
			}
		case <-ctx.Done():
			t.Fatalf("only %d new events arrived", i)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
