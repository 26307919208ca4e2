package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/testimage"
)

func TestCopyCommand(t *testing.T) {
	images := testimage.Build(t, "busybox")
	root, out := t.TempDir(), t.TempDir()
	layout := filepath.Join(images, "busybox")
	archive := filepath.Join(out, "bb.tar")
	got := mustRun(t, "--root", root, "image", "copy", "-q", "oci:"+layout, "docker-archive:"+archive+":bb:1")
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}\n$`).MatchString(got) {
		t.Fatalf("copy printed %q, want the manifest digest", got)
	}
	got2 := mustRun(t, "--root", root, "image", "copy", "-q", "docker-archive:"+archive, "berth:bb:2")
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}\n$`).MatchString(got2) {
		t.Fatalf("copy to berth: printed %q", got2)
	}
	if list := mustRun(t, "--root", root, "images", "--format", "{{.Repository}}:{{.Tag}}"); list != "bb:2\n" {
		t.Errorf("images after copy: %q", list)
	}
	// berth: → oci: → back gives the stored manifest's digest.
	got3 := mustRun(t, "--root", root, "image", "copy", "-q", "berth:bb:2", "oci:"+filepath.Join(out, "dir")+":v2")
	if got3 != got2 {
		t.Errorf("copy from berth: printed %q, the store holds %q", got3, got2)
	}
	if _, err := run(t, nil, "--root", root, "image", "copy", "foo:x", "oci:"+out); err == nil || !strings.Contains(err.Error(), `unknown transport "foo"`) {
		t.Errorf("unknown transport: %v", err)
	}
	if _, err := run(t, nil, "--root", root, "image", "copy", "oci:"+filepath.Join(out, "nope"), "oci:"+filepath.Join(out, "x")); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing source: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, "x")); !os.IsNotExist(err) {
		t.Errorf("a failed copy made its destination: %v", err)
	}
}
