package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/testimage"
)

func TestLoadSaveCommands(t *testing.T) {
	images := testimage.Build(t, "busybox", "layered")
	root, root2, out := t.TempDir(), t.TempDir(), t.TempDir()

	if got := mustRun(t, "--root", root, "load", "-i", filepath.Join(images, "layered"), "layered:v1"); got != "Loaded image: layered:v1\n" {
		t.Errorf("load -i DIR NAME printed %q", got)
	}
	got := mustRun(t, "--root", root, "load", "-i", filepath.Join(images, "busybox"))
	id, ok := strings.CutPrefix(strings.TrimSpace(got), "Loaded image ID: ")
	if !ok || !strings.HasPrefix(id, "sha256:") {
		t.Fatalf("load of a layout tagged only \"latest\" printed %q, want the image ID", got)
	}
	// Both images in one docker archive, and an OCI directory.
	archive := filepath.Join(out, "both.tar")
	mustRun(t, "--root", root, "save", "-o", archive, "layered:v1", id)
	_, err := run(t, nil, "--root", root, "save", "-o", filepath.Join(out, "x.tar"), "busybox:latest")
	if err == nil || !strings.Contains(err.Error(), "busybox") {
		t.Errorf("save of a missing name: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "x.tar")); !os.IsNotExist(err) {
		t.Errorf("a failed save left its output file: %v", err)
	}
	mustRun(t, "--root", root, "save", "--format", "oci-dir", "-o", filepath.Join(out, "dir"), "layered:v1")
	if _, err := run(t, nil, "--root", root, "save", "--format", "oci-dir", "layered:v1"); err == nil || !strings.Contains(err.Error(), "needs -o") {
		t.Errorf("oci-dir without -o: %v", err)
	}
	if _, err := run(t, nil, "--root", root, "save", "--format", "zip", "-o", "x", "layered:v1"); err == nil || !strings.Contains(err.Error(), `"zip"`) {
		t.Errorf("unknown format: %v", err)
	}

	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, data, "--root", root2, "load", "name:too"); err == nil || !strings.Contains(err.Error(), "has 2") {
		t.Errorf("a name for an archive of two images: %v", err)
	}
	got, err = run(t, data, "--root", root2, "load")
	if err != nil || got != "Loaded image: layered:v1\nLoaded image ID: "+id+"\n" {
		t.Errorf("load from stdin printed %q, %v", got, err)
	}
	if got := mustRun(t, "--root", root2, "load", "-q", "-i", filepath.Join(out, "dir")); got != "" {
		t.Errorf("load -q printed %q", got)
	}
	list := mustRun(t, "--root", root2, "images", "--format", "json")
	if !strings.Contains(list, `"Repository":"layered","Tag":"v1"`) || strings.Count(list, "\n") != 2 {
		t.Errorf("images after load:\n%s", list)
	}
	if _, err := run(t, []byte("not an archive at all, really not"), "--root", root2, "load"); err == nil || !strings.Contains(err.Error(), "read archive") {
		t.Errorf("load of garbage: %v", err)
	}
	if got := mustRun(t, "--root", root2, "system", "check"); got != "" {
		t.Errorf("system check after the loads printed %q", got)
	}
}

func TestImagesFormatTemplate(t *testing.T) {
	images := testimage.Build(t, "busybox")
	root := t.TempDir()
	mustRun(t, "--root", root, "load", "-i", filepath.Join(images, "busybox"), "example.com/bb:1")
	if got := mustRun(t, "--root", root, "images", "--format", "{{.Repository}}:{{.Tag}} {{upper .Size}}"); !strings.HasPrefix(got, "example.com/bb:1 2.") || !strings.HasSuffix(got, "MB\n") {
		t.Errorf("template output %q", got)
	}
	got := mustRun(t, "--root", root, "images", "--format", `table {{.Repository}}\t{{.ID}}`)
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "REPOSITORY ") || !strings.HasSuffix(lines[0], "IMAGE ID") || !strings.HasPrefix(lines[1], "example.com/bb ") {
		t.Errorf("table template output:\n%s", got)
	}
	if got := mustRun(t, "--root", root, "images", "--format", "{{json .Tag}}"); got != "\"1\"\n" {
		t.Errorf("json func: %q", got)
	}
	if _, err := run(t, nil, "--root", root, "images", "--format", "{{.Nope}}"); err == nil || !strings.Contains(err.Error(), "Nope") {
		t.Errorf("unknown field: %v", err)
	}
	if _, err := run(t, nil, "--root", root, "images", "--format", "{{.Repository"); err == nil || !strings.Contains(err.Error(), "--format") {
		t.Errorf("bad template: %v", err)
	}
}
