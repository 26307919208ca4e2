package engine

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// A run starts its container's monitor and init before it opens the store
// (engine.BeginPrelaunch), from the command line alone. These tests cover
// what the command line does not tell: a run that fails before the
// container exists, and an image whose config changes the monitor's work.

// TestRunFailuresLeaveNoDirs: runs that fail before their container is
// made (a missing image, a name in use, a command that cannot run) leave
// no container directory, run directory or monitor behind.
func TestRunFailuresLeaveNoDirs(t *testing.T) {
	cleanupContainer(t, "prelaunch-taken")
	ok(t, "create", "--name", "prelaunch-taken", "busybox", "true")
	before := containerDirs(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"missing image", []string{"run", "--rm", "--pull", "never", "--network", "none", "no-such-image-prelaunch", "true"}, 125},
		{"missing image detached", []string{"run", "-d", "--pull", "never", "--network", "none", "no-such-image-prelaunch", "true"}, 125},
		{"name in use", []string{"run", "--rm", "--name", "prelaunch-taken", "--network", "none", "busybox", "true"}, 125},
		{"name in use detached", []string{"run", "-d", "--name", "prelaunch-taken", "--network", "none", "busybox", "true"}, 125},
		{"command not found", []string{"run", "--rm", "--network", "none", "busybox", "/no/such/command"}, 127},
	} {
		if r := berth(t, tc.args...); r.code != tc.code {
			t.Errorf("%s: %v, want exit %d", tc.name, r, tc.code)
		}
	}
	eventually(t, 5*time.Second, "no monitor of a failed run", func() bool {
		return len(deletedRunDirProcs()) == 0
	})
	if after := containerDirs(t); !slices.Equal(after, before) {
		t.Errorf("container and run directories changed: before %v, after %v", before, after)
	}
}

// TestRunImageHealthcheck: the image's HEALTHCHECK, which a run learns
// only from the store, runs as the container's health check.
func TestRunImageHealthcheck(t *testing.T) {
	img := "busybox-healthcheck"
	imageWithConfig(t, img, func(cfg map[string]any) {
		cfg["Healthcheck"] = map[string]any{"Test": []string{"CMD-SHELL", "test -f /ok"}, "Interval": int64(time.Second), "Retries": 1}
	})
	name := "image-health"
	cleanupContainer(t, name)
	ok(t, "run", "-d", "--name", name, "--network", "none", img, "sleep", "1000")
	eventually(t, 15*time.Second, "unhealthy from the image's check", func() bool { return healthStatus(t, name) == "unhealthy" })
	ok(t, "exec", name, "touch", "/ok")
	eventually(t, 15*time.Second, "healthy from the image's check", func() bool { return healthStatus(t, name) == "healthy" })
	// --no-healthcheck turns the image's check off.
	cleanupContainer(t, name+"-off")
	ok(t, "run", "-d", "--name", name+"-off", "--network", "none", "--no-healthcheck", img, "sleep", "1000")
	if h := health(t, name+"-off"); h != nil {
		t.Errorf("State.Health = %v with --no-healthcheck", h)
	}
}

// containerDirs lists the container directories in the store and the run
// root, as "store/ID" and "run/ID", sorted.
func containerDirs(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, d := range []struct{ label, dir string }{{"store", filepath.Join(storeDir, "containers")}, {"run", filepath.Join(runDir, "containers")}} {
		ents, err := os.ReadDir(d.dir)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range ents {
			out = append(out, d.label+"/"+e.Name())
		}
	}
	slices.Sort(out)
	return out
}

// deletedRunDirProcs lists the processes whose working directory is a
// removed container run directory: monitors of aborted launches that
// did not exit.
func deletedRunDirProcs() []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		cwd, _ := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if strings.HasPrefix(cwd, filepath.Join(runDir, "containers")+"/") && strings.HasSuffix(cwd, " (deleted)") {
			out = append(out, e.Name())
		}
	}
	return out
}

// imageWithConfig loads, as name, the busybox test image with its config's
// "config" object changed by edit.
func imageWithConfig(t *testing.T, name string, edit func(map[string]any)) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	ok(t, "save", "--format", "oci-dir", "-o", dir, "busybox")
	blob := func(d string) string { return filepath.Join(dir, "blobs", "sha256", strings.TrimPrefix(d, "sha256:")) }
	put := func(v any) (string, int) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		d := "sha256:" + hex.EncodeToString(sum[:])
		if err := os.WriteFile(blob(d), b, 0o644); err != nil {
			t.Fatal(err)
		}
		return d, len(b)
	}
	read := func(path string) map[string]any {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return v
	}
	index := read(filepath.Join(dir, "index.json"))
	descs, _ := index["manifests"].([]any)
	if len(descs) != 1 {
		t.Fatalf("saved layout has %d manifests, want 1", len(descs))
	}
	md := descs[0].(map[string]any)
	manifest := read(blob(md["digest"].(string)))
	cd := manifest["config"].(map[string]any)
	config := read(blob(cd["digest"].(string)))
	c, _ := config["config"].(map[string]any)
	if c == nil {
		c = map[string]any{}
		config["config"] = c
	}
	edit(c)
	cd["digest"], cd["size"] = put(config)
	md["digest"], md["size"] = put(manifest)
	md["annotations"] = map[string]any{"org.opencontainers.image.ref.name": name, "io.containerd.image.name": "docker.io/library/" + name + ":latest"}
	b, err := json.Marshal(index)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	ok(t, "load", "-i", dir)
	t.Cleanup(func() { berthCmd("rmi", "-f", name).Run() })
	if out := ok(t, "images", "--format", "{{.Repository}}"); !slices.Contains(strings.Fields(out), name) {
		t.Fatalf("images after load: %q lacks %s", out, name)
	}
}
