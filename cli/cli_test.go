package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berth-project/berth/internal/testimage"
	rcli "github.com/berth-project/berth/runtime/cli"
)

// newRoot builds berth's command tree as cmd/berth does.
func newRoot() (*cobra.Command, *rcli.Command) {
	rt := rcli.NewCommand("runtime")
	root := &cobra.Command{Use: "berth", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(rt.Cobra)
	AddCommands(root)
	return root, rt
}

// run runs berth with args (stdin from stdin) and returns its output.
func run(t *testing.T, stdin []byte, args ...string) (string, error) {
	t.Helper()
	root, _ := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetIn(bytes.NewReader(stdin))
	root.SetArgs(args)
	_, err := root.ExecuteC()
	return out.String(), err
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run(t, nil, args...)
	if err != nil {
		t.Fatalf("berth %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func TestImageCommands(t *testing.T) {
	layer := busyboxLayer(t)
	root := t.TempDir()
	out := mustRun(t, "--root", root, "import", "--change", `CMD ["/bin/sh"]`, "-c", "ENV FOO=bar", layer, "busybox")
	id := strings.TrimSpace(out)
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(id) {
		t.Fatalf("import printed %q", out)
	}
	// From stdin, with a registry name.
	data, err := os.ReadFile(layer)
	if err != nil {
		t.Fatal(err)
	}
	rootFlagOut, err := run(t, data, "import", "--root", root, "-", "localhost:5000/bb:v1")
	if err != nil {
		t.Fatalf("import -: %v %s", err, rootFlagOut)
	}

	out = mustRun(t, "--root", root, "images")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !regexp.MustCompile(`^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE$`).MatchString(lines[0]) {
		t.Fatalf("images:\n%s", out)
	}
	short := id[len("sha256:") : len("sha256:")+12]
	if !regexp.MustCompile(`^busybox\s+latest\s+` + short + `\s+(Less than a second|\d+ seconds?|About a minute) ago\s+[0-9.]+[kM]?B$`).MatchString(lines[1]) {
		t.Errorf("busybox line %q", lines[1])
	}
	if !strings.HasPrefix(lines[2], "localhost:5000/bb") || !strings.Contains(lines[2], " v1 ") {
		t.Errorf("bb line %q", lines[2])
	}
	out = mustRun(t, "--root", root, "images", "--digests")
	if !regexp.MustCompile(`^REPOSITORY\s+TAG\s+DIGEST\s+IMAGE ID\s+CREATED\s+SIZE\nbusybox\s+latest\s+sha256:[0-9a-f]{64}\s+` + short + `\s`).MatchString(out) {
		t.Errorf("images --digests:\n%s", out)
	}
	out = mustRun(t, "--root", root, "images", "-q")
	if qs := strings.Fields(out); len(qs) != 2 || qs[0] != short {
		t.Errorf("images -q: %q", out)
	}
	out = mustRun(t, "--root", root, "images", "--format", "json")
	var objs []map[string]string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]string
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("json line %q: %v", l, err)
		}
		objs = append(objs, m)
	}
	if len(objs) != 2 || objs[0]["Repository"] != "busybox" || objs[0]["Tag"] != "latest" || objs[0]["ID"] != short ||
		!strings.HasPrefix(objs[0]["Digest"], "sha256:") || objs[0]["CreatedAt"] == "" || objs[0]["Size"] == "" {
		t.Errorf("json: %v", objs)
	}

	// inspect
	mustRun(t, "--root", root, "tag", "busybox", "mybox:2")
	out = mustRun(t, "--root", root, "image", "inspect", "busybox")
	var insp []struct {
		Id           string
		RepoTags     []string
		RepoDigests  []string
		Created      string
		Architecture string
		Os           string
		Size         int64
		Config       struct {
			Cmd []string
			Env []string
		}
		RootFS struct {
			Type   string
			Layers []string
		}
	}
	if err := json.Unmarshal([]byte(out), &insp); err != nil {
		t.Fatalf("inspect: %v\n%s", err, out)
	}
	if len(insp) != 1 {
		t.Fatalf("inspect: %s", out)
	}
	i := insp[0]
	if i.Id != id || strings.Join(i.RepoTags, ",") != "busybox:latest,mybox:2" || len(i.RepoDigests) != 2 ||
		i.Os != "linux" || i.Size <= 0 || i.Created == "" || i.RootFS.Type != "layers" || len(i.RootFS.Layers) != 1 ||
		strings.Join(i.Config.Cmd, " ") != "/bin/sh" || strings.Join(i.Config.Env, " ") != "FOO=bar" {
		t.Errorf("inspect: %+v", i)
	}

	// rmi of one tag keeps the other.
	out = mustRun(t, "--root", root, "rmi", "busybox")
	if out != "Untagged: busybox:latest\n" {
		t.Errorf("rmi busybox: %q", out)
	}
	mustRun(t, "--root", root, "image", "inspect", "mybox:2")
	out = mustRun(t, "--root", root, "rmi", "-f", "mybox:2")
	if out != "Untagged: mybox:2\nDeleted: "+id+"\n" {
		t.Errorf("rmi mybox:2: %q", out)
	}
	out = mustRun(t, "--root", root, "images", "-q")
	if strings.Fields(out)[0] == short {
		t.Errorf("image still listed: %q", out)
	}

	// Missing image: docker's exit status 1 and berth's message.
	if _, err := run(t, nil, "--root", root, "rmi", "nothere"); err == nil || err.Error() != `image "nothere" not found` {
		t.Errorf("rmi missing: %v", err)
	}
	if _, err := run(t, nil, "--root", root, "image", "inspect", "nothere"); err == nil || err.Error() != `image "nothere" not found` {
		t.Errorf("inspect missing: %v", err)
	}
	r, rt := newRoot()
	if code := rcli.ExecuteRoot(r, []string{"--root", root, "rmi", "nothere"}, rt); code != 1 {
		t.Errorf("rmi missing: exit %d, want 1", code)
	}
	if _, err := run(t, nil, "--root", root, "import", "--change", "RUN x", layer, "y"); err == nil || !strings.Contains(err.Error(), `"RUN"`) {
		t.Errorf("unknown change: %v", err)
	}
}

// The runtime's own --root shadows berth's.
func TestRuntimeRootFlag(t *testing.T) {
	dir := t.TempDir()
	root, rt := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"runtime", "--root", dir, "list"})
	if _, err := root.ExecuteC(); err != nil {
		t.Fatalf("runtime --root list: %v", err)
	}
	if got := rt.Cobra.PersistentFlags().Lookup("root").Value.String(); got != dir {
		t.Errorf("runtime root = %q, want %q", got, dir)
	}
	if got := root.PersistentFlags().Lookup("root").Value.String(); got != "/var/lib/berth" {
		t.Errorf("berth root = %q, want the default", got)
	}
	// And berth's --root reaches the image commands.
	imgRoot := t.TempDir()
	if _, err := run(t, nil, "--root", imgRoot, "images"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(imgRoot, "metadata.db")); err != nil {
		t.Errorf("images --root did not open the store there: %v", err)
	}
}

// busyboxLayer writes the busybox test image and returns its (gzip)
// layer blob: a rootfs tarball to import.
func busyboxLayer(t *testing.T) string {
	t.Helper()
	layer, _ := testimage.Layer(t, filepath.Join(testimage.Build(t, "busybox"), "busybox"), 0)
	return layer
}

// TestAddCommandFor: a hot command is built alone, with root's flags
// before it; anything else is left to the whole tree. The command built
// alone is the one the whole tree has (same flags).
func TestAddCommandFor(t *testing.T) {
	full, _ := newRoot()
	for _, tc := range []struct {
		args []string
		want string // "" when the whole tree is needed
	}{
		{[]string{"run", "busybox"}, "run"},
		{[]string{"--root", "/x", "run", "-d", "busybox"}, "run"},
		{[]string{"--root=/x", "--runroot", "/y", "create", "busybox"}, "create"},
		{[]string{"exec", "c", "sh"}, "exec"},
		{[]string{"ps", "-a"}, "ps"},
		{[]string{"images"}, ""},
		{[]string{"container", "run", "busybox"}, ""},
		{[]string{"--root", "/x", "container", "cleanup", "id"}, "container cleanup"},
		{[]string{"container", "teardown-network", "id"}, "container teardown-network"},
		{[]string{"--root"}, ""},
		{[]string{"--help", "run"}, ""},
		{[]string{"--log-level", "debug", "run"}, ""},
		{nil, ""},
	} {
		root := &cobra.Command{Use: "berth"}
		built := AddCommandFor(root, tc.args)
		if built != (tc.want != "") {
			t.Errorf("AddCommandFor(%q) = %v", tc.args, built)
			continue
		}
		if !built {
			if len(root.Commands()) != 0 {
				t.Errorf("AddCommandFor(%q) added commands and reported none", tc.args)
			}
			continue
		}
		path := strings.Fields(tc.want)
		cmd, _, err := root.Find(path)
		if err != nil || cmd.CommandPath() != "berth "+tc.want || len(root.Commands()) != 1 || len(root.Commands()[0].Commands()) > 1 {
			t.Errorf("AddCommandFor(%q) built %v (%v)", tc.args, root.Commands(), err)
			continue
		}
		ref, _, err := full.Find(path)
		if err != nil {
			t.Fatal(err)
		}
		var a, b []string
		cmd.Flags().VisitAll(func(f *pflag.Flag) { a = append(a, f.Name) })
		ref.Flags().VisitAll(func(f *pflag.Flag) { b = append(b, f.Name) })
		if !slices.Equal(a, b) {
			t.Errorf("%s built alone has flags %v, in the tree %v", tc.want, a, b)
		}
		if root.PersistentFlags().Lookup("root") == nil || root.PersistentFlags().Lookup("runroot") == nil {
			t.Errorf("%s built alone: root lacks --root or --runroot", tc.want)
		}
	}
}
