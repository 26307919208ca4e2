package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-project/berth/image"
	"github.com/berth-project/berth/internal/testimage"
	"github.com/berth-project/berth/snapshot"
)

// helperLoadEnv makes the re-executed test binary load archives:
// "ARCHIVE" (a file, or "-" for stdin) once, or "loop:N:ARCHIVE" N times,
// removing the image after each load.
const helperLoadEnv = "BERTH_ENGINE_TEST_LOAD"

func loadHelper(root, spec, ref string) int {
	loops, remove, archive := 1, false, spec
	if rest, ok := strings.CutPrefix(spec, "loop:"); ok {
		n, a, _ := strings.Cut(rest, ":")
		loops, _ = strconv.Atoi(n)
		remove, archive = true, a
	}
	ctx := context.Background()
	for i := 0; i < loops; i++ {
		if err := loadOnce(ctx, root, archive, ref, remove); err != nil {
			fmt.Fprintf(os.Stderr, "load %d of %s: %v\n", i, archive, err)
			return 1
		}
	}
	return 0
}

func loadOnce(ctx context.Context, root, archive, ref string, remove bool) error {
	s, err := Open(root)
	if err != nil {
		return err
	}
	defer s.Close()
	var r io.Reader = os.Stdin
	if archive != "-" {
		f, err := os.Open(archive)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
	}
	if _, err := s.Load(ctx, r, LoadOptions{Name: ref}); err != nil {
		return err
	}
	if remove {
		_, err = s.Remove(ctx, ref, false)
	}
	return err
}

// checkStoreSound checks what must hold of a store whatever happened to
// the processes using it: every recorded image can be read, and the
// snapshots of its layers are committed.
func checkStoreSound(t *testing.T, s *Store) {
	t.Helper()
	imgs, err := s.Images(context.Background())
	if err != nil {
		t.Fatalf("Images: %v", err)
	}
	for _, img := range imgs {
		for _, c := range image.ChainIDs(img.Config.RootFS.DiffIDs) {
			if info, err := s.Snapshotter().Stat(c.String()); err != nil || info.Kind != snapshot.KindCommitted {
				t.Errorf("image %s: layer snapshot %s: %+v, %v", img.Name, c, info, err)
			}
		}
	}
}

// TestLoadKilled kills a load with SIGKILL at points spread over its run
// (while the archive is read, and at several delays after it was all
// sent): the store must stay sound, and a rerun of the load succeed and
// give the right tree.
func TestLoadKilled(t *testing.T) {
	images := testimage.Build(t, "layered")
	archive := writeTar(t, dockerArchive(t, readLayout(t, filepath.Join(images, "layered")), "layered:killed"))
	root := t.TempDir()
	ctx := context.Background()
	type point struct {
		bytes int           // kill after sending this many bytes
		delay time.Duration // ... and waiting this long
	}
	var points []point
	for _, frac := range []int{5, 30, 60, 95} {
		points = append(points, point{bytes: len(archive) * frac / 100})
	}
	for _, d := range []time.Duration{0, 2, 10, 30, 80, 200} {
		points = append(points, point{bytes: len(archive), delay: d * time.Millisecond})
	}
	for _, p := range points {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperRootEnv+"="+root, helperLoadEnv+"=-", helperRefEnv+"=layered:killed")
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if _, err := stdin.Write(archive[:p.bytes]); err != nil {
			t.Fatalf("%+v: write: %v\n%s", p, err, out.String())
		}
		if p.bytes == len(archive) {
			stdin.Close()
		}
		time.Sleep(p.delay)
		cmd.Process.Signal(syscall.SIGKILL)
		err = cmd.Wait()
		stdin.Close()
		var exit *exec.ExitError
		killed := errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signaled()
		if !killed && err != nil {
			t.Fatalf("%+v: load failed before the kill: %v\n%s", p, err, out.String())
		}
		t.Logf("kill after %d bytes + %s: killed=%v", p.bytes, p.delay, killed)

		s := openStore(t, root)
		checkStoreSound(t, s)
		rep, err := s.Check(ctx, false)
		if err != nil {
			t.Fatal(err)
		}
		if left := rep.Remaining(); len(left) != 0 {
			t.Errorf("%+v: system check after the kill: %v", p, left)
		}
		// The rerun succeeds and gives the right tree.
		imgs := load(t, s, archive, LoadOptions{})
		checkLoadedTree(t, s, images, imgs[0])
		if _, err := s.Remove(ctx, "layered:killed", false); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	// Every killed load's lease died with it: the garbage collections of
	// the removals above took all they left.
	s := openStore(t, root)
	if state := storeState(t, s); state != "" {
		t.Errorf("after the loads were removed, the store holds:\n%s", state)
	}
	if rep, err := s.Check(ctx, false); err != nil || len(rep.Problems) != 0 {
		t.Errorf("system check: %v, %v", rep.Problems, err)
	}
}

// TestConcurrentLoadRemoveProcesses runs two processes that each load an
// image and remove it again, over and over, on one store; the images
// share their bottom layer (busybox), so one process's garbage collection
// runs while the other unpacks on or relies on that layer.
func TestConcurrentLoadRemoveProcesses(t *testing.T) {
	images := testimage.Build(t, "busybox", "layered")
	dir := t.TempDir()
	archives := map[string][]byte{
		"busybox": writeTar(t, dockerArchive(t, readLayout(t, filepath.Join(images, "busybox")))),
		"layered": writeTar(t, dockerArchive(t, readLayout(t, filepath.Join(images, "layered")))),
	}
	root := t.TempDir()
	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for name, data := range archives {
		path := filepath.Join(dir, name+".tar")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperRootEnv+"="+root, helperLoadEnv+"=loop:15:"+path, helperRefEnv+"="+name+":concurrent")
		out := &bytes.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("process %d: %v\n%s", i, err, outs[i])
		}
	}
	s := openStore(t, root)
	checkStoreSound(t, s)
	if imgs, err := s.Images(context.Background()); err != nil || len(imgs) != 0 {
		t.Errorf("images left: %+v, %v", imgs, err)
	}
	if _, err := s.GC(context.Background()); err != nil {
		t.Fatal(err)
	}
	if state := storeState(t, s); state != "" {
		t.Errorf("after every image was removed and GC ran, the store holds:\n%s", state)
	}
}
