package runtime_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestBadConfig: each broken config makes create (and run) exit non-zero
// with one line naming the field, and leaves nothing behind.
func TestBadConfig(t *testing.T) {
	r := newRT(t)
	bad := `{"ociVersion": "1.0.2", "process": {"args": ["sh"],, "cwd": "/"}}`
	var syn *json.SyntaxError
	if err := json.Unmarshal([]byte(bad), new(any)); !errors.As(err, &syn) {
		t.Fatalf("test config is not malformed: %v", err)
	}
	errno := uint(1)
	for _, tc := range []struct {
		name string
		edit func(*specs.Spec)
		raw  string // config.json as is, instead of the edited template
		want []string
	}{{
		name: "malformed JSON",
		raw:  bad,
		want: []string{"config.json", "byte " + strconv.FormatInt(syn.Offset, 10)},
	}, {
		name: "unknown namespace",
		edit: func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: "bogus"})
		},
		want: []string{"linux.namespaces[6]", "bogus"},
	}, {
		name: "unknown capability",
		edit: func(s *specs.Spec) {
			s.Process.Capabilities.Bounding = append(s.Process.Capabilities.Bounding, "CAP_BOGUS")
		},
		want: []string{"process.capabilities.bounding", "CAP_BOGUS"},
	}, {
		name: "unknown seccomp action",
		edit: func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_BOGUS"}
		},
		want: []string{"linux.seccomp.defaultAction", "SCMP_ACT_BOGUS"},
	}, {
		name: "unknown syscall",
		edit: func(s *specs.Spec) {
			s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"getpid", "no_such_syscall"}, Action: specs.ActErrno, ErrnoRet: &errno}}}
		},
		want: []string{"linux.seccomp.syscalls[0]", "no_such_syscall"},
	}, {
		name: "missing rootfs",
		edit: func(s *specs.Spec) { s.Root.Path = "/nonexistent/rootfs" },
		want: []string{"root.path", "/nonexistent/rootfs"},
	}, {
		name: "relative mount destination",
		edit: func(s *specs.Spec) {
			s.Mounts = append(s.Mounts, specs.Mount{Destination: "relative", Type: "tmpfs", Source: "tmpfs"})
		},
		want: []string{"mounts[7]", "relative"},
	}, {
		name: "sysctl of the host",
		edit: func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"vm.swappiness": "1"} },
		want: []string{"linux.sysctl", "vm.swappiness"},
	}, {
		name: "missing executable",
		edit: func(s *specs.Spec) { s.Process.Args = []string{"/bin/no-such-program"} },
		want: []string{"/bin/no-such-program"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			r := &rt{t: t, root: r.root, bin: r.bin, out: r.out}
			var bundle string
			if tc.raw != "" {
				bundle = t.TempDir()
				if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(tc.raw), 0o644); err != nil {
					t.Fatal(err)
				}
			} else {
				s := newSpec(t)
				tc.edit(s)
				bundle = writeBundle(t, s)
			}
			for _, cmd := range []string{"create", "run"} {
				id := r.newID()
				res := r.fails(cmd, "--bundle", bundle, id)
				t.Logf("%s: %s", cmd, res.stderr)
				oneLine(t, res, tc.want...)
				r.nothingLeft(id, bundle)
			}
		})
	}
	if out := r.ok("list", "-q").stdout; out != "" {
		t.Errorf("list after failed creates: %q", out)
	}
	ents, _ := os.ReadDir(r.root)
	for _, e := range ents {
		if e.Name() != ".empty" {
			t.Errorf("left in --root: %s", e.Name())
		}
	}
}
