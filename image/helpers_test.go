package image

import (
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/berth-project/berth/internal/testimage"
)

var (
	testImagesOnce sync.Once
	testImagesDir  string
	testImagesErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if testImagesDir != "" {
		os.RemoveAll(testImagesDir)
	}
	os.Exit(code)
}

// testImages returns a directory holding the busybox and layered OCI
// layouts, built once per test binary. Tests must not modify it.
func testImages(t testing.TB) string {
	t.Helper()
	testImagesOnce.Do(func() {
		dir, err := os.MkdirTemp("", "berth-image-test-")
		if err != nil {
			testImagesErr = err
			return
		}
		testImagesDir = dir
		testImagesErr = testimage.Make(dir, "busybox", "layered")
	})
	if testImagesErr != nil {
		t.Fatal(testImagesErr)
	}
	return testImagesDir
}

// dg is the digest of s, for building test documents.
func dg(s string) digest.Digest { return digest.FromString(s) }

// doc marshals v, failing the test on error.
func doc(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantErr checks that err is non-nil and contains every one of parts; with
// no parts it checks that err is nil.
func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if len(parts) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not contain %q", err, p)
		}
	}
}
