// Package testimage builds berth's test images for tests: the OCI layouts
// that shared/images/make-test-images.py writes (busybox, layered, big),
// with shared/ cloned beside the repository. Tests fail, not skip, when the
// script is missing: CI always has it.
package testimage

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// Script returns the path of make-test-images.py, found from the working
// directory (a package's, under go test) by going up to the repository
// root (the directory with go.mod) and over to shared/ beside it.
func Script() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			script := filepath.Join(filepath.Dir(dir), "shared", "images", "make-test-images.py")
			if _, err := os.Stat(script); err != nil {
				return "", fmt.Errorf("%s is missing (shared/ must be cloned beside the repository): %w", script, err)
			}
			return script, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Make writes the named images (busybox, layered, big) as OCI layouts
// under dir.
func Make(dir string, names ...string) error {
	script, err := Script()
	if err != nil {
		return err
	}
	if out, err := exec.Command("python3", append([]string{script, dir}, names...)...).CombinedOutput(); err != nil {
		return fmt.Errorf("make-test-images.py %v: %v\n%s", names, err, out)
	}
	return nil
}

// Build writes the named images into a directory removed with the test
// and returns it.
func Build(t testing.TB, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := Make(dir, names...); err != nil {
		t.Fatal(err)
	}
	return dir
}

// Layer returns the path of layer i's blob in the OCI layout dir (the
// first manifest of its index) and that layer's diff ID from the config,
// failing t on error.
func Layer(t testing.TB, layout string, i int) (string, digest.Digest) {
	t.Helper()
	path, diffID, err := LayerPath(layout, i)
	if err != nil {
		t.Fatal(err)
	}
	return path, diffID
}

// LayerPath is Layer for callers without a testing.TB (TestMain). It reads
// the layout's JSON itself, so the image package's own tests can use it.
func LayerPath(layout string, i int) (string, digest.Digest, error) {
	blob := func(d digest.Digest) string {
		return filepath.Join(layout, "blobs", d.Algorithm().String(), d.Encoded())
	}
	read := func(path string, v any) error {
		data, err := os.ReadFile(path)
		if err == nil {
			err = json.Unmarshal(data, v)
		}
		if err != nil {
			return fmt.Errorf("test image %s: %w", layout, err)
		}
		return nil
	}
	var idx ocispec.Index
	if err := read(filepath.Join(layout, "index.json"), &idx); err != nil {
		return "", "", err
	}
	if len(idx.Manifests) == 0 {
		return "", "", fmt.Errorf("test image %s: empty index", layout)
	}
	var mf ocispec.Manifest
	if err := read(blob(idx.Manifests[0].Digest), &mf); err != nil {
		return "", "", err
	}
	var cfg ocispec.Image
	if err := read(blob(mf.Config.Digest), &cfg); err != nil {
		return "", "", err
	}
	if i >= len(mf.Layers) || i >= len(cfg.RootFS.DiffIDs) {
		return "", "", fmt.Errorf("test image %s has %d layers, no layer %d", layout, len(mf.Layers), i)
	}
	return blob(mf.Layers[i].Digest), cfg.RootFS.DiffIDs[i], nil
}

// CheckExpect compares the tree at root with an expect file that
// make-test-images.py wrote: lines "path<TAB>kind mode uid:gid [content]",
// kind one of file, dir, symlink (with its target), hardlink-of (with the
// other path) and absent.
func CheckExpect(t testing.TB, root, expectFile string) {
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
		if err := CheckEntry(root, p, spec); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if err := sc.Err(); err != nil || n == 0 {
		t.Fatalf("%s: %d lines, %v", expectFile, n, err)
	}
}

// CheckEntry checks one path of the tree at root against spec, a line of
// an expect file after the tab.
func CheckEntry(root, p, spec string) error {
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
