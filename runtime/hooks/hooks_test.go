package hooks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestRunPassesStateAndArgs(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	hooks := []specs.Hook{
		{Path: "/bin/sh", Args: []string{"sh", "-c", `cat > "$1"; echo "$HOOK_ENV" >> "$1"`, "sh", out}, Env: []string{"HOOK_ENV=first"}},
		{Path: "/bin/sh", Args: []string{"sh", "-c", `echo second >> "$1"`, "sh", out}},
	}
	if err := Run("poststart", hooks, []byte(`{"id":"c1"}`)); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(out)
	if got, want := string(data), "{\"id\":\"c1\"}first\nsecond\n"; got != want {
		t.Errorf("hooks wrote %q, want %q (state on stdin, env, order)", got, want)
	}
}

func TestRunFailureNamesHook(t *testing.T) {
	hooks := []specs.Hook{
		{Path: "/bin/true"},
		{Path: "/bin/sh", Args: []string{"sh", "-c", "echo broken config >&2; exit 3"}},
	}
	err := Run("createRuntime", hooks, nil)
	if err == nil {
		t.Fatal("a failing hook gave no error")
	}
	for _, want := range []string{"hooks.createRuntime[1] (/bin/sh)", "exit status 3", "broken config"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if err := Run("prestart", []specs.Hook{{Path: "/nonexistent/hook"}}, nil); err == nil || !strings.Contains(err.Error(), "hooks.prestart[0] (/nonexistent/hook)") {
		t.Errorf("missing hook: %v", err)
	}
}

func TestRunTimeout(t *testing.T) {
	one := 1
	start := time.Now()
	err := Run("poststop", []specs.Hook{{Path: "/bin/sleep", Args: []string{"sleep", "30"}, Timeout: &one}}, nil)
	if err == nil || !strings.Contains(err.Error(), "timed out after 1s") {
		t.Fatalf("error %v, want a timeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the hook was not killed at its timeout (took %v)", d)
	}
	zero := 0
	if err := Run("poststop", []specs.Hook{{Path: "/bin/true", Timeout: &zero}}, nil); err == nil {
		t.Error("a zero timeout was accepted")
	}
}
