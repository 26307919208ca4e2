package runtime_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

const rootlessUID = 1000

// TestRootless runs berth-runc as uid 1000 with the config `spec
// --rootless` writes: root in the container is uid 1000 on the host.
func TestRootless(t *testing.T) {
	dir, err := os.MkdirTemp(baseDir, "rootless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mkdir := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.Mkdir(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, rootlessUID, rootlessUID); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bundle := mkdir("bundle", 0o755)
	xdg := mkdir("xdg", 0o700)
	r := &rt{t: t, root: filepath.Join(xdg, "berth"), bin: berthRunc, out: t.TempDir(),
		cred: &syscall.Credential{Uid: rootlessUID, Gid: rootlessUID, Groups: []uint32{}},
		env:  []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "XDG_RUNTIME_DIR=" + xdg, "HOME=" + dir}}

	// spec --rootless, as the user: its ids are mapped to root.
	r.ok("spec", "--rootless", "--bundle", bundle)
	var s specs.Spec
	if err := readJSON(filepath.Join(bundle, "config.json"), &s); err != nil {
		t.Fatal(err)
	}
	hasUserNS := false
	for _, ns := range s.Linux.Namespaces {
		hasUserNS = hasUserNS || (ns.Type == specs.UserNamespace && ns.Path == "")
	}
	wantMap := []specs.LinuxIDMapping{{ContainerID: 0, HostID: rootlessUID, Size: 1}}
	if !hasUserNS || len(s.Linux.UIDMappings) != 1 || s.Linux.UIDMappings[0] != wantMap[0] ||
		len(s.Linux.GIDMappings) != 1 || s.Linux.GIDMappings[0] != wantMap[0] {
		t.Fatalf("spec --rootless as uid %d: namespaces %v, uidMappings %v, gidMappings %v", rootlessUID,
			s.Linux.Namespaces, s.Linux.UIDMappings, s.Linux.GIDMappings)
	}

	rootfs := filepath.Join(bundle, "rootfs")
	if out, err := runCmd("cp", "-a", rootfsDir, rootfs); err != nil {
		t.Fatalf("copy rootfs: %v: %s", err, out)
	}
	err = filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, rootlessUID, rootlessUID)
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Process.Terminal = false
	s.Process.Args = []string{"sh", "-c", "id -u; id -g; cat /proc/self/uid_map; touch /tmp/rootless && echo wrote"}
	s.Root.Readonly = false
	data, _ := json.MarshalIndent(&s, "", "\t")
	cfg := filepath.Join(bundle, "config.json")
	if err := os.WriteFile(cfg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(cfg, rootlessUID, rootlessUID); err != nil {
		t.Fatal(err)
	}

	id := r.newID()
	res := r.run("create", "--bundle", bundle, id)
	if res.code != 0 {
		t.Fatalf("rootless create failed:\n%s", res)
	}
	st := r.state(id)
	if got := procStatus(t, st.Pid, "Uid"); got != "1000\t1000\t1000\t1000" {
		t.Errorf("host uid of the rootless container's init: %q, want 1000", got)
	}
	r.ok("start", id)
	r.waitStatus(id, "stopped")
	out := strings.Fields(res.output(t))
	if want := strings.Fields("0 0 0 1000 1 wrote"); strings.Join(out, " ") != strings.Join(want, " ") {
		t.Errorf("inside: %q, want %q (stderr %q)", out, want, res.errOutput(t))
	}
	var fst syscall.Stat_t
	if err := syscall.Lstat(filepath.Join(rootfs, "tmp", "rootless"), &fst); err != nil || fst.Uid != rootlessUID {
		t.Errorf("file written by the container's root: uid %d (%v), want %d on the host", fst.Uid, err, rootlessUID)
	}
	r.ok("delete", id)
	r.nothingLeft(id, bundle)
}
