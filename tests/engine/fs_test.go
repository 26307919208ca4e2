package engine

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// newCtr creates (and, with run, starts in the background) a busybox
// container named name that is removed when the test ends.
func newCtr(t *testing.T, name string, run bool, cmd ...string) {
	t.Helper()
	cleanupContainer(t, name)
	if len(cmd) == 0 {
		cmd = []string{"sleep", "300"}
	}
	if run {
		ok(t, append([]string{"run", "-d", "--name", name, "busybox"}, cmd...)...)
		eventually(t, 10e9, name+" running", func() bool { return status(t, name) == "running" })
		return
	}
	ok(t, append([]string{"create", "--name", name, "busybox"}, cmd...)...)
}

// berthStdin runs berth with binary stdin.
func berthStdin(t *testing.T, stdin []byte, args ...string) result {
	t.Helper()
	cmd := berthCmd(args...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = bytes.NewReader(stdin), &out, &errb
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return r
}

// tarNames lists the entries of a tar stream, with their contents for
// regular files.
func tarNames(t *testing.T, data []byte) map[string]string {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	out := map[string]string{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		b, _ := io.ReadAll(tr)
		out[hdr.Name] = string(b)
	}
}

func mkTar(t *testing.T, hdrs []*tar.Header, bodies []string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i, h := range hdrs {
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(bodies[i]))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			tw.Write([]byte(bodies[i]))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func TestCpRunningAndStopped(t *testing.T) {
	for _, run := range []bool{true, false} {
		name := "cp-stopped"
		if run {
			name = "cp-running"
		}
		t.Run(name, func(t *testing.T) {
			newCtr(t, name, run)
			host := t.TempDir()
			file := filepath.Join(host, "hello.txt")
			if err := os.WriteFile(file, []byte("hi there\n"), 0o640); err != nil {
				t.Fatal(err)
			}
			os.Chown(file, 1234, 1234)

			// A file to a new path, then into an existing directory.
			ok(t, "cp", file, name+":/tmp/renamed.txt")
			ok(t, "cp", file, name+":/tmp")
			// A directory into an existing directory, to a missing path,
			// and its contents.
			dir := filepath.Join(host, "d")
			os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
			os.WriteFile(filepath.Join(dir, "sub", "f"), []byte("deep"), 0o600)
			ok(t, "cp", dir, name+":/tmp")
			ok(t, "cp", dir, name+":/tmp/newdir")
			ok(t, "cp", dir+"/.", name+":/root")

			out := t.TempDir()
			ok(t, "cp", name+":/tmp", out)
			for _, p := range []string{"tmp/renamed.txt", "tmp/hello.txt", "tmp/d/sub/f", "tmp/newdir/sub/f"} {
				if _, err := os.Stat(filepath.Join(out, p)); err != nil {
					t.Errorf("after cp out of /tmp: %v", err)
				}
			}
			ok(t, "cp", name+":/root/sub/f", filepath.Join(out, "f-copy"))
			if b, err := os.ReadFile(filepath.Join(out, "f-copy")); err != nil || string(b) != "deep" {
				t.Errorf("cp out of /root/sub/f: %q %v", b, err)
			}
			st, err := os.Stat(filepath.Join(out, "tmp/hello.txt"))
			if err != nil || st.Mode().Perm() != 0o640 {
				t.Errorf("mode of file copied out: %v %v", st, err)
			}
			b, err := os.ReadFile(filepath.Join(out, "tmp/hello.txt"))
			if err != nil || string(b) != "hi there\n" {
				t.Errorf("content copied out: %q %v", b, err)
			}

			// Ownership: root by default, the source's with -a.
			ok(t, "cp", "-a", file, name+":/tmp/kept.txt")
			owners := tarOwners(t, []byte(ok(t, "cp", name+":/tmp", "-")))
			if owners["tmp/hello.txt"] != [2]int{0, 0} {
				t.Errorf("cp without -a: owner %v, want root", owners["tmp/hello.txt"])
			}
			if owners["tmp/kept.txt"] != [2]int{1234, 1234} {
				t.Errorf("cp -a: owner %v, want 1234:1234", owners["tmp/kept.txt"])
			}
		})
	}
}

func tarOwners(t *testing.T, data []byte) map[string][2]int {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	out := map[string][2]int{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("read tar: %v", err)
		}
		out[strings.TrimSuffix(hdr.Name, "/")] = [2]int{hdr.Uid, hdr.Gid}
	}
}

func TestCpTarStreams(t *testing.T) {
	newCtr(t, "cp-tar", false)
	in := mkTar(t, []*tar.Header{
		{Name: "x/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "x/a.txt", Typeflag: tar.TypeReg, Mode: 0o644, Uid: 42},
	}, []string{"", "from stdin"})
	r := berthStdin(t, in, "container", "cp", "-", "cp-tar:/tmp")
	if r.code != 0 {
		t.Fatalf("cp - : %v", r)
	}
	out := ok(t, "cp", "cp-tar:/tmp/x", "-")
	got := tarNames(t, []byte(out))
	if got["x/a.txt"] != "from stdin" {
		t.Errorf("tar out of /tmp/x: %v", got)
	}
	if o := tarOwners(t, []byte(out))["x/a.txt"]; o != [2]int{0, 0} {
		t.Errorf("tar from stdin without -a: owner %v, want root", o)
	}
	// A tar stream to a file destination is refused.
	r = berthStdin(t, in, "cp", "-", "cp-tar:/bin/busybox")
	if r.code != 1 || !strings.Contains(r.stderr, "not a directory") {
		t.Errorf("tar to a file: %v", r)
	}
}

// TestCpSymlinkEscape: symlinks in the container resolve inside its
// rootfs, and a hostile tar cannot write outside it.
func TestCpSymlinkEscape(t *testing.T) {
	newCtr(t, "cp-escape", true)
	ok(t, "exec", "cp-escape", "sh", "-c", "ln -s / /escape && ln -s ../../../../.. /tmp/up && mkdir /target && echo inside > /target/marker")
	host := t.TempDir()
	// The host has its own /target? Make sure a leak would be visible:
	// copy through the links and check the container's file was used.
	out := filepath.Join(host, "m1")
	ok(t, "cp", "cp-escape:/escape/target/marker", out)
	if b, _ := os.ReadFile(out); string(b) != "inside\n" {
		t.Errorf("cp through /escape read %q", b)
	}
	out2 := filepath.Join(host, "m2")
	ok(t, "cp", "cp-escape:/tmp/up/target/marker", out2)
	if b, _ := os.ReadFile(out2); string(b) != "inside\n" {
		t.Errorf("cp through ../ link read %q", b)
	}
	// Copy in through the links: lands in the container's /tmp.
	canary := "berth-cp-escape-canary-" + filepath.Base(host)
	src := filepath.Join(host, canary)
	os.WriteFile(src, []byte("x"), 0o644)
	ok(t, "cp", src, "cp-escape:/escape/tmp/")
	ok(t, "cp", src, "cp-escape:/tmp/up/tmp/"+canary+"-2")
	if _, err := os.Stat("/tmp/" + canary); err == nil {
		os.Remove("/tmp/" + canary)
		t.Fatal("cp through /escape wrote to the host's /tmp")
	}
	if _, err := os.Stat("/tmp/" + canary + "-2"); err == nil {
		os.Remove("/tmp/" + canary + "-2")
		t.Fatal("cp through ../ link wrote to the host's /tmp")
	}
	if got := strings.TrimSpace(ok(t, "exec", "cp-escape", "cat", "/tmp/"+canary, "/tmp/"+canary+"-2")); got != "xx" {
		t.Errorf("files copied through links: %q", got)
	}
	// A hostile tar: a ../ entry is refused, an absolute symlink then a
	// file through it stays inside.
	bad := mkTar(t, []*tar.Header{{Name: "../../../../tmp/" + canary + "-3", Typeflag: tar.TypeReg, Mode: 0o644}}, []string{"x"})
	if r := berthStdin(t, bad, "cp", "-", "cp-escape:/tmp"); r.code == 0 {
		t.Errorf("tar with ../ entry accepted: %v", r)
	}
	evil := mkTar(t, []*tar.Header{
		{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/tmp"},
		{Name: "l/" + canary + "-4", Typeflag: tar.TypeReg, Mode: 0o644},
	}, []string{"", "y"})
	berthStdin(t, evil, "cp", "-", "cp-escape:/root")
	for _, n := range []string{"-3", "-4"} {
		if _, err := os.Stat("/tmp/" + canary + n); err == nil {
			os.Remove("/tmp/" + canary + n)
			t.Errorf("hostile tar wrote /tmp/%s%s on the host", canary, n)
		}
	}
}

func TestCpVolume(t *testing.T) {
	host := t.TempDir()
	cleanupContainer(t, "cp-vol")
	ok(t, "create", "--name", "cp-vol", "-v", host+":/data", "busybox", "true")
	src := filepath.Join(t.TempDir(), "v.txt")
	os.WriteFile(src, []byte("vol"), 0o644)
	ok(t, "cp", src, "cp-vol:/data/")
	if b, err := os.ReadFile(filepath.Join(host, "v.txt")); err != nil || string(b) != "vol" {
		t.Errorf("cp into a bind mount: %q %v", b, err)
	}
}

func TestCpErrors(t *testing.T) {
	newCtr(t, "cp-err", false)
	dst := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cp", "cp-err:/nope", dst}, "Could not find the file /nope in container cp-err"},
		{[]string{"cp", "no-such-ctr:/etc/passwd", dst}, "no such container: no-such-ctr"},
		{[]string{"cp", dst, dst}, "must specify at least one container source"},
		{[]string{"cp", "a:/x", "b:/y"}, "copying between containers is not supported"},
		{[]string{"cp", filepath.Join(dst, "missing"), "cp-err:/tmp"}, "could not find the file"},
	} {
		r := berth(t, tc.args...)
		if r.code != 1 || !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("berth %v: want exit 1 and one line with %q, got %v", tc.args, tc.want, r)
		}
	}
}

func TestDiff(t *testing.T) {
	newCtr(t, "diff-c", false, "sh", "-c", "mkdir /etc/newdir && echo x > /etc/newdir/f && rm /bin/ls && echo y >> /etc/passwd")
	ok(t, "start", "-a", "diff-c")
	got := strings.Split(strings.TrimSpace(ok(t, "diff", "diff-c")), "\n")
	want := []string{"C /bin", "D /bin/ls", "C /etc", "A /etc/newdir", "A /etc/newdir/f", "C /etc/passwd"}
	if !slices.Equal(got, want) {
		t.Errorf("diff:\n got %q\nwant %q", got, want)
	}
	// A container that changed nothing has no changes: what the runtime
	// mounts over the rootfs is not the container's.
	newCtr(t, "diff-none", false, "true")
	ok(t, "start", "-a", "diff-none")
	if got := ok(t, "diff", "diff-none"); got != "" {
		t.Errorf("diff of a container that changed nothing: %q", got)
	}
	// A running container's changes show at once.
	newCtr(t, "diff-run", true)
	ok(t, "exec", "diff-run", "touch", "/root/live")
	if got := ok(t, "diff", "diff-run"); got != "C /root\nA /root/live\n" {
		t.Errorf("diff of a running container: %q", got)
	}
	if r := berth(t, "container", "diff", "no-such-ctr"); r.code != 1 {
		t.Errorf("diff of a missing container: %v", r)
	}
}

func TestExport(t *testing.T) {
	newCtr(t, "export-c", false, "sh", "-c", "echo exported > /root/new-file")
	ok(t, "start", "-a", "export-c")
	names := tarNames(t, []byte(ok(t, "export", "export-c")))
	if _, ok := names["bin/busybox"]; !ok {
		t.Errorf("export has no bin/busybox (%d entries)", len(names))
	}
	if names["root/new-file"] != "exported\n" {
		t.Errorf("export: root/new-file = %q", names["root/new-file"])
	}
	out := filepath.Join(t.TempDir(), "c.tar")
	ok(t, "container", "export", "-o", out, "export-c")
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if tarNames(t, data)["root/new-file"] != "exported\n" {
		t.Error("export -o: root/new-file missing")
	}
	if r := berth(t, "export", "no-such-ctr"); r.code != 1 || !strings.Contains(r.stderr, "no such container") {
		t.Errorf("export of a missing container: %v", r)
	}
}

func TestCommit(t *testing.T) {
	newCtr(t, "commit-c", true, "sh", "-c", "echo committed > /the-file; sleep 300")
	eventually(t, 10e9, "file written", func() bool {
		return berth(t, "exec", "commit-c", "cat", "/the-file").code == 0
	})
	t.Cleanup(func() { berthCmd("rmi", "-f", "commit-img:1").Run() })
	id := strings.TrimSpace(ok(t, "commit", "-a", "me", "-m", "a message", "-c", "ENV FOO=bar", "commit-c", "commit-img:1"))
	if !strings.HasPrefix(id, "sha256:") || len(id) != 71 {
		t.Errorf("commit printed %q", id)
	}
	if s := status(t, "commit-c"); s != "running" {
		t.Errorf("after commit with pause the container is %q", s)
	}
	if got := ok(t, "run", "--rm", "commit-img:1", "cat", "/the-file"); got != "committed\n" {
		t.Errorf("file in committed image: %q", got)
	}
	if got := ok(t, "run", "--rm", "commit-img:1", "sh", "-c", "echo $FOO"); got != "bar\n" {
		t.Errorf("--change ENV: %q", got)
	}
	// A stopped container, without a name: a dangling image, its
	// command changed by -c, runnable by ID.
	newCtr(t, "commit-stopped", false, "sh", "-c", "echo again > /root/f")
	ok(t, "start", "-a", "commit-stopped")
	id2 := strings.TrimSpace(ok(t, "container", "commit", "-c", `CMD ["cat", "/root/f"]`, "commit-stopped"))
	t.Cleanup(func() { berthCmd("rmi", "-f", id2).Run() })
	if got := ok(t, "run", "--rm", id2); got != "again\n" {
		t.Errorf("run of committed image %s: %q", id2, got)
	}
	// The new layer holds the container's change only, not the mount
	// points the runtime made: a container of the image starts clean.
	newCtr(t, "commit-child", false, "true")
	cleanupContainer(t, "commit-child")
	ok(t, "rm", "commit-child")
	ok(t, "create", "--name", "commit-child", id2)
	if got := ok(t, "diff", "commit-child"); got != "" {
		t.Errorf("diff of a new container of the committed image: %q", got)
	}
	names := tarNames(t, []byte(ok(t, "export", "commit-child")))
	if names["root/f"] != "again\n" {
		t.Errorf("export of a container of the committed image: root/f = %q", names["root/f"])
	}
	newCtr(t, "commit-base", false, "true")
	baseNames := tarNames(t, []byte(ok(t, "export", "commit-base")))
	for _, p := range []string{"etc/hostname", "etc/hosts", "etc/resolv.conf"} {
		_, inBase := baseNames[p]
		if _, inCommitted := names[p]; inCommitted != inBase {
			t.Errorf("%s: in the base image %v, in the committed one %v", p, inBase, inCommitted)
		}
	}
	if r := berth(t, "commit", "no-such-ctr"); r.code != 1 {
		t.Errorf("commit of a missing container: %v", r)
	}
}
