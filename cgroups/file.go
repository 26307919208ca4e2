package cgroups

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// writeFile writes value to the cgroup file dir/name. field is the
// linux.resources field being applied; the error names it, the value, the
// file and the kernel's errno (which errors.Is can match).
func writeFile(field, dir, name, value string) error {
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err == nil {
		_, err = f.WriteString(value)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		return nil
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	shown := value
	if strings.ContainsAny(value, " \t\n") || value == "" {
		shown = strconv.Quote(value)
	}
	if field == "" {
		return fmt.Errorf("write %s to %s: %w", shown, path, err)
	}
	return fmt.Errorf("%s: write %s to %s: %w", field, shown, path, err)
}

// readFile returns the trimmed contents of dir/name.
func readFile(dir, name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "", err
	}
	return string(bytes.TrimSpace(b)), nil
}

// exists reports whether dir/name exists.
func exists(dir, name string) bool {
	_, err := os.Stat(filepath.Join(dir, name))
	return err == nil
}

// readUint reads a file holding one unsigned number; "max" reads as 0.
func readUint(dir, name string) (uint64, error) {
	s, err := readFile(dir, name)
	if err != nil {
		return 0, err
	}
	return parseUint(s, filepath.Join(dir, name))
}

func parseUint(s, path string) (uint64, error) {
	if s == "max" {
		return 0, nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		// Some v1 files report -1 or negative values for "unlimited".
		if i, ierr := strconv.ParseInt(s, 10, 64); ierr == nil && i < 0 {
			return 0, nil
		}
		return 0, fmt.Errorf("parse %q from %s: %w", s, path, err)
	}
	return v, nil
}

// readKeyValues parses files made of "key value" lines (memory.stat,
// cpu.stat, cgroup.events).
func readKeyValues(dir, name string) (map[string]uint64, error) {
	path := filepath.Join(dir, name)
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := make(map[string]uint64)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok {
			continue
		}
		n, err := parseUint(strings.TrimSpace(v), path)
		if err != nil {
			return nil, err
		}
		out[k] = n
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// readPids reads the pids listed in dir/cgroup.procs.
func readPids(dir string) ([]int, error) {
	path := filepath.Join(dir, "cgroup.procs")
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("parse pid %q in %s: %w", f, path, err)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// parseList parses a cpuset list such as "0-3,8" into its members.
func parseList(s string) ([]uint16, error) {
	var out []uint16
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	for _, part := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("parse cpuset list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(hi, 10, 16); err != nil {
				return nil, fmt.Errorf("parse cpuset list %q: %w", s, err)
			}
		}
		if b < a {
			return nil, fmt.Errorf("parse cpuset list %q: bad range %q", s, part)
		}
		for i := a; i <= b; i++ {
			out = append(out, uint16(i))
		}
	}
	return out, nil
}
