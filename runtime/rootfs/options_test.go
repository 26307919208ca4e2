package rootfs

import (
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseMountOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    []string
		flags   uintptr
		cleared uintptr
		prop    []uintptr
		set     uint64
		clr     uint64
		data    string
	}{
		{name: "empty"},
		{name: "ro nosuid nodev noexec", opts: []string{"ro", "nosuid", "nodev", "noexec"},
			flags: unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{name: "later clears earlier", opts: []string{"ro", "rw", "nosuid", "suid", "dev", "exec"},
			cleared: unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{name: "later sets earlier clear", opts: []string{"rw", "ro"}, flags: unix.MS_RDONLY},
		{name: "bind", opts: []string{"bind"}, flags: unix.MS_BIND},
		{name: "rbind", opts: []string{"rbind"}, flags: unix.MS_BIND | unix.MS_REC},
		{name: "sync dirsync remount mand", opts: []string{"sync", "dirsync", "remount", "mand"},
			flags: unix.MS_SYNCHRONOUS | unix.MS_DIRSYNC | unix.MS_REMOUNT | unix.MS_MANDLOCK},
		{name: "async nomand loud", opts: []string{"async", "nomand", "loud"},
			cleared: unix.MS_SYNCHRONOUS | unix.MS_MANDLOCK | unix.MS_SILENT},
		{name: "atime family", opts: []string{"noatime", "nodiratime", "relatime", "strictatime", "lazytime", "silent"},
			flags: unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME | unix.MS_STRICTATIME | unix.MS_LAZYTIME | unix.MS_SILENT},
		{name: "atime clears", opts: []string{"atime", "diratime", "norelatime", "nostrictatime", "nolazytime"},
			cleared: unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME | unix.MS_STRICTATIME | unix.MS_LAZYTIME},
		{name: "propagation in order", opts: []string{"rprivate", "shared", "slave", "rslave", "private", "rshared", "unbindable", "runbindable"},
			prop: []uintptr{unix.MS_PRIVATE | unix.MS_REC, unix.MS_SHARED, unix.MS_SLAVE, unix.MS_SLAVE | unix.MS_REC,
				unix.MS_PRIVATE, unix.MS_SHARED | unix.MS_REC, unix.MS_UNBINDABLE, unix.MS_UNBINDABLE | unix.MS_REC}},
		{name: "recursive attrs", opts: []string{"rro", "rnosuid", "rnodev", "rnoexec"},
			set: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV | unix.MOUNT_ATTR_NOEXEC},
		{name: "recursive clear", opts: []string{"rro", "rrw", "rsuid"},
			clr: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID},
		{name: "recursive atime", opts: []string{"rnoatime"},
			set: unix.MOUNT_ATTR_NOATIME, clr: unix.MOUNT_ATTR__ATIME},
		{name: "recursive atime last wins", opts: []string{"rnoatime", "rstrictatime"},
			set: unix.MOUNT_ATTR_STRICTATIME, clr: unix.MOUNT_ATTR__ATIME},
		{name: "data", opts: []string{"nosuid", "size=65536k", "mode=755", "x-systemd.automount"},
			flags: unix.MS_NOSUID, data: "size=65536k,mode=755"},
		{name: "devpts data", opts: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"},
			flags: unix.MS_NOSUID | unix.MS_NOEXEC, data: "newinstance,ptmxmode=0666,mode=0620,gid=5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseMountOptions(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if o.flags != tt.flags {
				t.Errorf("flags = %#x, want %#x", o.flags, tt.flags)
			}
			if o.cleared != tt.cleared {
				t.Errorf("cleared = %#x, want %#x", o.cleared, tt.cleared)
			}
			if !reflect.DeepEqual(o.propagation, tt.prop) {
				t.Errorf("propagation = %#x, want %#x", o.propagation, tt.prop)
			}
			if o.attr.Attr_set != tt.set || o.attr.Attr_clr != tt.clr {
				t.Errorf("attr set/clr = %#x/%#x, want %#x/%#x", o.attr.Attr_set, o.attr.Attr_clr, tt.set, tt.clr)
			}
			if got := o.dataString(); got != tt.data {
				t.Errorf("data = %q, want %q", got, tt.data)
			}
		})
	}
}

func TestParseMountOptionsRefused(t *testing.T) {
	for _, opt := range []string{"idmap", "ridmap"} {
		_, err := parseMountOptions([]string{"rbind", opt})
		if err == nil || !strings.Contains(err.Error(), opt) {
			t.Errorf("%s: err = %v, want an error naming the option", opt, err)
		}
	}
}

func TestStatfsMountFlags(t *testing.T) {
	st := unix.Statfs_t{Flags: unix.ST_RDONLY | unix.ST_NOSUID | unix.ST_NODEV | unix.ST_NOEXEC | unix.ST_RELATIME | unix.ST_NODIRATIME}
	want := uintptr(unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RELATIME | unix.MS_NODIRATIME)
	if got := statfsMountFlags(&st); got != want {
		t.Errorf("statfsMountFlags = %#x, want %#x", got, want)
	}
}

func TestParseMountinfo(t *testing.T) {
	in := `22 26 0:21 / /sys rw,nosuid - sysfs sysfs rw
36 22 0:31 /a\040b /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:12 master:3 - cgroup cgroup rw,cpu,cpuacct
`
	ms, err := parseMountinfo(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 {
		t.Fatalf("got %d entries", len(ms))
	}
	m := ms[1]
	if m.ID != 36 || m.Parent != 22 || m.Root != "/a b" || m.Mountpoint != "/sys/fs/cgroup/cpu,cpuacct" ||
		!reflect.DeepEqual(m.Optional, []string{"shared:12", "master:3"}) || m.FSType != "cgroup" || m.SuperOpts != "rw,cpu,cpuacct" {
		t.Errorf("parsed %+v", m)
	}
	if len(ms[0].Optional) != 0 || ms[0].FSType != "sysfs" {
		t.Errorf("parsed %+v", ms[0])
	}
	if _, err := parseMountinfo(strings.NewReader("garbage\n")); err == nil {
		t.Error("malformed line accepted")
	}
}
