package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// applyCompressed runs blob through DecompressStream and Apply, as the
// unpacker does.
func applyCompressed(t testing.TB, dir string, blob []byte, opts ApplyOptions) error {
	t.Helper()
	rc, err := DecompressStream(bytes.NewReader(blob))
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = Apply(context.Background(), dir, rc, opts)
	return err
}

func TestApplyGzipBomb(t *testing.T) {
	// 64 MiB of zeros in one file compress to about 64 KiB.
	zeros := strings.Repeat("\x00", 64<<20)
	blob := gzipBytes(t, mkLayer(t, reg("small", "ok", 0o644), reg("bomb", zeros, 0o644)))
	if len(blob) > 1<<20 {
		t.Fatalf("bomb is %d bytes compressed", len(blob))
	}
	err := applyCompressed(t, newRoot(t), blob, ApplyOptions{MaxBytes: 1 << 20})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), `entry "bomb"`) || !strings.Contains(err.Error(), "1048576") {
		t.Errorf("err = %v, want ErrTooLarge naming the entry and the cap", err)
	}
}

func TestApplyStreamBomb(t *testing.T) {
	// A valid small layer followed by 16 MiB of trailing zeros: the tar
	// reader stops at the end marker, the digest must not.
	layer := append(mkLayer(t, reg("f", "x", 0o644)), make([]byte, 16<<20)...)
	err := applyCompressed(t, newRoot(t), gzipBytes(t, layer), ApplyOptions{MaxBytes: 1 << 20})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "1048576") || !strings.Contains(err.Error(), `"f"`) {
		t.Errorf("err = %v, want ErrTooLarge naming the cap and the last entry", err)
	}
}

func TestApplyMaxEntries(t *testing.T) {
	var ents []ent
	for i := range 10 {
		ents = append(ents, reg(fmt.Sprintf("f%d", i), "x", 0o644))
	}
	err := applyCompressed(t, newRoot(t), mkLayer(t, ents...), ApplyOptions{MaxEntries: 5})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), `entry "f5"`) || !strings.Contains(err.Error(), "more than 5 entries") {
		t.Errorf("err = %v, want ErrTooLarge at entry f5", err)
	}
	if err := applyCompressed(t, newRoot(t), mkLayer(t, ents...), ApplyOptions{MaxEntries: 10}); err != nil {
		t.Errorf("10 entries with MaxEntries 10: %v", err)
	}
}

func TestApplyTruncated(t *testing.T) {
	body := strings.Repeat("0123456789abcdef", 8192) // 128 KiB
	layer := mkLayer(t, reg("first", "1", 0o644), reg("big", body, 0o644), reg("last", "z", 0o644))
	// "first" takes blocks 0-1, "big"'s header block 2, its body from 1536.
	for _, c := range []struct {
		name string
		cut  int
		want string
	}{
		{"in a file body", 1536 + 50000, `entry "big": unexpected EOF`},
		{"in a header", 512*2 + 100, `reading header after entry "first": unexpected EOF`},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := applyCompressed(t, newRoot(t), gzipBytes(t, layer[:c.cut]), ApplyOptions{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestApplyCorruptGzip(t *testing.T) {
	layer := mkLayer(t, reg("f", strings.Repeat("some text to compress ", 4096), 0o644))
	good := gzipBytes(t, layer)
	if err := applyCompressed(t, newRoot(t), good, ApplyOptions{}); err != nil {
		t.Fatalf("intact gzip: %v", err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0xff
		return b
	}
	for name, blob := range map[string][]byte{
		"header":  append([]byte{0x1f, 0x8b, 0x99}, good[3:]...),
		"body":    flip(len(good) / 2),
		"crc":     flip(len(good) - 6),
		"cut":     good[:len(good)-4],
		"garbage": append([]byte{0x1f, 0x8b}, bytes.Repeat([]byte{0x55}, 4096)...),
	} {
		t.Run(name, func(t *testing.T) {
			if err := applyCompressed(t, newRoot(t), blob, ApplyOptions{}); err == nil {
				t.Errorf("corrupt gzip (%s) applied without error", name)
			}
		})
	}
}

func TestDecompressStream(t *testing.T) {
	layer := mkLayer(t, reg("f", strings.Repeat("abc", 10000), 0o644))
	var zbuf bytes.Buffer
	zw, err := zstd.NewWriter(&zbuf)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(layer)
	zw.Close()
	for name, blob := range map[string][]byte{"plain": layer, "gzip": gzipBytes(t, layer), "zstd": zbuf.Bytes()} {
		rc, err := DecompressStream(bytes.NewReader(blob))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, layer) {
			t.Errorf("%s: %d bytes, err %v", name, len(got), err)
		}
	}
	for name, blob := range map[string][]byte{"bzip2": []byte("BZh91AY&SY"), "xz": {0xfd, '7', 'z', 'X', 'Z', 0, 0, 0}} {
		if _, err := DecompressStream(bytes.NewReader(blob)); !errors.Is(err, ErrUnsupportedCompression) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	// An empty blob is an empty (plain) stream, which Apply then rejects
	// as no layer at all only through the diff ID; reading it works.
	rc, err := DecompressStream(bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(rc); len(b) != 0 {
		t.Errorf("empty: %d bytes", len(b))
	}
}
