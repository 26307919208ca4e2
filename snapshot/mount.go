package snapshot

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// mountDataMax is the longest option string mount(2) accepts: it copies
// one page, which must hold the terminating NUL.
func mountDataMax() int { return unix.Getpagesize() - 1 }

// mountFlags are the options that are mount(2) flags, not filesystem data.
var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro":          {false, unix.MS_RDONLY},
	"rw":          {true, unix.MS_RDONLY},
	"bind":        {false, unix.MS_BIND},
	"rbind":       {false, unix.MS_BIND | unix.MS_REC},
	"nosuid":      {false, unix.MS_NOSUID},
	"suid":        {true, unix.MS_NOSUID},
	"nodev":       {false, unix.MS_NODEV},
	"dev":         {true, unix.MS_NODEV},
	"noexec":      {false, unix.MS_NOEXEC},
	"exec":        {true, unix.MS_NOEXEC},
	"sync":        {false, unix.MS_SYNCHRONOUS},
	"async":       {true, unix.MS_SYNCHRONOUS},
	"dirsync":     {false, unix.MS_DIRSYNC},
	"noatime":     {false, unix.MS_NOATIME},
	"atime":       {true, unix.MS_NOATIME},
	"nodiratime":  {false, unix.MS_NODIRATIME},
	"diratime":    {true, unix.MS_NODIRATIME},
	"relatime":    {false, unix.MS_RELATIME},
	"norelatime":  {true, unix.MS_RELATIME},
	"strictatime": {false, unix.MS_STRICTATIME},
}

// MountAll mounts mounts, in order, on the directory target: the way to
// use what Prepare, View and Mounts return (their Destination is unused).
// Bind mounts with flags (ro, nosuid, ...) are remounted to apply them.
//
// An overlay mount whose options exceed the one-page mount data limit is
// made with its directory paths relative to their common parent (for
// snapshots, root/snapshots): mount(2) then runs on a thread of its own
// whose working directory is that parent (unshare(CLONE_FS) and chdir),
// so the process's working directory never changes.
//
// On error, what was mounted on target is unmounted.
func MountAll(mounts []specs.Mount, target string) (err error) {
	target, err = filepath.Abs(target)
	if err != nil {
		return err
	}
	done := 0
	defer func() {
		for ; err != nil && done > 0; done-- {
			unix.Unmount(target, unix.MNT_DETACH)
		}
	}()
	for i, m := range mounts {
		if err := mountVolatile(m, target); err != nil {
			return fmt.Errorf("mount %d (%s %s) on %s: %w", i, m.Type, m.Source, target, err)
		}
		done++
	}
	return nil
}

// volatileOpt is overlayfs's "volatile" option (Linux 5.10).
const volatileOpt = "volatile"

// Volatile returns mounts with overlayfs's "volatile" option added to
// each writable overlay: the overlay then never syncs its upper layer,
// neither on fsync nor on unmount, where a plain overlay syncs the whole
// file system under the upper layer (berth's root). It is for a layer
// that is thrown away when its container exits (run --rm), as podman
// does for --rm: after a crash the layer is garbage anyway. MountAll
// mounts without the option on kernels that lack it.
//
// A volatile mount leaves WORKDIR/work/incompat/volatile behind, which
// makes the kernel refuse every later mount of the layer; MountAll
// removes it before mounting, since only a discarded layer is volatile.
func Volatile(mounts []specs.Mount) []specs.Mount {
	out := make([]specs.Mount, len(mounts))
	for i, m := range mounts {
		out[i] = m
		if m.Type == "overlay" && overlayOption(m.Options, "upperdir") != "" && !slices.Contains(m.Options, volatileOpt) {
			out[i].Options = append(slices.Clone(m.Options), volatileOpt)
		}
	}
	return out
}

// mountVolatile mounts m, clearing for an overlay the mark an earlier
// volatile mount left, and mounting without "volatile" when the kernel
// does not know it (EINVAL).
func mountVolatile(m specs.Mount, target string) error {
	if m.Type != "overlay" {
		return mountOne(m, target)
	}
	if work := overlayOption(m.Options, "workdir"); work != "" {
		if err := os.RemoveAll(filepath.Join(work, "work", "incompat", volatileOpt)); err != nil {
			return fmt.Errorf("clear the mark of a volatile mount: %w", err)
		}
	}
	err := mountOne(m, target)
	if errors.Is(err, unix.EINVAL) && slices.Contains(m.Options, volatileOpt) {
		m.Options = slices.DeleteFunc(slices.Clone(m.Options), func(o string) bool { return o == volatileOpt })
		err = mountOne(m, target)
	}
	return err
}

// overlayOption is the value of overlay option key in opts, or "".
func overlayOption(opts []string, key string) string {
	for _, o := range opts {
		if k, v, ok := strings.Cut(o, "="); ok && k == key {
			return v
		}
	}
	return ""
}

func mountOne(m specs.Mount, target string) error {
	var flags uintptr
	var data []string
	for _, o := range m.Options {
		if f, ok := mountFlags[o]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
			continue
		}
		data = append(data, o)
	}
	if m.Type == "bind" {
		flags |= unix.MS_BIND
	}
	if flags&unix.MS_BIND != 0 {
		if err := unix.Mount(m.Source, target, "", flags&(unix.MS_BIND|unix.MS_REC), ""); err != nil {
			return err
		}
		if rest := flags &^ (unix.MS_BIND | unix.MS_REC); rest != 0 {
			if err := unix.Mount("", target, "", unix.MS_REMOUNT|unix.MS_BIND|rest, ""); err != nil {
				unix.Unmount(target, unix.MNT_DETACH)
				return fmt.Errorf("remount %s: %w", strings.Join(m.Options, ","), err)
			}
		}
		return nil
	}
	opts := strings.Join(data, ",")
	if len(opts) <= mountDataMax() || m.Type != "overlay" {
		return unix.Mount(m.Source, target, m.Type, flags, opts)
	}
	dir, rel, err := relativeOverlayOptions(data)
	if err != nil {
		return err
	}
	if len(rel) > mountDataMax() {
		return fmt.Errorf("overlay options take %d bytes even relative to %s, more than the %d-byte mount data limit", len(rel), dir, mountDataMax())
	}
	return mountInDir(dir, m.Source, target, m.Type, flags, rel)
}

// overlayPathKeys are the overlay options whose values are paths.
var overlayPathKeys = map[string]bool{"lowerdir": true, "upperdir": true, "workdir": true}

// relativeOverlayOptions returns the directory common to every path in
// overlay's options, and the options with those paths relative to it.
func relativeOverlayOptions(opts []string) (string, string, error) {
	var paths []string
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		if overlayPathKeys[k] {
			paths = append(paths, strings.Split(v, ":")...)
		}
	}
	if len(paths) == 0 {
		return "", "", errors.New("overlay options name no directory")
	}
	common := filepath.Dir(paths[0])
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			return "", "", fmt.Errorf("overlay path %q is not absolute", p)
		}
		for common != "/" && !strings.HasPrefix(p, common+"/") {
			common = filepath.Dir(common)
		}
	}
	out := make([]string, len(opts))
	for i, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		if !overlayPathKeys[k] {
			out[i] = o
			continue
		}
		ps := strings.Split(v, ":")
		for j, p := range ps {
			r, err := filepath.Rel(common, p)
			if err != nil {
				return "", "", err
			}
			ps[j] = r
		}
		out[i] = k + "=" + strings.Join(ps, ":")
	}
	return common, strings.Join(out, ","), nil
}

// mountInDir calls mount(2) with dir as the working directory, on a
// locked thread whose filesystem context is unshared from the process's.
// The goroutine exits without unlocking the thread, so Go discards the
// thread instead of reusing it with a different working directory.
func mountInDir(dir, source, target, fstype string, flags uintptr, data string) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare(CLONE_FS): %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- fmt.Errorf("chdir %s: %w", dir, err)
			return
		}
		errc <- unix.Mount(source, target, fstype, flags, data)
	}()
	return <-errc
}

// Unmount unmounts everything mounted on target (stacked mounts
// included). A target with nothing mounted is not an error.
func Unmount(target string) error {
	for {
		err := unix.Unmount(target, 0)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil // not (or no longer) a mount point
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w", target, err)
		}
	}
}
