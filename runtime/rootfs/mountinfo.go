package rootfs

import (
	"io"
	"os"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// mountInfo is one line of /proc/<pid>/mountinfo.
type mountInfo struct {
	ID         int
	Parent     int
	Root       string   // root of the mount within its filesystem
	Mountpoint string   // mount point relative to the process's root
	Options    string   // per-mount options
	Optional   []string // optional fields: shared:N, master:N, ...
	FSType     string
	Source     string
	SuperOpts  string
}

// readMountinfo parses /proc/self/mountinfo.
func readMountinfo() ([]mountInfo, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseMountinfo(f)
}

// parseMountinfo reads the proc(5) mountinfo format.
func parseMountinfo(r io.Reader) ([]mountInfo, error) {
	infos, err := mountinfo.GetMountsFromReader(r, nil)
	if err != nil {
		return nil, err
	}
	out := make([]mountInfo, 0, len(infos))
	for _, in := range infos {
		out = append(out, mountInfo{ID: in.ID, Parent: in.Parent, Root: in.Root, Mountpoint: in.Mountpoint,
			Options: in.Options, Optional: strings.Fields(in.Optional), FSType: in.FSType, Source: in.Source,
			SuperOpts: in.VFSOptions})
	}
	return out, nil
}
