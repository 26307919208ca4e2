package archive

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

var testTime = time.Unix(1700000000, 0)

// ent is one entry of a test layer.
type ent struct {
	hdr  tar.Header
	data string
}

func reg(name, data string, mode int64) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: testTime}, data: data}
}

func dirEnt(name string, mode int64) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: testTime}}
}

func symEnt(name, target string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: testTime}}
}

func linkEnt(name, target string) ent {
	return ent{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644, ModTime: testTime}}
}

// mkLayer writes entries as an uncompressed tar.
func mkLayer(t testing.TB, entries ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %q: %v", h.Name, err)
		}
		if _, err := io.WriteString(tw, e.data); err != nil {
			t.Fatalf("tar data %q: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func apply(t testing.TB, dir string, layer []byte, opts ApplyOptions) (digest.Digest, error) {
	t.Helper()
	return Apply(context.Background(), dir, bytes.NewReader(layer), opts)
}

func mustApply(t testing.TB, dir string, layer []byte, opts ApplyOptions) {
	t.Helper()
	if _, err := apply(t, dir, layer, opts); err != nil {
		t.Fatalf("Apply: %v", err)
	}
}

func lstat(t testing.TB, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat: %v", err)
	}
	return &st
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func assertAbsent(t testing.TB, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !os.IsNotExist(err) {
		t.Errorf("%s: want absent, got err=%v", p, err)
	}
}

func newRoot(t testing.TB) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "rootfs")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// requireTar returns GNU tar, which writes the sparse entries Go's
// archive/tar cannot.
func requireTar(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("tar")
	if err != nil {
		t.Fatalf("GNU tar is needed to build sparse test layers: %v", err)
	}
	return p
}

func runTar(t testing.TB, tarExe, dir string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(tarExe, append([]string{"-C", dir, "-cf", "-"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tar %v: %v\n%s", args, err, stderr.Bytes())
	}
	return out
}
