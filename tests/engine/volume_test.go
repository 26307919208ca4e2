package engine

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// cleanupVolume removes the volume when the test ends.
func cleanupVolume(t testing.TB, name string) {
	t.Cleanup(func() { berthCmd("volume", "rm", "-f", name).Run() })
}

// volumeNames returns the names `volume ls -q` prints, with the filters.
func volumeNames(t testing.TB, filters ...string) []string {
	t.Helper()
	args := []string{"volume", "ls", "-q"}
	for _, f := range filters {
		args = append(args, "--filter", f)
	}
	return strings.Fields(ok(t, args...))
}

// inspectVolume returns `volume inspect NAME`'s one document.
func inspectVolume(t testing.TB, name string) map[string]any {
	t.Helper()
	var v []map[string]any
	if err := json.Unmarshal([]byte(ok(t, "volume", "inspect", name)), &v); err != nil || len(v) != 1 {
		t.Fatalf("volume inspect %s: %v %v", name, v, err)
	}
	return v[0]
}

// containerVolumes returns the names of the volumes the container mounts.
func containerVolumes(t testing.TB, ref string) []string {
	t.Helper()
	mounts, _ := field(inspect(t, ref), "Mounts").([]any)
	var names []string
	for _, m := range mounts {
		if mm, _ := m.(map[string]any); mm["Type"] == "volume" {
			names = append(names, mm["Name"].(string))
		}
	}
	return names
}

// TestNamedVolume: -v NAME:/dst makes the volume on demand; what one
// container writes the next reads; inspect has docker's shape.
func TestNamedVolume(t *testing.T) {
	cleanupVolume(t, "shared")
	ok(t, "run", "--rm", "-v", "shared:/data", "busybox", "sh", "-c", "echo hi > /data/f")
	if got := ok(t, "run", "--rm", "-v", "shared:/data", "busybox", "cat", "/data/f"); got != "hi\n" {
		t.Fatalf("second container read %q, want %q", got, "hi\n")
	}
	if !slices.Contains(volumeNames(t), "shared") {
		t.Fatalf("volume ls does not list shared: %v", volumeNames(t))
	}
	doc := inspectVolume(t, "shared")
	for k, want := range map[string]string{"Name": "shared", "Driver": "local", "Scope": "local"} {
		if doc[k] != want {
			t.Errorf("inspect %s = %v, want %q", k, doc[k], want)
		}
	}
	if _, err := time.Parse(time.RFC3339, doc["CreatedAt"].(string)); err != nil {
		t.Errorf("CreatedAt: %v", err)
	}
	for _, k := range []string{"Labels", "Options"} {
		if _, isMap := doc[k].(map[string]any); !isMap {
			t.Errorf("inspect %s = %v, want an object", k, doc[k])
		}
	}
	mp, _ := doc["Mountpoint"].(string)
	if data, err := os.ReadFile(filepath.Join(mp, "f")); err != nil || string(data) != "hi\n" {
		t.Errorf("Mountpoint %s/f on the host: %q, %v", mp, data, err)
	}
	if got := ok(t, "volume", "inspect", "--format", "{{.Name}} {{.Driver}}", "shared"); got != "shared local\n" {
		t.Errorf("inspect --format: %q", got)
	}
	if r := berth(t, "volume", "inspect", "no-such-volume"); r.code == 0 || !strings.Contains(r.stderr, "no-such-volume") {
		t.Errorf("inspect of a missing volume: %v", r)
	}
}

// TestVolumeCreate: create prints the name (random 64 hex without one),
// is idempotent, and ls filters by name, label and dangling.
func TestVolumeCreate(t *testing.T) {
	name := strings.TrimSpace(ok(t, "volume", "create"))
	cleanupVolume(t, name)
	if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(name) {
		t.Fatalf("volume create without a name printed %q", name)
	}
	cleanupVolume(t, "labelled")
	if got := ok(t, "volume", "create", "--label", "team=a", "--label", "x", "labelled"); got != "labelled\n" {
		t.Fatalf("volume create labelled printed %q", got)
	}
	if got := ok(t, "volume", "create", "labelled"); got != "labelled\n" {
		t.Fatalf("second create of labelled printed %q", got)
	}
	labels, _ := inspectVolume(t, "labelled")["Labels"].(map[string]any)
	if labels["team"] != "a" || labels["x"] != "" || len(labels) != 2 {
		t.Errorf("labels: %v", labels)
	}
	if got := volumeNames(t, "label=team=a"); !slices.Equal(got, []string{"labelled"}) {
		t.Errorf("ls --filter label=team=a: %v", got)
	}
	if got := volumeNames(t, "label=team=b"); len(got) != 0 {
		t.Errorf("ls --filter label=team=b: %v", got)
	}
	if got := volumeNames(t, "name=labell"); !slices.Equal(got, []string{"labelled"}) {
		t.Errorf("ls --filter name=labell: %v", got)
	}
	cleanupContainer(t, "labeluser")
	ok(t, "create", "--name", "labeluser", "-v", "labelled:/d", "busybox")
	if got := volumeNames(t, "dangling=true"); slices.Contains(got, "labelled") || !slices.Contains(got, name) {
		t.Errorf("ls --filter dangling=true: %v (labelled is used, %s not)", got, name)
	}
	if got := volumeNames(t, "dangling=false"); !slices.Contains(got, "labelled") || slices.Contains(got, name) {
		t.Errorf("ls --filter dangling=false: %v", got)
	}
	out := ok(t, "volume", "ls")
	if !strings.HasPrefix(out, "DRIVER") || !regexp.MustCompile(`(?m)^local +labelled$`).MatchString(out) {
		t.Errorf("volume ls:\n%s", out)
	}
	if got := ok(t, "volume", "ls", "--filter", "name=labelled", "--format", "{{.Name}}:{{.Labels}}:{{.Links}}"); got != "labelled:team=a,x=:1\n" {
		t.Errorf("ls --format: %q", got)
	}
	for _, bad := range [][]string{{"--filter", "bogus=1"}, {"--filter", "dangling=maybe"}} {
		if r := berth(t, append([]string{"volume", "ls"}, bad...)...); r.code == 0 {
			t.Errorf("volume ls %v: %v", bad, r)
		}
	}
	if r := berth(t, "volume", "create", "bad/name"); r.code == 0 {
		t.Errorf("volume create bad/name: %v", r)
	}
}

// TestVolumeSeed: a new volume mounted over an image directory gets the
// image's files, unless nocopy.
func TestVolumeSeed(t *testing.T) {
	cleanupVolume(t, "seeded")
	got := strings.Fields(ok(t, "run", "--rm", "-v", "seeded:/etc", "busybox", "ls", "/etc"))
	if !slices.Contains(got, "passwd") || !slices.Contains(got, "group") {
		t.Fatalf("ls /etc on a new volume: %v, want the image's passwd and group", got)
	}
	mp := inspectVolume(t, "seeded")["Mountpoint"].(string)
	if data, err := os.ReadFile(filepath.Join(mp, "passwd")); err != nil || !strings.HasPrefix(string(data), "root:x:0:0:") {
		t.Errorf("seeded passwd on the host: %q, %v", data, err)
	}
	// Seeding happens once: a file removed stays removed.
	ok(t, "run", "--rm", "-v", "seeded:/etc", "busybox", "rm", "/etc/group")
	if got := strings.Fields(ok(t, "run", "--rm", "-v", "seeded:/etc", "busybox", "ls", "/etc")); slices.Contains(got, "group") {
		t.Errorf("volume re-seeded: %v", got)
	}

	// nocopy: the volume stays empty of the image's files (the engine's
	// own /etc/hostname, hosts and resolv.conf are mounted over it, as
	// in docker).
	cleanupVolume(t, "nocopy")
	cleanupVolume(t, "mountnocopy")
	for name, args := range map[string][]string{
		"nocopy":      {"-v", "nocopy:/etc:nocopy"},
		"mountnocopy": {"--mount", "type=volume,src=mountnocopy,dst=/etc,volume-nocopy"},
	} {
		got := strings.Fields(ok(t, append(append([]string{"run", "--rm"}, args...), "busybox", "ls", "-A", "/etc")...))
		if slices.Contains(got, "passwd") || slices.Contains(got, "group") {
			t.Errorf("ls /etc on %s (%v): %v, want no image files", name, args, got)
		}
		mp := inspectVolume(t, name)["Mountpoint"].(string)
		if _, err := os.Stat(filepath.Join(mp, "passwd")); err == nil {
			t.Errorf("%s was seeded: %s/passwd exists", name, mp)
		}
	}
}

// TestBindMount: a host directory is shared; :ro makes it read-only.
func TestBindMount(t *testing.T) {
	dir := t.TempDir()
	ok(t, "run", "--rm", "-v", dir+":/m", "busybox", "sh", "-c", "echo x > /m/f")
	if data, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(data) != "x\n" {
		t.Fatalf("host file: %q, %v", data, err)
	}
	r := berth(t, "run", "--rm", "-v", dir+":/m:ro", "busybox", "touch", "/m/g")
	if r.code == 0 {
		t.Errorf("touch on a :ro bind succeeded: %v", r)
	}
	r = berth(t, "run", "--rm", "--mount", "type=bind,src="+dir+",dst=/m,readonly", "busybox", "touch", "/m/h")
	if r.code == 0 {
		t.Errorf("touch on a readonly --mount bind succeeded: %v", r)
	}
	for _, n := range []string{"g", "h"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			t.Errorf("%s was written through a read-only bind", n)
		}
	}
	if got := ok(t, "run", "--rm", "-v", dir+":/m:ro", "busybox", "cat", "/m/f"); got != "x\n" {
		t.Errorf("read through :ro: %q", got)
	}
}

// TestTmpfs: --mount type=tmpfs with a size and --tmpfs mount tmpfs.
func TestTmpfs(t *testing.T) {
	script := `grep ' /t ' /proc/mounts; grep ' /t2 ' /proc/mounts; dd if=/dev/zero of=/t/big bs=1024 count=2048 2>/dev/null && echo big-fits; true`
	out := ok(t, "run", "--rm", "--mount", "type=tmpfs,target=/t,tmpfs-size=1m", "--tmpfs", "/t2", "busybox", "sh", "-c", script)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("output:\n%s", out)
	}
	if f := strings.Fields(lines[0]); len(f) < 4 || f[0] != "tmpfs" || f[2] != "tmpfs" || !slices.Contains(strings.Split(f[3], ","), "size=1024k") {
		t.Errorf("/t mount: %q, want a tmpfs with size=1024k", lines[0])
	}
	if f := strings.Fields(lines[1]); len(f) < 3 || f[2] != "tmpfs" {
		t.Errorf("/t2 mount: %q, want a tmpfs", lines[1])
	}
	if strings.Contains(out, "big-fits") {
		t.Errorf("2MiB fit in a 1MiB tmpfs")
	}
}

// TestAnonymousVolumes: -v /dst makes an anonymous volume that ls lists
// and rm -v (or --rm) removes; rm without -v keeps it for prune.
func TestAnonymousVolumes(t *testing.T) {
	cleanupContainer(t, "anon")
	ok(t, "create", "--name", "anon", "-v", "/anon", "busybox")
	vols := containerVolumes(t, "anon")
	if len(vols) != 1 {
		t.Fatalf("container volumes: %v", vols)
	}
	if !slices.Contains(volumeNames(t), vols[0]) {
		t.Fatalf("volume ls does not list %s", vols[0])
	}
	ok(t, "rm", "-v", "anon")
	if slices.Contains(volumeNames(t), vols[0]) {
		t.Errorf("rm -v left the anonymous volume %s", vols[0])
	}

	before := volumeNames(t)
	ok(t, "run", "--rm", "-v", "/anon", "busybox", "sh", "-c", "echo x > /anon/f")
	if after := volumeNames(t); !slices.Equal(before, after) {
		t.Errorf("run --rm left volumes: before %v, after %v", before, after)
	}

	// --rm keeps named volumes.
	cleanupVolume(t, "keptnamed")
	ok(t, "run", "--rm", "-v", "keptnamed:/n", "busybox", "true")
	if !slices.Contains(volumeNames(t), "keptnamed") {
		t.Errorf("run --rm removed the named volume")
	}
}

// TestVolumeRmInUse: a volume a container uses, even a stopped one, is
// not removed; it is after the container is.
func TestVolumeRmInUse(t *testing.T) {
	cleanupContainer(t, "busyuser")
	cleanupVolume(t, "busy")
	ok(t, "run", "--name", "busyuser", "-v", "busy:/d", "busybox", "true")
	id := strings.TrimSpace(ok(t, "inspect", "--format", "{{.Id}}", "busyuser"))
	r := berth(t, "volume", "rm", "busy")
	if r.code != 1 || !strings.Contains(r.stderr, "volume is in use") || !strings.Contains(r.stderr, id) {
		t.Fatalf("volume rm of a used volume: %v (want exit 1, in use by %s)", r, id)
	}
	if !slices.Contains(volumeNames(t), "busy") {
		t.Fatalf("the refused volume is gone")
	}
	ok(t, "rm", "busyuser")
	if got := ok(t, "volume", "rm", "busy"); got != "busy\n" {
		t.Errorf("volume rm printed %q", got)
	}
	if slices.Contains(volumeNames(t), "busy") {
		t.Errorf("volume rm left busy")
	}
	if r := berth(t, "volume", "rm", "busy"); r.code != 1 || !strings.Contains(r.stderr, "busy") {
		t.Errorf("volume rm of a missing volume: %v", r)
	}
	if r := berth(t, "volume", "rm", "-f", "busy"); r.code != 0 {
		t.Errorf("volume rm -f of a missing volume: %v", r)
	}
}

// TestVolumePrune: prune removes unused anonymous volumes and keeps named
// and used ones; -a removes unused named ones too.
func TestVolumePrune(t *testing.T) {
	cleanupVolume(t, "prunekeep")
	ok(t, "volume", "create", "prunekeep")
	// A dangling anonymous volume: its container removed without -v.
	ok(t, "create", "--name", "prunegone", "-v", "/x", "busybox")
	dangling := containerVolumes(t, "prunegone")[0]
	cleanupVolume(t, dangling)
	ok(t, "rm", "prunegone")
	// An anonymous volume in use.
	cleanupContainer(t, "pruneuser")
	ok(t, "create", "--name", "pruneuser", "-v", "/y", "busybox")
	used := containerVolumes(t, "pruneuser")[0]

	out := ok(t, "volume", "prune", "-f")
	if !strings.HasPrefix(out, "Deleted Volumes:\n") || !strings.Contains(out, dangling+"\n") || !strings.Contains(out, "Total reclaimed space: ") {
		t.Errorf("volume prune:\n%s", out)
	}
	names := volumeNames(t)
	if slices.Contains(names, dangling) || !slices.Contains(names, used) || !slices.Contains(names, "prunekeep") {
		t.Fatalf("after prune: %v (want %s gone, %s and prunekeep kept)", names, dangling, used)
	}
	// Without -f prune asks; no answer keeps everything.
	if r := berthIn(t, "n\n", "volume", "prune", "-a"); r.code != 0 || !strings.Contains(r.stdout, "WARNING!") || !slices.Contains(volumeNames(t), "prunekeep") {
		t.Errorf("volume prune -a answered no: %v", r)
	}
	out = ok(t, "volume", "prune", "-f", "-a")
	if !strings.Contains(out, "prunekeep\n") || strings.Contains(out, used) {
		t.Errorf("volume prune -a:\n%s", out)
	}
	if names := volumeNames(t); slices.Contains(names, "prunekeep") || !slices.Contains(names, used) {
		t.Errorf("after prune -a: %v", names)
	}
}

// TestVolumeDestinationSymlink: a mount destination under a symlink that
// a container planted in a volume is resolved inside the container's root:
// nothing is created on the host where the link points.
func TestVolumeDestinationSymlink(t *testing.T) {
	host := t.TempDir()
	target := filepath.Join(host, "escaped")
	cleanupVolume(t, "symesc")
	ok(t, "run", "--rm", "-v", "symesc:/data", "busybox", "ln", "-s", "/../../../../../../.."+target, "/data/sub")
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "marker"), []byte("m"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := berth(t, "run", "--rm", "-v", "symesc:/data", "-v", src+":/data/sub/mnt", "busybox", "sh", "-c", "cat /data/sub/mnt/marker")
	if _, err := os.Lstat(target); err == nil {
		t.Fatalf("the mount destination escaped the rootfs: %s was created on the host (run: %v)", target, r)
	}
	if r.code == 0 && r.stdout != "m" {
		t.Errorf("run: %v", r)
	}
}

// TestVolumeCreatedThenSeeded: a volume made by `volume create` is seeded
// from the image on its first mount while empty, as docker does.
func TestVolumeCreatedThenSeeded(t *testing.T) {
	ok(t, "volume", "create", "precreated")
	t.Cleanup(func() { berthCmd("volume", "rm", "-f", "precreated").Run() })
	got := ok(t, "run", "--rm", "-v", "precreated:/etc", "busybox", "cat", "/etc/passwd")
	if !strings.Contains(got, "root:") {
		t.Fatalf("precreated volume over /etc not seeded: %q", got)
	}
	var v []map[string]any
	if err := json.Unmarshal([]byte(ok(t, "volume", "inspect", "precreated")), &v); err != nil || len(v) != 1 {
		t.Fatalf("volume inspect: %v %v", v, err)
	}
	if mp, _ := v[0]["Mountpoint"].(string); mp != filepath.Join(storeDir, "volumes", "precreated", "_data") {
		t.Fatalf("mountpoint %q, want docker's layout under %s/volumes", mp, storeDir)
	}
}
