package rootfs

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// mountOptions is the parsed form of an OCI mount's string options.
type mountOptions struct {
	// flags are MS_* flags to set on the mount.
	flags uintptr
	// cleared are MS_* flags the user explicitly asked to clear ("rw",
	// "suid", "dev", ...). They are never carried over from the source of a
	// bind mount.
	cleared uintptr
	// propagation lists the propagation changes (MS_SHARED, MS_PRIVATE|MS_REC,
	// ...) in the order they were given.
	propagation []uintptr
	// attr is the recursive attribute change (for "rro", "rnosuid", ...)
	// applied with mount_setattr(2) and AT_RECURSIVE.
	attr unix.MountAttr
	// tmpcopyup: copy what the image has at the destination into the new
	// tmpfs (podman's --read-only and --tmpfs use it).
	tmpcopyup bool
	// data holds the options the kernel filesystem parses itself
	// ("size=65536k", "mode=755", ...).
	data []string
}

// hasRecursiveAttr reports whether a recursive attribute ("rro", ...) was given.
func (o *mountOptions) hasRecursiveAttr() bool {
	return o.attr.Attr_set != 0 || o.attr.Attr_clr != 0
}

// dataString returns the filesystem-specific data joined for mount(2).
func (o *mountOptions) dataString() string {
	return strings.Join(o.data, ",")
}

// isBind reports whether the options ask for a bind mount.
func (o *mountOptions) isBind() bool {
	return o.flags&unix.MS_BIND != 0
}

type flagOption struct {
	clear bool
	flag  uintptr
}

// flagOptions maps the mount(8) style options runc honours to MS_* flags.
var flagOptions = map[string]flagOption{
	"acl":           {false, unix.MS_POSIXACL},
	"async":         {true, unix.MS_SYNCHRONOUS},
	"atime":         {true, unix.MS_NOATIME},
	"bind":          {false, unix.MS_BIND},
	"defaults":      {false, 0},
	"dev":           {true, unix.MS_NODEV},
	"diratime":      {true, unix.MS_NODIRATIME},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"exec":          {true, unix.MS_NOEXEC},
	"iversion":      {false, unix.MS_I_VERSION},
	"lazytime":      {false, unix.MS_LAZYTIME},
	"loud":          {true, unix.MS_SILENT},
	"mand":          {false, unix.MS_MANDLOCK},
	"noacl":         {true, unix.MS_POSIXACL},
	"noatime":       {false, unix.MS_NOATIME},
	"nodev":         {false, unix.MS_NODEV},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"noexec":        {false, unix.MS_NOEXEC},
	"noiversion":    {true, unix.MS_I_VERSION},
	"nolazytime":    {true, unix.MS_LAZYTIME},
	"nomand":        {true, unix.MS_MANDLOCK},
	"norelatime":    {true, unix.MS_RELATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"nosuid":        {false, unix.MS_NOSUID},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC},
	"relatime":      {false, unix.MS_RELATIME},
	"remount":       {false, unix.MS_REMOUNT},
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"silent":        {false, unix.MS_SILENT},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"suid":          {true, unix.MS_NOSUID},
	"sync":          {false, unix.MS_SYNCHRONOUS},
}

// propagationOptions maps propagation options to their MS_* flags.
var propagationOptions = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

type attrOption struct {
	set, clr uint64
}

// recursiveOptions maps the "r"-prefixed recursive options to
// mount_setattr(2) attribute changes.
var recursiveOptions = map[string]attrOption{
	"rro":            {set: unix.MOUNT_ATTR_RDONLY},
	"rrw":            {clr: unix.MOUNT_ATTR_RDONLY},
	"rnosuid":        {set: unix.MOUNT_ATTR_NOSUID},
	"rsuid":          {clr: unix.MOUNT_ATTR_NOSUID},
	"rnodev":         {set: unix.MOUNT_ATTR_NODEV},
	"rdev":           {clr: unix.MOUNT_ATTR_NODEV},
	"rnoexec":        {set: unix.MOUNT_ATTR_NOEXEC},
	"rexec":          {clr: unix.MOUNT_ATTR_NOEXEC},
	"rnodiratime":    {set: unix.MOUNT_ATTR_NODIRATIME},
	"rdiratime":      {clr: unix.MOUNT_ATTR_NODIRATIME},
	"rrelatime":      {set: unix.MOUNT_ATTR_RELATIME, clr: unix.MOUNT_ATTR__ATIME},
	"rnorelatime":    {clr: unix.MOUNT_ATTR__ATIME},
	"rnoatime":       {set: unix.MOUNT_ATTR_NOATIME, clr: unix.MOUNT_ATTR__ATIME},
	"ratime":         {clr: unix.MOUNT_ATTR__ATIME},
	"rstrictatime":   {set: unix.MOUNT_ATTR_STRICTATIME, clr: unix.MOUNT_ATTR__ATIME},
	"rnostrictatime": {clr: unix.MOUNT_ATTR__ATIME},
	"rnosymfollow":   {set: unix.MOUNT_ATTR_NOSYMFOLLOW},
	"rsymfollow":     {clr: unix.MOUNT_ATTR_NOSYMFOLLOW},
}

// parseMountOptions turns OCI mount options into flags, propagation changes,
// recursive attributes and filesystem data. Unknown options become data.
func parseMountOptions(options []string) (*mountOptions, error) {
	o := &mountOptions{}
	for _, opt := range options {
		if f, ok := flagOptions[opt]; ok {
			if f.clear {
				o.flags &^= f.flag
				o.cleared |= f.flag
			} else {
				o.flags |= f.flag
				o.cleared &^= f.flag
			}
			continue
		}
		if p, ok := propagationOptions[opt]; ok {
			o.propagation = append(o.propagation, p)
			continue
		}
		if a, ok := recursiveOptions[opt]; ok {
			o.attr.Attr_set &^= a.clr
			o.attr.Attr_set |= a.set
			o.attr.Attr_clr |= a.clr
			o.attr.Attr_clr &^= a.set &^ unix.MOUNT_ATTR__ATIME
			continue
		}
		switch opt {
		case "idmap", "ridmap":
			return nil, fmt.Errorf("option %q: id-mapped mounts are not supported", opt)
		case "tmpcopyup":
			o.tmpcopyup = true
			continue
		}
		if strings.HasPrefix(opt, "x-") {
			// Userspace-only options (mount(8) ignores them too).
			continue
		}
		o.data = append(o.data, opt)
	}
	return o, nil
}
