package cli

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// smallLayer writes a tar holding one file and returns its path.
func smallLayer(t *testing.T, name, data string) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(data))
	tw.Close()
	path := filepath.Join(t.TempDir(), "layer.tar")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSystemCheck corrupts the config blob of an image: check names the
// blob and the image and fails, --repair removes both and succeeds, and
// the next check prints nothing.
func TestSystemCheck(t *testing.T) {
	root := t.TempDir()
	id := strings.TrimSpace(mustRun(t, "--root", root, "import", busyboxLayer(t), "busybox"))
	mustRun(t, "--root", root, "import", smallLayer(t, "etc/keep", "keep"), "keep")
	if out := mustRun(t, "--root", root, "system", "check"); out != "" {
		t.Fatalf("check of a fresh store printed %q", out)
	}

	blob := filepath.Join(root, "content", "blobs", "sha256", strings.TrimPrefix(id, "sha256:"))
	if err := os.WriteFile(blob, []byte(`{"not": "the config"}`), 0o444); err != nil {
		t.Fatal(err)
	}
	out, err := run(t, nil, "--root", root, "system", "check")
	if err == nil {
		t.Fatalf("check of a corrupt store succeeded:\n%s", out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if !regexp.MustCompile(`(?m)^corrupt-blob `+id+`: `).MatchString(out) ||
		!regexp.MustCompile(`(?m)^broken-image docker.io/library/busybox:latest: config `+id).MatchString(out) ||
		strings.Contains(out, "keep") || strings.Contains(out, "(repaired)") {
		t.Fatalf("check printed:\n%s", out)
	}

	out, err = run(t, nil, "--root", root, "system", "check", "--repair")
	if err != nil {
		t.Fatalf("check --repair: %v\n%s", err, out)
	}
	repaired := strings.Split(strings.TrimSpace(out), "\n")
	if len(repaired) < len(lines) || !strings.HasSuffix(repaired[0], " (repaired)") || !strings.HasPrefix(repaired[len(repaired)-1], "Total reclaimed space: ") {
		t.Errorf("check --repair printed:\n%s", out)
	}
	for _, l := range repaired[:len(repaired)-1] {
		if !strings.HasSuffix(l, " (repaired)") {
			t.Errorf("not repaired: %s", l)
		}
	}
	if out := mustRun(t, "--root", root, "images", "--format", "json"); strings.Count(out, "\n") != 1 || !strings.Contains(out, `"Repository":"keep"`) {
		t.Errorf("images after repair:\n%s", out)
	}
	if out := mustRun(t, "--root", root, "system", "check"); out != "" {
		t.Errorf("check after repair printed %q", out)
	}
}

func TestSystemDF(t *testing.T) {
	root := t.TempDir()
	out := mustRun(t, "--root", root, "system", "df")
	if !regexp.MustCompile(`^TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+RECLAIMABLE\nImages\s+0\s+0\s+0B\s+0B\n`).MatchString(out) {
		t.Fatalf("df of an empty store:\n%s", out)
	}
	layer := smallLayer(t, "etc/a", strings.Repeat("a", 5000))
	mustRun(t, "--root", root, "import", layer, "a")
	mustRun(t, "--root", root, "import", "-c", "ENV X=1", layer, "b") // shares a's layer
	out = mustRun(t, "--root", root, "system", "df")
	m := regexp.MustCompile(`(?m)^Images\s+2\s+0\s+(\S+)\s+(\S+) \(100%\)$`).FindStringSubmatch(out)
	if m == nil || m[1] != m[2] || m[1] == "0B" || !regexp.MustCompile(`(?m)^Containers\s+0\s+0\s+0B\s+0B$`).MatchString(out) {
		t.Fatalf("df:\n%s", out)
	}

	var rows []map[string]string
	for _, l := range strings.Split(strings.TrimSpace(mustRun(t, "--root", root, "system", "df", "--format", "json")), "\n") {
		var r map[string]string
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("json line %q: %v", l, err)
		}
		rows = append(rows, r)
	}
	if len(rows) != 4 || rows[0]["Type"] != "Images" || rows[0]["TotalCount"] != "2" || rows[0]["Size"] != m[1] {
		t.Errorf("df --format json: %v", rows)
	}

	out = mustRun(t, "--root", root, "system", "df", "-v")
	re := regexp.MustCompile(`(?m)^([ab])\s+latest\s+[0-9a-f]{12}\s+.+ ago\s+(\S+)\s+(\S+)\s+(\S+)\s+0$`)
	found := re.FindAllStringSubmatch(out, -1)
	if !strings.HasPrefix(out, "Images space usage:\n\nREPOSITORY   TAG ") || len(found) != 2 || found[0][1] != "a" || found[1][1] != "b" ||
		found[0][3] != found[1][3] || found[0][3] == "0B" {
		t.Fatalf("df -v:\n%s", out)
	}

	var v struct {
		Images []struct {
			Repository, Size, SharedSize, UniqueSize string
		}
		ContentSize, SnapshotsSize string
	}
	if err := json.Unmarshal([]byte(mustRun(t, "--root", root, "system", "df", "-v", "--format", "json")), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Images) != 2 || v.Images[0].Repository != "a" || v.Images[0].SharedSize != found[0][3] || v.ContentSize == "" || v.SnapshotsSize == "0B" {
		t.Errorf("df -v --format json: %+v", v)
	}
}

func TestImagePrune(t *testing.T) {
	root := t.TempDir()
	dangling := strings.TrimSpace(mustRun(t, "--root", root, "import", smallLayer(t, "etc/d", "d")))
	named := strings.TrimSpace(mustRun(t, "--root", root, "import", smallLayer(t, "etc/n", "n"), "named:1"))

	// Answering no prunes nothing.
	out, err := run(t, []byte("n\n"), "--root", root, "image", "prune")
	if err != nil || out != pruneDanglingWarning+"Total reclaimed space: 0B\n" {
		t.Fatalf("prune, answered n: %v\n%q", err, out)
	}
	if n := len(strings.Fields(mustRun(t, "--root", root, "images", "-q"))); n != 2 {
		t.Fatalf("%d images after a refused prune", n)
	}
	out, err = run(t, []byte("y\n"), "--root", root, "image", "prune")
	if err != nil || !regexp.MustCompile(`^`+regexp.QuoteMeta(pruneDanglingWarning)+`Deleted Images:\ndeleted: `+dangling+`\n\nTotal reclaimed space: [0-9.]+k?B\n$`).MatchString(out) {
		t.Fatalf("prune, answered y: %v\n%s", err, out)
	}
	out = mustRun(t, "--root", root, "image", "prune", "-f")
	if out != "Total reclaimed space: 0B\n" {
		t.Errorf("second prune -f: %q", out)
	}
	out = mustRun(t, "--root", root, "image", "prune", "-a", "-f")
	if !regexp.MustCompile(`^Deleted Images:\nuntagged: named:1\ndeleted: ` + named + `\n\nTotal reclaimed space: [0-9.]+k?B\n$`).MatchString(out) {
		t.Errorf("prune -a -f:\n%s", out)
	}
	if out := mustRun(t, "--root", root, "images", "-q"); out != "" {
		t.Errorf("images left: %q", out)
	}
	out, err = run(t, nil, "--root", root, "image", "prune", "-a")
	if err != nil || out != pruneAllWarning+"Total reclaimed space: 0B\n" {
		t.Errorf("prune -a without an answer: %v %q", err, out)
	}
}
