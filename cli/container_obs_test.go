package cli

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	eventtypes "github.com/moby/moby/api/types/events"

	"github.com/berth-project/berth/engine"
)

func TestFilterPS(t *testing.T) {
	out := `UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 Nov22 ?        00:00:01 /sbin/init
root         120       1  0 10:00 ?        00:00:00 sleep  1000 extra args
root         121     120  0 10:00 pts/0    00:00:00 sh
`
	titles, procs, err := filterPS(out, []int{120, 999})
	if err != nil {
		t.Fatal(err)
	}
	if len(titles) != 8 || len(procs) != 1 {
		t.Fatalf("titles %v, procs %v", titles, procs)
	}
	if p := procs[0]; p[1] != "120" || p[7] != "sleep 1000 extra args" {
		t.Fatalf("row %q", p)
	}
	if _, _, err := filterPS("USER COMMAND\nroot x\n", []int{1}); err == nil {
		t.Fatal("ps output without PID column accepted")
	}
}

func TestProcTop(t *testing.T) {
	titles, procs, err := procTop([]int{os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(titles, " ") != "UID PID PPID C STIME TTY TIME CMD" || len(procs) != 1 {
		t.Fatalf("titles %v procs %v", titles, procs)
	}
	p := procs[0]
	if p[1] != strconv.Itoa(os.Getpid()) || p[2] != strconv.Itoa(os.Getppid()) || !strings.Contains(p[7], os.Args[0]) {
		t.Fatalf("row %q", p)
	}
}

func TestEventLine(t *testing.T) {
	m := eventtypes.Message{Type: "container", Action: "start", Actor: eventtypes.Actor{ID: "abc",
		Attributes: map[string]string{"name": "foo", "image": "busybox"}},
		TimeNano: time.Date(2026, 11, 23, 10, 0, 0, 123456789, time.UTC).UnixNano()}
	if got, want := eventLine(m), "2026-11-23T10:00:00.123456789Z container start abc (image=busybox, name=foo)\n"; got != want {
		t.Fatalf("eventLine = %q, want %q", got, want)
	}
}

func TestStatsRow(t *testing.T) {
	prev := engine.StatsSample{ID: strings.Repeat("a", 64), Name: "c", Running: true, CPUTotal: 0, SystemCPU: 0, OnlineCPUs: 2}
	cur := prev
	cur.CPUTotal, cur.SystemCPU = 1e9, 4e9
	cur.MemUsage, cur.MemLimit = 3<<19, 8<<30
	cur.NetRx, cur.NetTx, cur.BlockRead, cur.Pids = 1234, 0, 5e6, 4
	r := statsRowOf("", prev, cur, false)
	want := statsRow{Container: strings.Repeat("a", 12), ID: strings.Repeat("a", 12), Name: "c", CPUPerc: "50.00%",
		MemUsage: "1.5MiB / 8GiB", MemPerc: "0.02%", NetIO: "1.23kB / 0B", BlockIO: "5MB / 0B", PIDs: "4"}
	if r != want {
		t.Fatalf("statsRowOf:\n got %+v\nwant %+v", r, want)
	}
}
