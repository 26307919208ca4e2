package archive

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/berth-project/berth/internal/testimage"
)

// testImage is an OCI image read from a layout.
type testImage struct {
	layout string
	layers []ocispec.Descriptor
	config ocispec.Image
}

func readJSON(t testing.TB, p string, v any) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
}

func (img *testImage) blob(d digest.Digest) string {
	return filepath.Join(img.layout, "blobs", d.Algorithm().String(), d.Encoded())
}

func loadImage(t testing.TB, layout string) *testImage {
	t.Helper()
	img := &testImage{layout: layout}
	var index ocispec.Index
	readJSON(t, filepath.Join(layout, "index.json"), &index)
	if len(index.Manifests) != 1 {
		t.Fatalf("%s: %d manifests", layout, len(index.Manifests))
	}
	var m ocispec.Manifest
	readJSON(t, img.blob(index.Manifests[0].Digest), &m)
	readJSON(t, img.blob(m.Config.Digest), &img.config)
	img.layers = m.Layers
	if len(img.layers) != len(img.config.RootFS.DiffIDs) {
		t.Fatalf("%d layers, %d diff IDs", len(img.layers), len(img.config.RootFS.DiffIDs))
	}
	return img
}

// applyLayer applies layer i of img into dir and checks its diff ID.
func (img *testImage) applyLayer(t testing.TB, i int, dir string, opts ApplyOptions) {
	t.Helper()
	f, err := os.Open(img.blob(img.layers[i].Digest))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rc, err := DecompressStream(f)
	if err != nil {
		t.Fatalf("layer %d: %v", i, err)
	}
	defer rc.Close()
	got, err := Apply(context.Background(), dir, rc, opts)
	if err != nil {
		t.Fatalf("layer %d (%s): %v", i, img.layers[i].Digest, err)
	}
	if want := img.config.RootFS.DiffIDs[i]; got != want {
		t.Errorf("layer %d: diff ID %s, config says %s", i, got, want)
	}
}

// checkExpect compares the tree at root with an expect file: lines
// "path<TAB>kind mode uid:gid [content]".
func checkExpect(t *testing.T, root, expectFile string) {
	t.Helper()
	f, err := os.Open(expectFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		n++
		p, spec, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			t.Fatalf("%s: bad line %q", expectFile, sc.Text())
		}
		if err := checkEntry(root, p, spec); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if err := sc.Err(); err != nil || n == 0 {
		t.Fatalf("%s: %d lines, %v", expectFile, n, err)
	}
}

func checkEntry(root, p, spec string) error {
	full := filepath.Join(root, p)
	kind, rest, _ := strings.Cut(spec, " ")
	var st unix.Stat_t
	err := unix.Lstat(full, &st)
	if kind == "absent" {
		if err == nil {
			return fmt.Errorf("exists (mode %#o), want absent", st.Mode)
		}
		return nil
	}
	if err != nil {
		return err
	}
	switch kind {
	case "symlink":
		target, err := os.Readlink(full)
		if err != nil || target != rest {
			return fmt.Errorf("symlink to %q (%v), want %q", target, err, rest)
		}
		return nil
	case "hardlink-of":
		var other unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, rest), &other); err != nil {
			return err
		}
		if other.Ino != st.Ino || other.Dev != st.Dev {
			return fmt.Errorf("inode %d, %s has %d", st.Ino, rest, other.Ino)
		}
		return nil
	case "file", "dir":
	default:
		return fmt.Errorf("unknown kind %q", kind)
	}
	fields := strings.SplitN(rest, " ", 3)
	wantType := uint32(unix.S_IFREG)
	if kind == "dir" {
		wantType = unix.S_IFDIR
	}
	if st.Mode&unix.S_IFMT != wantType {
		return fmt.Errorf("type %#o, want %s", st.Mode&unix.S_IFMT, kind)
	}
	mode, err := strconv.ParseUint(fields[0], 8, 32)
	if err != nil {
		return err
	}
	if uint64(st.Mode&0o7777) != mode {
		return fmt.Errorf("mode %#o, want %#o", st.Mode&0o7777, mode)
	}
	if owner := fmt.Sprintf("%d:%d", st.Uid, st.Gid); len(fields) < 2 || owner != fields[1] {
		return fmt.Errorf("owner %s, want %v", owner, fields[1:])
	}
	if len(fields) == 3 {
		want := strings.ReplaceAll(fields[2], `\n`, "\n")
		if got, err := os.ReadFile(full); err != nil || string(got) != want {
			return fmt.Errorf("content %q (%v), want %q", got, err, want)
		}
	}
	return nil
}

// checkBusybox checks a few files of the busybox layer.
func checkBusybox(t *testing.T, root string) {
	t.Helper()
	for p, spec := range map[string]string{
		"bin/sh":     "symlink busybox",
		"bin/ls":     "symlink busybox",
		"tmp":        "dir 1777 0:0",
		"etc/passwd": "file 0644 0:0",
	} {
		if err := checkEntry(root, p, spec); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	want, err := os.ReadFile("/usr/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(root, "bin/busybox")); err != nil || !bytes.Equal(got, want) {
		t.Errorf("bin/busybox: %d bytes (%v), want %d", len(got), err, len(want))
	}
}

func TestApplyLayeredImageNative(t *testing.T) {
	images := testimage.Build(t, "layered")
	img := loadImage(t, filepath.Join(images, "layered"))
	root := newRoot(t)
	for i := range img.layers {
		img.applyLayer(t, i, root, ApplyOptions{})
	}
	checkExpect(t, root, filepath.Join(images, "layered.expect"))
	checkBusybox(t, root)
}

// mountOverlay mounts the read-only overlay of layers (lowest first) and
// unmounts it when the test ends.
func mountOverlay(t *testing.T, layers []string) string {
	t.Helper()
	lower := make([]string, len(layers))
	for i, l := range layers {
		lower[len(layers)-1-i] = l
	}
	target := t.TempDir()
	if err := unix.Mount("overlay", target, "overlay", unix.MS_RDONLY, "lowerdir="+strings.Join(lower, ":")); err != nil {
		t.Fatalf("mount overlay: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(target, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", target, err)
		}
	})
	return target
}

func TestApplyLayeredImageOverlay(t *testing.T) {
	images := testimage.Build(t, "layered")
	img := loadImage(t, filepath.Join(images, "layered"))
	var uppers []string
	for i := range img.layers {
		// Layer 2 hardlinks a file of layer 1: Lowers lets Apply copy it up.
		upper := newRoot(t)
		var lowers []string
		for j := len(uppers) - 1; j >= 0; j-- {
			lowers = append(lowers, uppers[j])
		}
		img.applyLayer(t, i, upper, ApplyOptions{Overlay: true, Lowers: lowers})
		uppers = append(uppers, upper)
	}
	// The last layer holds the whiteouts in overlayfs' format.
	last := uppers[len(uppers)-1]
	if st := lstat(t, filepath.Join(last, "data/gone")); st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("data/gone in the last upper: mode %#o rdev %d, want a whiteout", st.Mode, st.Rdev)
	}
	merged := mountOverlay(t, uppers)
	checkExpect(t, merged, filepath.Join(images, "layered.expect"))
	checkBusybox(t, merged)

	// DiffOverlayUpper turns each upper back into a layer; applied in
	// native mode they give the same tree.
	t.Run("diff round trip", func(t *testing.T) {
		root := newRoot(t)
		for i, upper := range uppers {
			var buf bytes.Buffer
			if err := DiffOverlayUpper(&buf, upper); err != nil {
				t.Fatalf("layer %d: %v", i, err)
			}
			if i == len(uppers)-1 {
				for _, want := range []string{"data/.wh.gone", "data/opaque/.wh..wh..opq"} {
					if !bytes.Contains(buf.Bytes(), []byte(want)) {
						t.Errorf("diff of the last upper lacks %q", want)
					}
				}
			}
			mustApply(t, root, buf.Bytes(), ApplyOptions{})
		}
		checkExpect(t, root, filepath.Join(images, "layered.expect"))
		checkBusybox(t, root)
	})
}
