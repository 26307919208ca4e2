package runtime_test

import (
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// TestProcess checks each process field of config.json from inside the
// container.
func TestProcess(t *testing.T) {
	r := newRT(t)
	for _, tc := range []struct {
		name   string
		edit   func(*specs.Spec)
		script string
		want   string
	}{{
		name: "args env cwd",
		edit: func(s *specs.Spec) {
			s.Process.Env = append(s.Process.Env, "FOO=bar baz")
			s.Process.Cwd = "/tmp"
		},
		script: `echo "$FOO"; pwd; echo "$0 $#"`,
		want:   "bar baz\n/tmp\nsh 0\n",
	}, {
		name: "user",
		edit: func(s *specs.Spec) {
			s.Process.User = specs.User{UID: 1000, GID: 1001, AdditionalGids: []uint32{2000, 3000}}
		},
		script: `id; id -u; id -g; grep -E '^(Uid|Gid|Groups):' /proc/self/status`,
		want:   "uid=1000 gid=1001 groups=2000,3000\n1000\n1001\nUid:\t1000\t1000\t1000\t1000\nGid:\t1001\t1001\t1001\t1001\nGroups:\t2000 3000 \n",
	}, {
		name:   "umask",
		edit:   func(s *specs.Spec) { u := uint32(0o027); s.Process.User.Umask = &u },
		script: `umask`,
		want:   "0027\n",
	}, {
		name: "rlimits",
		edit: func(s *specs.Spec) {
			s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 512, Hard: 1024}}
		},
		script: `ulimit -n; ulimit -Hn; grep 'Max open files' /proc/self/limits | tr -s ' '`,
		want:   "512\n1024\nMax open files 512 1024 files \n",
	}, {
		name:   "noNewPrivileges true",
		edit:   func(s *specs.Spec) { s.Process.NoNewPrivileges = true },
		script: `grep NoNewPrivs /proc/self/status`,
		want:   "NoNewPrivs:\t1\n",
	}, {
		name:   "noNewPrivileges false",
		edit:   func(s *specs.Spec) { s.Process.NoNewPrivileges = false },
		script: `grep NoNewPrivs /proc/self/status`,
		want:   "NoNewPrivs:\t0\n",
	}, {
		name: "capabilities",
		edit: func(s *specs.Spec) {
			c := []string{"CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"} // bits 0, 5, 13
			s.Process.Capabilities = &specs.LinuxCapabilities{Bounding: c, Effective: c, Permitted: c}
		},
		script: `grep -E '^Cap(Eff|Prm|Bnd|Inh|Amb):' /proc/self/status`,
		want: "CapInh:\t0000000000000000\nCapPrm:\t0000000000002021\nCapEff:\t0000000000002021\n" +
			"CapBnd:\t0000000000002021\nCapAmb:\t0000000000000000\n",
	}, {
		name:   "oomScoreAdj",
		edit:   func(s *specs.Spec) { s.Process.OOMScoreAdj = intPtr(500) },
		script: `cat /proc/self/oom_score_adj`,
		want:   "500\n",
	}, {
		name: "hostname domainname",
		edit: func(s *specs.Spec) {
			s.Hostname = "e2e-host"
			s.Domainname = "e2e.example"
		},
		script: `hostname; cat /proc/sys/kernel/domainname`,
		want:   "e2e-host\ne2e.example\n",
	}, {
		name: "sysctl",
		edit: func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmax": "123456789"}
		},
		script: `cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax`,
		want:   "1\n123456789\n",
	}, {
		// The same without the template's read-only /proc/sys: tells a
		// failure to write sysctls at all from writing them too late.
		name: "sysctl without readonlyPaths",
		edit: func(s *specs.Spec) {
			s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmax": "123456789"}
			s.Linux.ReadonlyPaths = nil
		},
		script: `cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax`,
		want:   "1\n123456789\n",
	}, {
		name:   "terminal false",
		script: `if [ -t 0 ] || [ -t 1 ] || [ -t 2 ]; then echo tty; else echo notty; fi; readlink /proc/self/fd/0`,
		want:   "notty\n/dev/null\n",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			r := &rt{t: t, root: r.root, bin: r.bin, out: r.out}
			s := newSpec(t)
			if tc.edit != nil {
				tc.edit(s)
			}
			if got := r.sh(s, tc.script); got != tc.want {
				t.Errorf("got:\n%q\nwant:\n%q", got, tc.want)
			}
		})
	}
}

// TestSysctlStaysInside: the namespaced sysctls set in a container do not
// change the host's values.
func TestSysctlStaysInside(t *testing.T) {
	r := newRT(t)
	fwd := readFile(t, "/proc/sys/net/ipv4/ip_forward")
	shm := readFile(t, "/proc/sys/kernel/shmmax")
	s := newSpec(t)
	want := "0"
	if strings.TrimSpace(fwd) == "0" {
		want = "1"
	}
	s.Linux.Sysctl = map[string]string{"net.ipv4.ip_forward": want, "kernel.shmmax": "4242"}
	if got := r.sh(s, "cat /proc/sys/net/ipv4/ip_forward"); strings.TrimSpace(got) != want {
		t.Fatalf("ip_forward inside = %q, want %s", got, want)
	}
	if got := readFile(t, "/proc/sys/net/ipv4/ip_forward"); got != fwd {
		t.Errorf("host ip_forward changed from %q to %q", fwd, got)
	}
	if got := readFile(t, "/proc/sys/kernel/shmmax"); got != shm {
		t.Errorf("host shmmax changed from %q to %q", shm, got)
	}
}

// TestTerminalNeedsConsoleSocket: process.terminal without a console
// socket is refused before anything is made.
func TestTerminalNeedsConsoleSocket(t *testing.T) {
	r := newRT(t)
	s := newSpec(t)
	s.Process.Terminal = true
	bundle := writeBundle(t, s)
	id := r.newID()
	oneLine(t, r.fails("create", "--bundle", bundle, id), "process.terminal", "--console-socket")
	r.nothingLeft(id, bundle)
}
