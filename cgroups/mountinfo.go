package cgroups

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
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
	var mounts []mount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			return nil, fmt.Errorf("malformed line %q", line)
		}
		fields := strings.Fields(pre)
		after := strings.Fields(post)
		if len(fields) < 5 || len(after) < 3 {
			return nil, fmt.Errorf("malformed line %q", line)
		}
		fstype := after[0]
		if fstype != "cgroup" && fstype != "cgroup2" {
			continue
		}
		mounts = append(mounts, mount{
			root:       unescapeMountinfo(fields[3]),
			mountpoint: unescapeMountinfo(fields[4]),
			fstype:     fstype,
			superOpts:  strings.Split(after[2], ","),
		})
	}
	return mounts, sc.Err()
}

// unescapeMountinfo decodes the octal escapes (\040 for a space) that the
// kernel uses in mountinfo paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
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
