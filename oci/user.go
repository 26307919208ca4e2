package oci

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// passwdEntry is one line of /etc/passwd.
type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

// groupEntry is one line of /etc/group.
type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// readRootFile reads path inside rootfs without ever leaving it: symlinks
// are resolved as if rootfs were "/". A missing file gives nil, nil.
func readRootFile(rootfs, path string) ([]byte, error) {
	h, err := pathrs.OpenInRoot(rootfs, path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("open %s in %s: %w", path, rootfs, err)
	}
	defer h.Close()
	// h is an O_PATH handle; reopen it for reading.
	f, err := pathrs.Reopen(h, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("open %s in %s: %w", path, rootfs, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s in %s: %w", path, rootfs, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s in %s is not a regular file", path, rootfs)
	}
	// 16 MiB is far beyond any real passwd or group file.
	b, err := io.ReadAll(io.LimitReader(f, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s in %s: %w", path, rootfs, err)
	}
	return b, nil
}

// colonLines calls fn with the fields of every non-comment line of b.
func colonLines(b []byte, fn func(fields []string)) {
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fn(strings.Split(line, ":"))
	}
}

func parsePasswd(b []byte) []passwdEntry {
	var out []passwdEntry
	colonLines(b, func(f []string) {
		if len(f) < 4 {
			return
		}
		uid, err1 := strconv.ParseUint(f[2], 10, 32)
		gid, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			return
		}
		e := passwdEntry{name: f[0], uid: uint32(uid), gid: uint32(gid)}
		if len(f) > 5 {
			e.home = f[5]
		}
		out = append(out, e)
	})
	return out
}

func parseGroup(b []byte) []groupEntry {
	var out []groupEntry
	colonLines(b, func(f []string) {
		if len(f) < 3 {
			return
		}
		gid, err := strconv.ParseUint(f[2], 10, 32)
		if err != nil {
			return
		}
		e := groupEntry{name: f[0], gid: uint32(gid)}
		if len(f) > 3 && f[3] != "" {
			e.members = strings.Split(f[3], ",")
		}
		out = append(out, e)
	})
	return out
}

// parseID reads a uid or gid; docker allows 0 to 2^31-1.
func parseID(s string) (uint32, bool) {
	n, err := strconv.ParseUint(s, 10, 31)
	return uint32(n), err == nil
}

// checkID refuses a number that parseID cannot take.
func checkID(s string) error {
	if s != "" && strings.Trim(s, "0123456789") == "" {
		if _, ok := parseID(s); !ok {
			return fmt.Errorf("id %s out of range: uids and gids must be in range 0-2147483647", s)
		}
	}
	return nil
}

// ResolveUser resolves docker's -u forms (name, uid, name:group,
// uid:gid, name:gid, uid:group) against /etc/passwd and /etc/group inside
// rootfs, read without following any symlink out of rootfs. The empty
// user is root. A numeric uid needs no passwd entry (its gid is then 0);
// a name must have one. Supplementary groups (the groups of /etc/group
// that list the user) are added only when no group is given, as docker
// does. [ResolveUserHome] also returns the user's home directory.
func ResolveUser(rootfs, user string) (specs.User, error) {
	u, _, err := resolveUser(rootfs, user)
	return u, err
}

// ResolveUserHome is [ResolveUser] that also returns the user's home
// directory from /etc/passwd ("/" when the user has no entry).
func ResolveUserHome(rootfs, user string) (specs.User, string, error) {
	return resolveUser(rootfs, user)
}

func resolveUser(rootfs, user string) (specs.User, string, error) {
	userArg, groupArg, haveGroup := strings.Cut(user, ":")
	if userArg == "" {
		userArg = "0"
	}
	if haveGroup && groupArg == "" {
		return specs.User{}, "", fmt.Errorf("user %q: empty group", user)
	}
	for _, id := range []string{userArg, groupArg} {
		if err := checkID(id); err != nil {
			return specs.User{}, "", fmt.Errorf("user %q: %w", user, err)
		}
	}
	passwd, err := readRootFile(rootfs, "/etc/passwd")
	if err != nil {
		return specs.User{}, "", err
	}
	users := parsePasswd(passwd)

	var res specs.User
	home := "/"
	var found *passwdEntry
	if uid, ok := parseID(userArg); ok {
		res.UID = uid
		for i := range users {
			if users[i].uid == uid {
				found = &users[i]
				break
			}
		}
	} else {
		for i := range users {
			if users[i].name == userArg {
				found = &users[i]
				break
			}
		}
		if found == nil {
			return specs.User{}, "", fmt.Errorf("unable to find user %s: no matching entries in passwd file of %s", userArg, rootfs)
		}
		res.UID = found.uid
	}
	if found != nil {
		res.GID = found.gid
		if found.home != "" {
			home = found.home
		}
	}

	var groups []groupEntry
	if haveGroup || found != nil {
		b, err := readRootFile(rootfs, "/etc/group")
		if err != nil {
			return specs.User{}, "", err
		}
		groups = parseGroup(b)
	}
	if haveGroup {
		gid, err := lookupGroup(groups, groupArg, rootfs)
		if err != nil {
			return specs.User{}, "", err
		}
		res.GID = gid
	} else if found != nil {
		for _, g := range groups {
			for _, m := range g.members {
				if m == found.name {
					res.AdditionalGids = appendGid(res.AdditionalGids, g.gid)
					break
				}
			}
		}
	}
	return res, home, nil
}

// lookupGroup resolves a group name or number.
func lookupGroup(groups []groupEntry, group, rootfs string) (uint32, error) {
	if gid, ok := parseID(group); ok {
		return gid, nil
	}
	for _, g := range groups {
		if g.name == group {
			return g.gid, nil
		}
	}
	return 0, fmt.Errorf("unable to find group %s: no matching entries in group file of %s", group, rootfs)
}

// ResolveGroups resolves docker's --group-add values (names or numbers)
// against /etc/group inside rootfs.
func ResolveGroups(rootfs string, names []string) ([]uint32, error) {
	if len(names) == 0 {
		return nil, nil
	}
	b, err := readRootFile(rootfs, "/etc/group")
	if err != nil {
		return nil, err
	}
	groups := parseGroup(b)
	var out []uint32
	for _, n := range names {
		gid, err := lookupGroup(groups, n, rootfs)
		if err != nil {
			return nil, err
		}
		out = appendGid(out, gid)
	}
	return out, nil
}

func appendGid(s []uint32, gid uint32) []uint32 {
	for _, g := range s {
		if g == gid {
			return s
		}
	}
	return append(s, gid)
}
