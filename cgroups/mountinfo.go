package cgroups

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// mount is one cgroup or cgroup2 entry of /proc/self/mountinfo.
type mount struct {
	root       string // root of the mount inside its hierarchy
	mountpoint string
	fstype     string
	superOpts  []string
}

// readCgroupMounts returns the cgroup and cgroup2 mounts of the calling
// process's mount namespace.
func readCgroupMounts() ([]mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read cgroup mounts: %w", err)
	}
	defer f.Close()
	mounts, err := parseMountinfo(f)
	if err != nil {
		return nil, fmt.Errorf("read cgroup mounts from /proc/self/mountinfo: %w", err)
	}
	return mounts, nil
}

// parseMountinfo parses the format of proc(5) mountinfo and keeps the
// cgroup and cgroup2 mounts.
func parseMountinfo(r io.Reader) ([]mount, error) {
	infos, err := mountinfo.GetMountsFromReader(r, mountinfo.FSTypeFilter("cgroup", "cgroup2"))
	if err != nil {
		return nil, err
	}
	mounts := make([]mount, 0, len(infos))
	for _, in := range infos {
		mounts = append(mounts, mount{root: in.Root, mountpoint: in.Mountpoint, fstype: in.FSType,
			superOpts: strings.Split(in.VFSOptions, ",")})
	}
	return mounts, nil
}

// procCgroup is one line of /proc/self/cgroup.
type procCgroup struct {
	controllers []string // empty for the cgroup v2 line
	path        string
}

// readProcCgroup parses /proc/self/cgroup.
func readProcCgroup() ([]procCgroup, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("read cgroup of the calling process: %w", err)
	}
	defer f.Close()
	cgs, err := parseProcCgroup(f)
	if err != nil {
		return nil, fmt.Errorf("read /proc/self/cgroup: %w", err)
	}
	return cgs, nil
}

func parseProcCgroup(r io.Reader) ([]procCgroup, error) {
	var out []procCgroup
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("malformed line %q", line)
		}
		var ctrls []string
		if parts[1] != "" {
			ctrls = strings.Split(parts[1], ",")
		}
		out = append(out, procCgroup{controllers: ctrls, path: parts[2]})
	}
	return out, sc.Err()
}

// hasAll reports whether every element of want is in have.
func hasAll(have, want []string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			if h == w {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}
