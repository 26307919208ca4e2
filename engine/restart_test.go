package engine

import (
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-project/berth/containers"
)

func TestDecideRestart(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	policy := func(name string, n int) *container.HostConfig {
		return &container.HostConfig{RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyMode(name), MaximumRetryCount: n}}
	}
	exited := func(code, count int, ran, delay time.Duration) containers.State {
		return containers.State{Status: containers.Exited, ExitCode: code, RestartCount: count,
			StartedAt: t0, FinishedAt: t0.Add(ran), RestartDelay: delay}
	}
	rm := policy("always", 0)
	rm.AutoRemove = true
	stopped := exited(0, 0, time.Second, 0)
	stopped.ManuallyStopped = true
	for _, tc := range []struct {
		what      string
		st        containers.State
		hc        *container.HostConfig
		restart   bool
		count     int
		wantDelay time.Duration
	}{
		{"no policy", exited(1, 0, time.Second, 0), policy("no", 0), false, 0, 0},
		{"empty policy", exited(1, 0, time.Second, 0), policy("", 0), false, 0, 0},
		{"always, first", exited(0, 0, time.Second, 0), policy("always", 0), true, 1, restartDelayMin},
		{"always doubles", exited(0, 3, time.Second, 400*time.Millisecond), policy("always", 0), true, 4, 800 * time.Millisecond},
		{"always capped", exited(0, 30, time.Second, 50*time.Second), policy("always", 0), true, 31, restartDelayMax},
		{"ran 10 s resets", exited(0, 5, 10*time.Second, 3200*time.Millisecond), policy("always", 0), true, 6, restartDelayMin},
		{"unless-stopped", exited(0, 0, time.Second, 0), policy("unless-stopped", 0), true, 1, restartDelayMin},
		{"manually stopped", stopped, policy("always", 0), false, 0, 0},
		{"--rm", exited(1, 0, time.Second, 0), rm, false, 0, 0},
		{"on-failure exit 0", exited(0, 0, time.Second, 0), policy("on-failure", 0), false, 0, 0},
		{"on-failure unlimited", exited(2, 7, time.Second, 0), policy("on-failure", 0), true, 8, restartDelayMin},
		{"on-failure:2 under", exited(2, 1, time.Second, restartDelayMin), policy("on-failure", 2), true, 2, 2 * restartDelayMin},
		{"on-failure:2 reached", exited(2, 2, time.Second, 0), policy("on-failure", 2), false, 2, 0},
	} {
		st := tc.st
		got := decideRestart(&st, tc.hc)
		if got != tc.restart || st.RestartCount != tc.count {
			t.Errorf("%s: restart %v count %d, want %v %d", tc.what, got, st.RestartCount, tc.restart, tc.count)
		}
		if !got {
			if st.Status != containers.Exited {
				t.Errorf("%s: status %s without a restart", tc.what, st.Status)
			}
			continue
		}
		if st.Status != containers.Restarting || st.RestartDelay != tc.wantDelay {
			t.Errorf("%s: status %s delay %v, want restarting %v", tc.what, st.Status, st.RestartDelay, tc.wantDelay)
		}
	}
}

func TestStartedState(t *testing.T) {
	cfg := &container.Config{Healthcheck: &container.HealthConfig{Test: []string{"CMD", "true"}}}
	prev := containers.State{RestartCount: 4, RestartDelay: time.Second, ManuallyStopped: true,
		Health: &containers.Health{Status: "unhealthy", FailingStreak: 3, Log: []containers.HealthResult{{ExitCode: 1}}}}
	var st containers.State
	startedState(&st, prev, cfg, true)
	if st.RestartCount != 4 || st.RestartDelay != time.Second {
		t.Errorf("policy restart: count %d delay %v, want kept", st.RestartCount, st.RestartDelay)
	}
	if st.Health == nil || st.Health.Status != "starting" || st.Health.FailingStreak != 0 || len(st.Health.Log) != 1 {
		t.Errorf("health after start = %+v, want starting with the old log", st.Health)
	}
	st = containers.State{}
	startedState(&st, prev, &container.Config{}, false)
	if st.RestartCount != 0 || st.RestartDelay != 0 || st.Health != nil {
		t.Errorf("user start: %+v, want count, delay and health reset", st)
	}
}

func TestHealthCommand(t *testing.T) {
	for _, tc := range []struct {
		test  []string
		shell []string
		want  []string
	}{
		{nil, nil, nil},
		{[]string{"NONE"}, nil, nil},
		{[]string{"CMD"}, nil, nil},
		{[]string{"CMD", "curl", "-f", "x"}, nil, []string{"curl", "-f", "x"}},
		{[]string{"CMD-SHELL", "test -f /ok"}, nil, []string{"/bin/sh", "-c", "test -f /ok"}},
		{[]string{"CMD-SHELL", "exit 0"}, []string{"/bin/bash", "-ec"}, []string{"/bin/bash", "-ec", "exit 0"}},
	} {
		cfg := &container.Config{Shell: tc.shell, Healthcheck: &container.HealthConfig{Test: tc.test}}
		got, ok := healthCommand(cfg)
		if ok != (tc.want != nil) || len(got) != len(tc.want) {
			t.Errorf("%q: %q %v, want %q", tc.test, got, ok, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("%q: %q, want %q", tc.test, got, tc.want)
			}
		}
	}
}

func TestRecordHealth(t *testing.T) {
	started := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cfg := &container.HealthConfig{Retries: 2, StartPeriod: 5 * time.Second}
	at := func(sec int, code int) containers.HealthResult {
		s := started.Add(time.Duration(sec) * time.Second)
		return containers.HealthResult{Start: s, End: s.Add(time.Millisecond), ExitCode: code}
	}
	h := recordHealth(nil, at(1, 1), cfg, started)
	h = recordHealth(h, at(2, 1), cfg, started)
	if h.Status != "starting" || h.FailingStreak != 0 {
		t.Fatalf("failures in the start period: %s streak %d, want starting 0", h.Status, h.FailingStreak)
	}
	h = recordHealth(h, at(6, 1), cfg, started)
	if h.Status != "starting" || h.FailingStreak != 1 {
		t.Fatalf("one failure after the start period: %s streak %d", h.Status, h.FailingStreak)
	}
	h = recordHealth(h, at(7, 1), cfg, started)
	if h.Status != "unhealthy" || h.FailingStreak != 2 {
		t.Fatalf("retries failures: %s streak %d, want unhealthy 2", h.Status, h.FailingStreak)
	}
	h = recordHealth(h, at(8, 0), cfg, started)
	if h.Status != "healthy" || h.FailingStreak != 0 {
		t.Fatalf("success: %s streak %d", h.Status, h.FailingStreak)
	}
	prev := h
	h = recordHealth(h, at(9, 1), cfg, started)
	if h.Status != "healthy" || h.FailingStreak != 1 {
		t.Fatalf("one failure when healthy: %s streak %d, want healthy 1", h.Status, h.FailingStreak)
	}
	if len(h.Log) != 5 || !h.Log[4].Start.Equal(at(9, 1).Start) || !h.Log[0].Start.Equal(at(2, 1).Start) {
		t.Fatalf("log: %d results %v, want the last 5", len(h.Log), h.Log)
	}
	if len(prev.Log) != 5 || prev.FailingStreak != 0 {
		t.Errorf("recordHealth changed its input: %+v", prev)
	}
	// Default retries: 3.
	h = recordHealth(&containers.Health{Status: "healthy"}, at(9, 1), &container.HealthConfig{}, started)
	h = recordHealth(h, at(10, 1), &container.HealthConfig{}, started)
	if h.Status != "healthy" {
		t.Fatalf("2 failures with default retries: %s", h.Status)
	}
	h = recordHealth(h, at(11, 1), &container.HealthConfig{}, started)
	if h.Status != "unhealthy" {
		t.Fatalf("3 failures with default retries: %s", h.Status)
	}
}
