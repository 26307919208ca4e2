package image

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// copyLayout copies the named test layout into a fresh directory the test
// may modify.
func copyLayout(t *testing.T, name string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	if out, err := exec.Command("cp", "-a", filepath.Join(testImages(t), name), dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return dst
}

// readImage reads the layout's linux/amd64 image: manifest, config and
// every layer to EOF, and returns the manifest.
func readImage(t *testing.T, l *Layout) *ocispec.Manifest {
	t.Helper()
	d, err := MatchIndex(l.Index(), ocispec.Platform{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	if ref := d.Annotations[ocispec.AnnotationRefName]; ref != "latest" {
		t.Fatalf("ref name %q, want latest", ref)
	}
	mdata, err := l.ReadBlob(d, MaxManifestSize)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseManifest(mdata)
	if err != nil {
		t.Fatal(err)
	}
	cdata, err := l.ReadBlob(m.Config, MaxConfigSize)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(cdata)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckLayers(m, c); err != nil {
		t.Fatal(err)
	}
	for i, ld := range m.Layers {
		rc, size, err := l.Blob(ld.Digest)
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		n, err := io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			t.Fatalf("layer %d: %v", i, err)
		}
		if n != ld.Size || size != ld.Size {
			t.Fatalf("layer %d: read %d bytes, Blob said %d, descriptor %d", i, n, size, ld.Size)
		}
	}
	return m
}

func TestOpenLayout(t *testing.T) {
	for name, layers := range map[string]int{"busybox": 1, "layered": 4} {
		t.Run(name, func(t *testing.T) {
			l, err := OpenLayout(filepath.Join(testImages(t), name))
			if err != nil {
				t.Fatal(err)
			}
			if n := len(l.Index().Manifests); n != 1 {
				t.Fatalf("index has %d manifests", n)
			}
			m := readImage(t, l)
			if len(m.Layers) != layers {
				t.Fatalf("%d layers, want %d", len(m.Layers), layers)
			}
			// Index returns a copy.
			l.Index().Manifests[0].Digest = "x"
			if l.Index().Manifests[0].Digest == "x" {
				t.Fatal("Index returned the layout's own slice")
			}
		})
	}
}

// firstLayer returns the digest and path of the layout's first layer.
func firstLayer(t *testing.T, dir string) (digest.Digest, string) {
	t.Helper()
	l, err := OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	mdata, err := l.ReadBlob(l.Index().Manifests[0], MaxManifestSize)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ParseManifest(mdata)
	if err != nil {
		t.Fatal(err)
	}
	d := m.Layers[0].Digest
	return d, filepath.Join(dir, "blobs", "sha256", d.Encoded())
}

func TestLayoutBlobVerified(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(t *testing.T, path string)
		errors  []string
	}{
		{"flipped byte", func(t *testing.T, path string) {
			f, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			b := make([]byte, 1)
			if _, err := f.ReadAt(b, 1000); err != nil {
				t.Fatal(err)
			}
			b[0] ^= 0xff
			if _, err := f.WriteAt(b, 1000); err != nil {
				t.Fatal(err)
			}
		}, []string{"content does not match its digest"}},
		{"truncated", func(t *testing.T, path string) {
			if err := os.Truncate(path, 500); err != nil {
				t.Fatal(err)
			}
		}, []string{"content does not match its digest"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyLayout(t, "busybox")
			d, path := firstLayer(t, dir)
			tc.corrupt(t, path)
			l, err := OpenLayout(dir)
			if err != nil {
				t.Fatal(err)
			}
			rc, _, err := l.Blob(d)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			_, err = io.Copy(io.Discard, rc)
			if !errors.Is(err, ErrDigestMismatch) {
				t.Fatalf("reading a corrupt blob: %v, want ErrDigestMismatch", err)
			}
			wantErr(t, err, append(tc.errors, d.String())...)
		})
	}
}

// TestLayoutBlobGrows checks that a blob that grows after Blob stat'ed it
// is refused, and that no byte past the expected size is handed out.
func TestLayoutBlobGrows(t *testing.T) {
	dir := copyLayout(t, "busybox")
	d, path := firstLayer(t, dir)
	l, err := OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rc, size, err := l.Blob(d)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("extra"))
	f.Close()
	got, err := io.ReadAll(rc)
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("reading a grown blob: %v, want ErrDigestMismatch", err)
	}
	if int64(len(got)) != size || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, want exactly the %d expected", len(got), size)
	}
}

func TestLayoutBlobPaths(t *testing.T) {
	dir := copyLayout(t, "busybox")
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := digest.FromString("secret")
	l, err := OpenLayout(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []digest.Digest{
		"sha256:../../etc/passwd",
		"sha256:../../../../../../etc/passwd",
		"../../etc/passwd",
		"sha256/../../x:" + digest.Digest(strings.Repeat("a", 64)),
		"",
		"sha256:" + digest.Digest(strings.Repeat("a", 63)) + "/",
	} {
		if _, _, err := l.Blob(d); err == nil {
			t.Errorf("Blob(%q) succeeded", d)
		} else if !strings.Contains(err.Error(), "blob digest") {
			t.Errorf("Blob(%q): %v, want a digest validation error", d, err)
		}
	}

	// A blob that is a symlink out of the layout resolves inside it.
	if err := os.Symlink(outside, filepath.Join(dir, "blobs", "sha256", secret.Encoded())); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Blob(secret); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Blob through an absolute symlink: %v, want not-exist", err)
	}
	rel := filepath.Join(dir, "blobs", "sha256", digest.FromString("rel").Encoded())
	if err := os.Symlink("../../../../../../../../../.."+outside, rel); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Blob(digest.FromString("rel")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Blob through a relative symlink: %v, want not-exist", err)
	}

	// A blob that is not a regular file is refused without opening it
	// (a FIFO would block).
	fifo := digest.FromString("fifo")
	if err := syscall.Mkfifo(filepath.Join(dir, "blobs", "sha256", fifo.Encoded()), 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		rc, _, err := l.Blob(fifo)
		if err == nil {
			rc.Close()
		}
		done <- err
	}()
	select {
	case err = <-done:
		wantErr(t, err, "not a regular file", fifo.String())
	case <-time.After(5 * time.Second):
		t.Fatal("Blob blocked opening a FIFO")
	}

	_, _, err = l.Blob(digest.FromString("missing"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing blob: %v, want not-exist", err)
	}
}

func TestOpenLayoutErrors(t *testing.T) {
	tests := []struct {
		name   string
		mod    func(t *testing.T, dir string)
		errors []string
	}{
		{"no oci-layout", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "oci-layout")) }, []string{"oci-layout", "no such file"}},
		{"version 2", func(t *testing.T, dir string) { write(t, dir, "oci-layout", `{"imageLayoutVersion":"2.0.0"}`) }, []string{`imageLayoutVersion "2.0.0"`}},
		{"oci-layout not json", func(t *testing.T, dir string) { write(t, dir, "oci-layout", `x`) }, []string{"oci-layout", "invalid character"}},
		{"no index.json", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "index.json")) }, []string{"index.json", "no such file"}},
		{"bad index.json", func(t *testing.T, dir string) {
			write(t, dir, "index.json", `{"schemaVersion":2,"manifests":[{"mediaType":"`+MediaTypeOCIManifest+`","digest":"sha256:x","size":1}]}`)
		},
			[]string{"index.json", "manifests[0]", `"sha256:x"`}},
		{"huge index.json", func(t *testing.T, dir string) {
			if err := os.Truncate(filepath.Join(dir, "index.json"), MaxManifestSize+1); err != nil {
				t.Fatal(err)
			}
		}, []string{"index.json is 4194305 bytes, more than the limit of 4194304"}},
		{"index.json symlink out", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "index.json")
			os.Remove(p)
			if err := os.Symlink("/proc/self/environ", p); err != nil {
				t.Fatal(err)
			}
		}, []string{"index.json", "no such file"}},
		{"index.json a directory", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "index.json")
			os.Remove(p)
			os.Mkdir(p, 0o755)
		}, []string{"index.json", "not a regular file"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyLayout(t, "busybox")
			tc.mod(t, dir)
			_, err := OpenLayout(dir)
			wantErr(t, err, append(tc.errors, dir)...)
		})
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestLayoutReadBlobLimit(t *testing.T) {
	l, err := OpenLayout(filepath.Join(testImages(t), "busybox"))
	if err != nil {
		t.Fatal(err)
	}
	d := l.Index().Manifests[0]
	_, err = l.ReadBlob(d, d.Size-1)
	wantErr(t, err, d.Digest.String(), "more than the limit")
}
