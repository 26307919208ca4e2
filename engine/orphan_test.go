package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-project/berth/containers"
)

// TestGCRemovesOrphanDirs: GC removes the container directories that no
// record names once they are older than orphanGrace, in the store and
// the run root, and keeps recorded containers', fresh ones (a run that
// has not recorded its container yet) and what is not a container's.
func TestGCRemovesOrphanDirs(t *testing.T) {
	ctx := context.Background()
	s, err := OpenWith(t.TempDir(), Options{Snapshotter: "native", RunRoot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	id := func(c byte) string { return strings.Repeat(string(c), 64) }
	recorded, old, fresh := id('a'), id('b'), id('c')
	c := &containers.Container{ID: recorded, Name: "recorded", Created: time.Now().UTC(), Image: "x",
		Config: &container.Config{}, HostConfig: &container.HostConfig{}, State: containers.State{Status: containers.Created}}
	if err := s.db.CreateContainer(ctx, c); err != nil {
		t.Fatal(err)
	}
	long := time.Now().Add(-2 * orphanGrace)
	var dirs []string
	for _, name := range []string{recorded, old, fresh, "not-an-id"} {
		for _, d := range []string{s.containerDir(name), s.runDir(name)} {
			if err := os.MkdirAll(filepath.Join(d, "sub"), 0o700); err != nil {
				t.Fatal(err)
			}
			if name != fresh {
				if err := os.Chtimes(d, long, long); err != nil {
					t.Fatal(err)
				}
			}
			dirs = append(dirs, d)
		}
	}
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		_, err := os.Stat(d)
		if gone := os.IsNotExist(err); gone != strings.Contains(d, old) {
			t.Errorf("%s: gone %v after GC (err %v)", d, gone, err)
		}
	}
}
