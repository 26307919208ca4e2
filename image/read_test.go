package image

import (
	"strings"
	"testing"
	"testing/iotest"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestReadBlob(t *testing.T) {
	content := `{"schemaVersion":2}`
	good := ocispec.Descriptor{MediaType: MediaTypeOCIManifest, Digest: digest.FromString(content), Size: int64(len(content))}
	tests := []struct {
		name   string
		desc   ocispec.Descriptor
		data   string
		limit  int64
		errors []string
	}{
		{"good", good, content, 100, nil},
		{"size over limit", good, content, 5, []string{good.Digest.String(), "size 19 is more than the limit of 5"}},
		{"stream over limit", ocispec.Descriptor{Digest: good.Digest, Size: 3}, content, 5, []string{good.Digest.String(), "more than the limit of 5 bytes"}},
		{"short", good, content[:10], 100, []string{"got 10 bytes, want 19"}},
		{"long", good, content + " ", 100, []string{"got 20 bytes, want 19"}},
		{"digest mismatch", good, strings.ToUpper(content), 100, []string{"content has digest " + digest.FromString(strings.ToUpper(content)).String()}},
		{"bad digest", ocispec.Descriptor{Digest: "sha256:abc", Size: 1}, "x", 100, []string{`digest "sha256:abc"`}},
		{"negative size", ocispec.Descriptor{Digest: good.Digest, Size: -1}, "x", 100, []string{"negative size -1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadBlob(strings.NewReader(tc.data), tc.desc, tc.limit)
			wantErr(t, err, tc.errors...)
			if err == nil && string(got) != content {
				t.Fatalf("got %q", got)
			}
		})
	}
	_, err := ReadBlob(iotest.ErrReader(iotest.ErrTimeout), good, 100)
	wantErr(t, err, good.Digest.String(), "timeout")
}
