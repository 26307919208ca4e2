package content

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// Child processes: the test binary re-executed with childEnv set to a mode.
const (
	childEnv  = "BERTH_CONTENT_TEST_CHILD"
	childRoot = "BERTH_CONTENT_TEST_ROOT"
	childRef  = "BERTH_CONTENT_TEST_REF"
	childSize = "BERTH_CONTENT_TEST_SIZE"
	childSeed = "BERTH_CONTENT_TEST_SEED"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		if err := runChild(mode); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runChild opens a Writer and writes: everything, then (mode "commit")
// waits for stdin to close and commits; or (mode "crash") half, then waits
// to be killed. It prints "written" when the bytes are written.
func runChild(mode string) error {
	s, err := Open(os.Getenv(childRoot))
	if err != nil {
		return err
	}
	size, _ := strconv.Atoi(os.Getenv(childSize))
	seed, _ := strconv.ParseUint(os.Getenv(childSeed), 10, 64)
	data := testData(size, seed)
	d := digest.FromBytes(data)
	w, err := s.Writer(os.Getenv(childRef), d, int64(size))
	if err != nil {
		return err
	}
	switch mode {
	case "commit":
		if _, err := w.Write(data); err != nil {
			return err
		}
		fmt.Println("written")
		io.Copy(io.Discard, os.Stdin)
		return w.Commit()
	case "crash":
		if _, err := w.Write(data[:size/2]); err != nil {
			return err
		}
		fmt.Println("written")
		time.Sleep(time.Minute)
		return fmt.Errorf("not killed")
	}
	return fmt.Errorf("unknown mode %q", mode)
}

type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

func startChild(t *testing.T, mode, root, ref string, size int, seed uint64) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode, childRoot+"="+root, childRef+"="+ref,
		childSize+"="+strconv.Itoa(size), childSeed+"="+strconv.FormatUint(seed, 10))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return &child{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
}

// waitWritten waits for the child to report its bytes written.
func (c *child) waitWritten(t *testing.T) {
	t.Helper()
	line, err := c.out.ReadString('\n')
	if err != nil || line != "written\n" {
		t.Fatalf("child: %q, %v", line, err)
	}
}

func TestConcurrentCommitProcesses(t *testing.T) {
	root := t.TempDir()
	const size, seed = 8 << 20, 20
	c1 := startChild(t, "commit", root, "p1", size, seed)
	c2 := startChild(t, "commit", root, "p2", size, seed)
	c1.waitWritten(t)
	c2.waitWritten(t)
	// Both have written everything: release them together.
	c1.stdin.Close()
	c2.stdin.Close()
	for i, c := range []*child{c1, c2} {
		if err := c.cmd.Wait(); err != nil {
			t.Errorf("child %d: %v", i+1, err)
		}
	}
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	data := testData(size, seed)
	checkOneBlob(t, s, digest.FromBytes(data), data)
}

func TestCrashMidWrite(t *testing.T) {
	root := t.TempDir()
	const size, seed = 1 << 20, 21
	data := testData(size, seed)
	d := digest.FromBytes(data)
	c := startChild(t, "crash", root, "crashing", size, seed)
	c.waitWritten(t)
	s, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	// The child's lock holds across processes.
	if _, err := s.Writer("crashing", d, size); !errors.Is(err, ErrLocked) {
		t.Fatalf("Writer of a ref held by another process = %v, want ErrLocked", err)
	}
	ings, err := s.ListIngests()
	if err != nil || len(ings) != 1 || !ings[0].Locked {
		t.Fatalf("ListIngests while the child runs = %+v, %v", ings, err)
	}

	c.cmd.Process.Signal(syscall.SIGKILL)
	if err := c.cmd.Wait(); err == nil {
		t.Fatal("killed child exited 0")
	}
	assertNotFound(t, s, d)
	if len(blobs(t, s)) != 0 {
		t.Fatal("a blob appeared after the crash")
	}
	ings, err = s.ListIngests()
	if err != nil || len(ings) != 1 {
		t.Fatalf("ListIngests after the crash = %+v, %v", ings, err)
	}
	in := ings[0]
	if in.Ref != "crashing" || in.Expected != d || in.Total != size || in.Offset != size/2 || in.Locked {
		t.Fatalf("ingest after the crash = %+v", in)
	}
	// What the child wrote can be resumed: its lock died with it.
	w, err := s.Writer("crashing", d, size)
	if err != nil {
		t.Fatal(err)
	}
	if w.Offset() != size/2 || w.Digest() != digest.FromBytes(data[:size/2]) {
		t.Fatalf("resumed after the crash at %d (%s)", w.Offset(), w.Digest())
	}
	w.Close()
	if err := s.Abort("crashing"); err != nil {
		t.Fatal(err)
	}
	assertEmpty(t, s)
}
