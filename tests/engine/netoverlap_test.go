package engine

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestNetAttachFailsDuringCreate: the CNI ADD of a container's network
// runs while the runtime creates the container, and the container's
// process starts only once it is done. When the ADD fails (a plugin the
// network's conflist names does not exist), the start fails with the
// network's error naming the plugin, exit code 125, and leaves nothing:
// no container process, runtime state, netns, veth, lease or cache
// entry. The plugin missing in the list's first place (nothing was
// added) and after the bridge plugin (a veth and a lease were made).
func TestNetAttachFailsDuringCreate(t *testing.T) {
	const missing = "berth-missing-plugin"
	for _, tc := range []struct {
		name   string
		subnet string
		edit   func(plugins []any) []any
	}{
		{"first", "10.213.77.0/24", func(p []any) []any {
			p[0].(map[string]any)["type"] = missing
			return p
		}},
		{"chained", "10.213.78.0/24", func(p []any) []any {
			return append(p[:1:1], map[string]any{"type": missing})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			netName, ctr := "ovlfail-"+tc.name, "ovlfail-c-"+tc.name
			cleanupContainer(t, ctr)
			berth(t, "network", "rm", netName)
			ok(t, "network", "create", "--subnet", tc.subnet, netName)
			t.Cleanup(func() {
				berth(t, "rm", "-f", ctr)
				berth(t, "network", "rm", netName)
			})
			path := filepath.Join(storeDir, "networks", netName+".conflist")
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var list map[string]any
			if err := json.Unmarshal(data, &list); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			plugins, _ := list["plugins"].([]any)
			if len(plugins) == 0 {
				t.Fatalf("%s: no plugins: %s", path, data)
			}
			list["plugins"] = tc.edit(plugins)
			if data, err = json.Marshal(list); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			vethsBefore := veths(t)

			r := berth(t, "run", "--name", ctr, "--network", netName, "busybox", "sh", "-c", "echo started; sleep 100")
			if r.code != 125 || !strings.Contains(r.stderr, missing) {
				t.Fatalf("run on a network with a missing plugin: want exit 125 and an error naming %s: %v", missing, r)
			}
			if strings.Contains(r.stdout, "started") {
				t.Errorf("the container's process ran: %v", r)
			}
			if st := status(t, ctr); st == "running" {
				t.Errorf("status %s after the failed start", st)
			}
			id, _ := field(inspect(t, ctr), "Id").(string)
			if id == "" {
				t.Fatal("no container id")
			}
			if msg, _ := field(inspect(t, ctr), "State", "Error").(string); !strings.Contains(msg, missing) {
				t.Errorf("State.Error %q does not name %s", msg, missing)
			}
			for _, p := range []string{filepath.Join(runDir, "netns", id), filepath.Join(runDir, "runtime", id)} {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("%s left after the failed start", p)
				}
			}
			if procs, err := os.ReadFile(filepath.Join("/sys/fs/cgroup/pids/berth", id, "cgroup.procs")); err == nil && len(strings.TrimSpace(string(procs))) > 0 {
				t.Errorf("processes left in the container's cgroup: %s", procs)
			}
			// Leases (host-local's files hold the container's ID) and
			// libcni's cache entries.
			filepath.WalkDir(filepath.Join(runDir, "network"), func(p string, d fs.DirEntry, err error) error {
				if err != nil || d.IsDir() {
					return nil
				}
				if strings.Contains(p, id) {
					t.Errorf("%s left after the failed start", p)
				} else if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), id) {
					t.Errorf("%s names the container after the failed start: %s", p, b)
				}
				return nil
			})
			if after := veths(t); after > vethsBefore {
				t.Errorf("%d veths before the start, %d after", vethsBefore, after)
			}
		})
	}
}

// veths counts the host's veth links.
func veths(t *testing.T) int {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show", "type", "veth").Output()
	if err != nil {
		t.Fatalf("ip link: %v", err)
	}
	return strings.Count(string(out), "\n")
}
