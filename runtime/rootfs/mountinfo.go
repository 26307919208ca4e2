package rootfs

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
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

func parseMountinfo(r io.Reader) ([]mountInfo, error) {
	var out []mountInfo
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		sep := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 7 || sep < 0 || len(fields) < sep+3 {
			return nil, fmt.Errorf("malformed mountinfo line %q", s.Text())
		}
		id, err1 := strconv.Atoi(fields[0])
		parent, err2 := strconv.Atoi(fields[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("malformed mountinfo line %q", s.Text())
		}
		mi := mountInfo{
			ID:         id,
			Parent:     parent,
			Root:       unescapeMountinfo(fields[3]),
			Mountpoint: unescapeMountinfo(fields[4]),
			Options:    fields[5],
			Optional:   fields[6:sep],
			FSType:     fields[sep+1],
			Source:     unescapeMountinfo(fields[sep+2]),
		}
		if len(fields) > sep+3 {
			mi.SuperOpts = fields[sep+3]
		}
		out = append(out, mi)
	}
	return out, s.Err()
}

// unescapeMountinfo undoes the kernel's octal escaping (\040 for space...).
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
