package oci

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const testPasswd = `root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh
nohome:x:1001:1001::
`

const testGroup = `root:x:0:
daemon:x:1:
wheel:x:10:app,other
app:x:1000:
audio:x:29:app
staff:x:50:
`

// fakeRootfs makes a root with /etc/passwd and /etc/group.
func fakeRootfs(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "etc/passwd"), testPasswd)
	writeFile(t, filepath.Join(root, "etc/group"), testGroup)
	return root
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestResolveUser(t *testing.T) {
	root := fakeRootfs(t)
	tests := []struct {
		user string
		want specs.User
		home string
	}{
		{"", specs.User{}, "/root"},
		{"root", specs.User{}, "/root"},
		{"app", specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10, 29}}, "/home/app"},
		{"1000", specs.User{UID: 1000, GID: 1000, AdditionalGids: []uint32{10, 29}}, "/home/app"},
		{"app:staff", specs.User{UID: 1000, GID: 50}, "/home/app"},
		{"app:77", specs.User{UID: 1000, GID: 77}, "/home/app"},
		{"1000:wheel", specs.User{UID: 1000, GID: 10}, "/home/app"},
		{"4242", specs.User{UID: 4242}, "/"},
		{"4242:4343", specs.User{UID: 4242, GID: 4343}, "/"},
		{"daemon", specs.User{UID: 1, GID: 1}, "/usr/sbin"},
		{"nohome", specs.User{UID: 1001, GID: 1001}, "/"},
	}
	for _, tt := range tests {
		u, home, err := ResolveUserHome(root, tt.user)
		if err != nil {
			t.Errorf("ResolveUser(%q): %v", tt.user, err)
			continue
		}
		if !reflect.DeepEqual(u, tt.want) || home != tt.home {
			t.Errorf("ResolveUser(%q) = %+v, %q; want %+v, %q", tt.user, u, home, tt.want, tt.home)
		}
	}
	for _, bad := range []struct{ user, msg string }{
		{"nobody", "unable to find user nobody"},
		{"app:nogroup", "unable to find group nogroup"},
		{"app:", "empty group"},
		{"4294967295", "out of range"},
		{"0:2147483648", "out of range"},
	} {
		_, err := ResolveUser(root, bad.user)
		if err == nil || !strings.Contains(err.Error(), bad.msg) {
			t.Errorf("ResolveUser(%q) = %v, want error containing %q", bad.user, err, bad.msg)
		}
	}
}

func TestResolveUserNoPasswd(t *testing.T) {
	root := t.TempDir()
	u, err := ResolveUser(root, "123:456")
	if err != nil {
		t.Fatal(err)
	}
	if u.UID != 123 || u.GID != 456 {
		t.Errorf("got %+v, want uid 123 gid 456", u)
	}
	if _, err := ResolveUser(root, "app"); err == nil {
		t.Error("a user name without /etc/passwd resolved")
	}
}

// A symlinked /etc/passwd pointing at a host file must be resolved inside
// the rootfs, never to the host's file.
func TestResolveUserSymlinkStaysInRoot(t *testing.T) {
	host := t.TempDir()
	writeFile(t, filepath.Join(host, "passwd"), "hostonly:x:4000:4000::/host:/bin/sh\n")
	for _, target := range []string{
		filepath.Join(host, "passwd"), // absolute
		"../../../../../../../../../" + strings.TrimPrefix(filepath.Join(host, "passwd"), "/"), // climbing
	} {
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, filepath.Join(root, "etc/passwd")); err != nil {
			t.Fatal(err)
		}
		if u, err := ResolveUser(root, "hostonly"); err == nil {
			t.Errorf("symlink to %s: resolved the host's user: %+v", target, u)
		}
		// The same path inside the root is what counts.
		inRoot := filepath.Join(root, filepath.Join(host, "passwd"))
		if err := os.MkdirAll(filepath.Dir(inRoot), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, inRoot, "inroot:x:5000:5000::/in:/bin/sh\n")
		u, err := ResolveUser(root, "inroot")
		if err != nil || u.UID != 5000 {
			t.Errorf("symlink to %s: ResolveUser(inroot) = %+v, %v; want uid 5000 from inside the root", target, u, err)
		}
	}
}

func TestResolveGroups(t *testing.T) {
	root := fakeRootfs(t)
	g, err := ResolveGroups(root, []string{"audio", "12345", "audio"})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, []uint32{29, 12345}) {
		t.Errorf("ResolveGroups = %v, want [29 12345]", g)
	}
	if _, err := ResolveGroups(root, []string{"nope"}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("unknown group: %v", err)
	}
}
