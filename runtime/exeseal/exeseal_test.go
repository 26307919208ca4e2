package exeseal

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

// The sealed handle must run the binary and refuse every way of writing
// to it, which is what keeps a container from rewriting berth
// (CVE-2019-5736).
func checkSealed(t *testing.T, f *os.File) {
	t.Helper()
	checkSealedOf(t, f, "/proc/self/exe", "-test.run=^$")
}

// checkSealedOf checks the sealed handle f of the binary src, which must
// run with args.
func checkSealedOf(t *testing.T, f *os.File, src string, args ...string) {
	t.Helper()
	path := "/proc/self/fd/" + itoa(int(f.Fd()))
	// An overlay without an upper layer refuses the open; a sealed memfd
	// opens but refuses every write and truncation.
	if w, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
		_, werr := w.Write([]byte("#!/bin/evil\n"))
		terr := w.Truncate(0)
		w.Close()
		if werr == nil || terr == nil {
			t.Errorf("the sealed binary can be changed: write %v, truncate %v", werr, terr)
		}
	}
	// It still is the binary and runs.
	want, _ := os.ReadFile(src)
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("sealed content differs from the binary (%v)", err)
	}
	cmd := exec.Command(path, args...)
	cmd.ExtraFiles = nil
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("exec the sealed binary: %v\n%s", err, out)
	}
}

func itoa(n int) string { return string(appendInt(nil, n)) }

func appendInt(b []byte, n int) []byte {
	if n >= 10 {
		b = appendInt(b, n/10)
	}
	return append(b, byte('0'+n%10))
}

func TestOverlay(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := openOverlay(exe, t.TempDir())
	if err != nil {
		t.Skipf("overlayfs not available here: %v", err)
	}
	defer f.Close()
	checkSealed(t, f)
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil || st.Type != unix.OVERLAYFS_SUPER_MAGIC {
		t.Errorf("handle is not on overlayfs (%v, type %#x)", err, st.Type)
	}
	if st.Flags&unix.ST_RDONLY == 0 {
		t.Error("overlay is not read-only")
	}
}

func TestMemfd(t *testing.T) {
	f, err := openMemfd("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkSealed(t, f)
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil || seals&unix.F_SEAL_WRITE == 0 || seals&unix.F_SEAL_SEAL == 0 {
		t.Errorf("seals %#x (%v)", seals, err)
	}
	if _, err := f.WriteAt([]byte("x"), 0); !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EBADF) {
		t.Errorf("write to the sealed memfd: %v", err)
	}
}

// Open of another binary (berth-init beside berth) seals that binary, not
// the running one, whichever way it is sealed.
func TestOpenOther(t *testing.T) {
	dir := t.TempDir()
	other := dir + "/true"
	data, err := os.ReadFile("/bin/true")
	if err != nil {
		t.Skip(err)
	}
	if err := os.WriteFile(other, data, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := Open(other, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	checkSealedOf(t, f, other)
	m, err := openMemfd(other)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	checkSealedOf(t, m, other)
	if _, err := Open(dir+"/missing", t.TempDir()); err == nil {
		t.Error("Open of a missing binary succeeded")
	}
}
