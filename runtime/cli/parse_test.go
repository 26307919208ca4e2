package cli

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]unix.Signal{
		"KILL": unix.SIGKILL, "SIGKILL": unix.SIGKILL, "kill": unix.SIGKILL, "9": unix.SIGKILL,
		"TERM": unix.SIGTERM, "usr1": unix.SIGUSR1, "SIGRTMIN+3": unix.Signal(37), "64": unix.Signal(64),
	} {
		got, err := ParseSignal(in)
		if err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "65", "-1", "SIGFOO", "RTMIN+40"} {
		if _, err := ParseSignal(bad); err == nil {
			t.Errorf("ParseSignal(%q) accepted", bad)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{
		"512": 512, "64k": 64 << 10, "100m": 100 << 20, "1g": 1 << 30, "1GiB": 1 << 30, "2MB": 2 << 20, "-1": -1, "1.5k": 1536,
	} {
		got, err := ParseBytes(in)
		if err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "12q", "m", "-5", "1..2k"} {
		if _, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) accepted", bad)
		}
	}
}

func TestParseUser(t *testing.T) {
	u, err := parseUser("1000:100")
	if err != nil || u.UID != 1000 || u.GID != 100 {
		t.Errorf("parseUser(1000:100) = %+v, %v", u, err)
	}
	for _, bad := range []string{"root", "1000:", ":5", "1000:x"} {
		if _, err := parseUser(bad); err == nil {
			t.Errorf("parseUser(%q) accepted", bad)
		}
	}
}
