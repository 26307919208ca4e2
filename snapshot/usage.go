package snapshot

import (
	"io/fs"
	"path/filepath"
	"syscall"
)

// diskUsage returns the bytes allocated (st_blocks) and the inodes used by
// the tree at dir, its root included; hard links count once.
func diskUsage(dir string) (size, inodes int64, err error) {
	seen := map[inodeKey]struct{}{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		k := inodeKey{uint64(st.Dev), st.Ino}
		if _, dup := seen[k]; dup {
			return nil
		}
		seen[k] = struct{}{}
		size += st.Blocks * 512
		inodes++
		return nil
	})
	return size, inodes, err
}
