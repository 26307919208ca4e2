package runtime_test

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/testbuild"
	"github.com/berth-project/berth/internal/testimage"
)

// Set once by TestMain, read-only afterwards.
var (
	baseDir    string // every file of the package lives below it
	berthExe   string // the built berth binary
	berthRunc  string // berth-runc, a symlink to berthExe
	rootfsDir  string // the shared busybox rootfs: never written by tests
	templateJS []byte // config.json written by `berth-runc spec`
	idPrefix   string // every container id starts with it
)

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "tests/runtime: must run as root: the tests create namespaces, mounts and cgroups")
		return 1
	}
	var err error
	if baseDir, err = os.MkdirTemp("", "berth-e2e-"); err != nil {
		fmt.Fprintf(os.Stderr, "tests/runtime: %v\n", err)
		return 1
	}
	// The rootless test runs berth as uid 1000, which must reach the
	// binary and its own directories below baseDir.
	os.Chmod(baseDir, 0o755)
	// t.TempDir() then creates its directories below baseDir, so the
	// leak check below sees every mount a test may have left.
	os.Setenv("TMPDIR", baseDir)
	idPrefix = fmt.Sprintf("e2e%d-", os.Getpid())

	if err := setup(); err != nil {
		fmt.Fprintf(os.Stderr, "tests/runtime: setup: %v\n", err)
		os.RemoveAll(baseDir)
		return 1
	}
	code := m.Run()
	leaks, mounts := findLeaks()
	for _, l := range leaks {
		fmt.Fprintf(os.Stderr, "tests/runtime: LEAK: %s\n", l)
	}
	if len(leaks) > 0 {
		code = 1
	}
	removeCgroups(idPrefix)
	if mounts {
		// Never RemoveAll through a mount left behind: it could reach
		// host files.
		fmt.Fprintf(os.Stderr, "tests/runtime: leaving %s for inspection\n", baseDir)
		return code
	}
	os.RemoveAll(baseDir)
	return code
}

func setup() error {
	binDir := filepath.Join(baseDir, "bin")
	if err := os.Mkdir(binDir, 0o755); err != nil {
		return err
	}
	berthExe = filepath.Join(binDir, "berth")
	berthRunc = filepath.Join(binDir, "berth-runc")
	// The binary berth ships: static, from the project's build script.
	if _, err := testbuild.Berth(binDir); err != nil {
		return err
	}

	imgDir := filepath.Join(baseDir, "images")
	if err := testimage.Make(imgDir, "busybox"); err != nil {
		return fmt.Errorf("the runtime tests build their busybox image with shared/images (needs /usr/bin/busybox from Debian's busybox-static): %w", err)
	}
	layer, _, err := testimage.LayerPath(filepath.Join(imgDir, "busybox"), 0)
	if err != nil {
		return err
	}
	rootfsDir = filepath.Join(baseDir, "rootfs")
	if err := untarGz(layer, rootfsDir); err != nil {
		return fmt.Errorf("unpack %s: %w", layer, err)
	}

	specDir := filepath.Join(baseDir, "spec")
	if err := os.Mkdir(specDir, 0o755); err != nil {
		return err
	}
	if out, err := exec.Command(berthRunc, "spec", "--bundle", specDir).CombinedOutput(); err != nil {
		return fmt.Errorf("berth-runc spec: %v\n%s", err, out)
	}
	templateJS, err = os.ReadFile(filepath.Join(specDir, "config.json"))
	return err
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// untarGz unpacks a gzip tar layer (directories, files, symlinks and hard
// links: what the busybox image holds) into dir.
func untarGz(path, dir string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(h.Name)
		if name == "." || filepath.IsAbs(name) || strings.HasPrefix(name, "..") {
			return fmt.Errorf("unsafe entry %q", h.Name)
		}
		dst := filepath.Join(dir, name)
		mode := os.FileMode(h.Mode & 0o7777)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
			if err := os.Chmod(dst, mode|chmodBits(h.Mode)); err != nil {
				return err
			}
		case tar.TypeReg:
			out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			if err := os.Chmod(dst, mode|chmodBits(h.Mode)); err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, dst); err != nil {
				return err
			}
		case tar.TypeLink:
			if err := os.Link(filepath.Join(dir, filepath.Clean(h.Linkname)), dst); err != nil {
				return err
			}
		default:
			return fmt.Errorf("entry %q: unsupported type %q", h.Name, h.Typeflag)
		}
		if h.Typeflag != tar.TypeSymlink {
			if err := os.Lchown(dst, h.Uid, h.Gid); err != nil {
				return err
			}
		}
	}
}

// chmodBits maps the tar mode's setuid, setgid and sticky bits to Go's.
func chmodBits(m int64) os.FileMode {
	var b os.FileMode
	if m&0o4000 != 0 {
		b |= os.ModeSetuid
	}
	if m&0o2000 != 0 {
		b |= os.ModeSetgid
	}
	if m&0o1000 != 0 {
		b |= os.ModeSticky
	}
	return b
}

// findLeaks reports what the whole package left behind: mounts below
// baseDir, cgroups named after a test container and processes in them.
func findLeaks() (leaks []string, mounts bool) {
	for _, mp := range mountPoints() {
		if strings.HasPrefix(mp, baseDir+"/") || mp == baseDir {
			leaks = append(leaks, "mount "+mp)
			mounts = true
		}
	}
	for _, d := range cgroupDirs(idPrefix) {
		leaks = append(leaks, "cgroup "+d)
	}
	for _, p := range procsInCgroup(idPrefix) {
		leaks = append(leaks, "process "+p)
	}
	return leaks, mounts
}
