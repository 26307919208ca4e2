package engine

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// flagCase is one `berth run --rm <args> busybox <cmd>` and what it must
// print. cmd defaults to sh -c script.
type flagCase struct {
	name   string
	args   []string // flags before the image
	image  string   // "busybox" unless set
	cmd    []string // overrides script
	script string   // run with sh -c
	code   int      // expected exit code
	stdout string   // exact stdout, when want and match are empty
	want   []string // substrings of stdout
	stderr string   // substring of stderr (lower case)
	match  string   // regexp stdout must match
	check  func(t *testing.T, r result)
	// anyCode leaves the exit code to check.
	anyCode bool
	// skip names a reported berth bug this case hits.
	skip string
}

// runFlagCases runs each case as a subtest of t, checking that nothing of
// it is left behind.
func runFlagCases(t *testing.T, cases []flagCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.skip != "" {
				t.Skip("bug: " + tc.skip)
			}
			before := psNames(t)
			args := append([]string{"run", "--rm"}, tc.args...)
			img := tc.image
			if img == "" {
				img = "busybox"
			}
			args = append(args, img)
			switch {
			case tc.cmd != nil:
				args = append(args, tc.cmd...)
			case tc.script != "":
				args = append(args, "sh", "-c", tc.script)
			}
			r := berth(t, args...)
			if !tc.anyCode && r.code != tc.code {
				t.Fatalf("berth %q: want exit %d, got %v", args, tc.code, r)
			}
			if tc.stderr != "" && !strings.Contains(strings.ToLower(r.stderr), tc.stderr) {
				t.Errorf("stderr lacks %q: %v", tc.stderr, r)
			}
			if tc.want == nil && tc.match == "" && tc.check == nil && r.stdout != tc.stdout {
				t.Errorf("stdout %q, want %q (%v)", r.stdout, tc.stdout, r)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stdout, w) {
					t.Errorf("stdout lacks %q: %v", w, r)
				}
			}
			if tc.match != "" && !regexp.MustCompile(tc.match).MatchString(r.stdout) {
				t.Errorf("stdout does not match %s: %v", tc.match, r)
			}
			if tc.check != nil {
				tc.check(t, r)
			}
			for _, n := range psNames(t) {
				if !slices.Contains(before, n) {
					t.Errorf("container %s left behind", n)
					berth(t, "rm", "-f", n)
				}
			}
		})
	}
}

// writeFile writes a file in the test's temporary directory.
func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// hostStatus returns a field of the test process's /proc/self/status.
func hostStatus(t *testing.T, key string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no %s in /proc/self/status", key)
	return ""
}

func TestFlagEnv(t *testing.T) {
	t.Setenv("BERTH_FT_HOST", "from-host")
	t.Setenv("BERTH_FT_FILEHOST", "file-host")
	envFile := writeFile(t, "env.list", "# a comment\n\nFILE_A=one\nFILE_B=two words\nBERTH_FT_FILEHOST\nBERTH_FT_UNSET_IN_FILE\n")
	runFlagCases(t, []flagCase{
		{name: "KEY=V", args: []string{"-e", "A=1", "--env", "B=x=y"}, script: `echo "$A|$B"`, stdout: "1|x=y\n"},
		{name: "KEY from host", args: []string{"-e", "BERTH_FT_HOST"}, script: `echo "$BERTH_FT_HOST"`, stdout: "from-host\n"},
		{name: "KEY unset on host", args: []string{"-e", "BERTH_FT_NOT_SET_ANYWHERE"}, script: `env | grep -c BERTH_FT_NOT_SET_ANYWHERE`, code: 1, stdout: "0\n"},
		{name: "env-file", args: []string{"--env-file", envFile}, script: `echo "$FILE_A|$FILE_B|$BERTH_FT_FILEHOST"; env | grep -c BERTH_FT_UNSET_IN_FILE`, code: 1, stdout: "one|two words|file-host\n0\n"},
		{name: "-e overrides env-file", args: []string{"--env-file", envFile, "-e", "FILE_A=cli"}, script: `echo "$FILE_A"`, stdout: "cli\n"},
		{name: "image ENV kept", args: []string{"-e", "X=1"}, script: `echo "$PATH"`, stdout: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"},
		{name: "image ENV overridden", args: []string{"-e", "PATH=/bin"}, script: `echo "$PATH"`, stdout: "/bin\n"},
		{name: "HOSTNAME", script: `[ "$HOSTNAME" = "$(hostname)" ] && echo "$HOSTNAME"`, match: `^[0-9a-f]{12}\n$`},
		{name: "HOSTNAME with -h", args: []string{"-h", "envhost"}, script: `echo "$HOSTNAME"`, stdout: "envhost\n"},
		{name: "HOME", script: `echo "$HOME"`, stdout: "/root\n"},
		{name: "missing env-file", args: []string{"--env-file", "/nonexistent/env.list"}, script: "true", code: 125, stderr: "/nonexistent/env.list"},
	})
}

func TestFlagWorkdirUser(t *testing.T) {
	runFlagCases(t, []flagCase{
		{name: "workdir", args: []string{"-w", "/etc"}, script: "pwd", stdout: "/etc\n"},
		{name: "workdir default", script: "pwd", stdout: "/\n"},
		// docker creates a missing working directory.
		{name: "workdir created", args: []string{"-w", "/no/such/dir"}, script: "pwd; [ -d /no/such/dir ] && echo dir", stdout: "/no/such/dir\ndir\n"},
		{name: "workdir relative", args: []string{"-w", "rel"}, script: "pwd", code: 125, stderr: "rel"},
		{name: "uid", args: []string{"-u", "1000"}, script: "id -u; id -g", stdout: "1000\n0\n"},
		{name: "uid:gid", args: []string{"-u", "1000:1001"}, script: "id -u; id -g", stdout: "1000\n1001\n"},
		{name: "root", args: []string{"-u", "root"}, script: "id -u; id -g", stdout: "0\n0\n"},
		{name: "name", args: []string{"--user", "nobody"}, script: "id -u; id -g; echo $HOME", stdout: "65534\n65534\n/home\n"},
		{name: "name:group", args: []string{"--user", "nobody:root"}, script: "id -u; id -g", stdout: "65534\n0\n"},
		{name: "non-root cannot write /etc", args: []string{"-u", "1000"}, script: "touch /etc/x", code: 1},
		{name: "unknown user", args: []string{"-u", "nosuchuser"}, script: "true", check: func(t *testing.T, r result) {
			if r.code != 125 && r.code != 126 {
				t.Errorf("want exit 125 or 126, got %v", r)
			}
			if !strings.Contains(r.stderr, "nosuchuser") {
				t.Errorf("the error does not name the user: %v", r)
			}
		}, anyCode: true},
	})
}

func TestFlagEntrypointHostname(t *testing.T) {
	runFlagCases(t, []flagCase{
		{name: "entrypoint", args: []string{"--entrypoint", "echo"}, cmd: []string{"hello", "world"}, stdout: "hello world\n"},
		{name: "entrypoint no cmd", args: []string{"--entrypoint", "/bin/pwd"}, cmd: []string{}, stdout: "/\n"},
		{name: "entrypoint empty", args: []string{"--entrypoint", ""}, cmd: []string{"echo", "hi"}, stdout: "hi\n"},
		{name: "hostname", args: []string{"-h", "myhost"}, script: "hostname; cat /etc/hostname", stdout: "myhost\nmyhost\n"},
		{name: "hostname long", args: []string{"--hostname", "box.example.com"}, script: "hostname", stdout: "box.example.com\n"},
		{name: "default hostname", script: "hostname; cat /etc/hostname", match: `^([0-9a-f]{12})\n([0-9a-f]{12})\n$`, check: func(t *testing.T, r result) {
			if l := strings.Fields(r.stdout); len(l) != 2 || l[0] != l[1] {
				t.Errorf("hostname and /etc/hostname differ: %q", r.stdout)
			}
		}},
		{name: "add-host", args: []string{"--add-host", "foo.test:10.1.2.3", "--add-host", "bar:fd00::1"}, script: "cat /etc/hosts", match: `(?m)^10\.1\.2\.3\s+foo\.test$(?s).*^fd00::1\s+bar$`},
		{name: "add-host bad", args: []string{"--add-host", "nocolon"}, script: "true", code: 125, stderr: "nocolon"},
		{name: "dns", args: []string{"--dns", "9.9.9.9", "--dns-search", "example.test", "--dns-option", "ndots:3"}, script: "cat /etc/resolv.conf", want: []string{"nameserver 9.9.9.9", "search example.test", "options ndots:3"}, check: func(t *testing.T, r result) {
			if strings.Count(r.stdout, "nameserver") != 1 {
				t.Errorf("--dns must replace the host's nameservers: %q", r.stdout)
			}
		}},
		{name: "etc files present", script: "[ -s /etc/resolv.conf ] && grep -q nameserver /etc/resolv.conf && grep localhost /etc/hosts | head -1", match: `^127\.0\.0\.1\s+localhost`},
	})
}

func TestFlagLabels(t *testing.T) {
	cleanupContainer(t, "labelled")
	lf := writeFile(t, "labels", "from=file\n")
	ok(t, "run", "--name", "labelled", "-l", "a=b", "--label", "empty=", "--label", "bare", "--label-file", lf, "busybox", "true")
	labels, _ := field(inspect(t, "labelled"), "Config", "Labels").(map[string]any)
	want := map[string]any{"a": "b", "empty": "", "bare": "", "from": "file"}
	for k, v := range want {
		if labels[k] != v {
			t.Errorf("label %s = %v, want %q (all: %v)", k, labels[k], v, labels)
		}
	}
	if got := ok(t, "ps", "-a", "--filter", "label=a=b", "--format", "{{.Names}}"); got != "labelled\n" {
		t.Errorf("ps --filter label=a=b: %q", got)
	}
}

func TestFlagFilesystem(t *testing.T) {
	runFlagCases(t, []flagCase{
		{name: "writable by default", script: "touch /x && echo ok", stdout: "ok\n"},
		{name: "read-only root", args: []string{"--read-only"}, script: "touch /x", code: 1, check: func(t *testing.T, r result) {
			if !strings.Contains(r.stderr, "Read-only file system") {
				t.Errorf("touch /x: %v", r)
			}
		}},
		{name: "read-only /tmp", args: []string{"--read-only"}, script: "touch /tmp/x", code: 1},
		{name: "read-only with tmpfs /tmp", args: []string{"--read-only", "--tmpfs", "/tmp"}, script: "touch /tmp/x && echo ok; touch /y 2>/dev/null || echo ro", stdout: "ok\nro\n"},
		// the etc files stay writable under --read-only, as in docker? No:
		// docker makes them read-only too; only check they are readable.
		{name: "read-only etc readable", args: []string{"--read-only"}, script: "cat /etc/hostname >/dev/null && echo ok", stdout: "ok\n"},
		{name: "tmpfs", args: []string{"--tmpfs", "/mnt/scratch:size=1m,mode=1770"}, script: "grep ' /mnt/scratch ' /proc/mounts; stat -c %a /mnt/scratch", match: `^tmpfs /mnt/scratch tmpfs \S*size=1024k\S*.*\n1770\n$`},
		{name: "tmpfs noexec default", args: []string{"--tmpfs", "/run/x"}, script: "grep ' /run/x ' /proc/mounts", match: `^tmpfs /run/x tmpfs \S*(nosuid\S*nodev\S*noexec|noexec)`},
		// This host's kernel has no /proc/kcore; /proc/keys and
		// /proc/timer_list are masked with /dev/null, /proc/acpi with an
		// empty read-only tmpfs.
		{name: "masked keys", script: "stat -c '%F %t,%T' /proc/keys; wc -c < /proc/keys", match: `^character special file 1,3\n\s*0\n$`},
		{name: "masked timer_list", script: "stat -c '%t,%T' /proc/timer_list", stdout: "1,3\n"},
		{name: "masked acpi", script: "ls -A /proc/acpi | wc -l; touch /proc/acpi/x", code: 1, match: `^\s*0\n$`},
		{name: "proc/sys read-only", script: "echo x > /proc/sys/kernel/domainname", code: 1, check: func(t *testing.T, r result) {
			if !strings.Contains(r.stderr, "Read-only file system") {
				t.Errorf("write to /proc/sys: %v", r)
			}
		}},
		{name: "sysrq-trigger read-only", script: "echo h > /proc/sysrq-trigger", code: 1},
		{name: "shm default 64M", script: "df -k /dev/shm | tail -1", match: `^\S+\s+65536\s`},
		{name: "shm-size", args: []string{"--shm-size", "16m"}, script: "df -k /dev/shm | tail -1", match: `^\S+\s+16384\s`},
		{name: "device", args: []string{"--device", "/dev/null:/dev/mynull"}, script: "[ -c /dev/mynull ] && echo x > /dev/mynull && stat -c '%t,%T' /dev/mynull", stdout: "1,3\n"},
		// /dev/mem is not in the default device rules: mknod is allowed,
		// opening is not.
		{name: "device not allowed without flag", script: "mknod /tmp/mem c 1 1 && head -c1 /tmp/mem", code: 1, check: func(t *testing.T, r result) {
			if !strings.Contains(r.stderr, "Operation not permitted") {
				t.Errorf("open of /dev/mem's node: %v", r)
			}
		}},
		// docker's CLI maps "no such file or directory" to 127, berth too.
		{name: "device missing", args: []string{"--device", "/dev/no-such-device"}, script: "true", anyCode: true, stderr: "/dev/no-such-device", check: func(t *testing.T, r result) {
			if r.code != 125 && r.code != 127 {
				t.Errorf("want exit 125 or 127: %v", r)
			}
		}},
	})
}

// cg is the shell to read a cgroup v1 file of the container's own cgroup,
// which berth mounts at the root of each hierarchy.
func cg(sub, file string) string { return "cat /sys/fs/cgroup/" + sub + "/" + file }

func TestFlagResources(t *testing.T) {
	// berth has no CAP_SYS_RESOURCE here: a ulimit above its own hard
	// limit cannot be set.
	var nofile syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile); err != nil {
		t.Fatal(err)
	}
	hard := strconv.FormatUint(nofile.Max, 10)
	above := strconv.FormatUint(nofile.Max+10000, 10)
	runFlagCases(t, []flagCase{
		{name: "memory", args: []string{"--memory", "64m"}, script: cg("memory", "memory.limit_in_bytes"), stdout: "67108864\n"},
		{name: "memory-swap", args: []string{"--memory", "64m", "--memory-swap", "128m"}, script: cg("memory", "memory.memsw.limit_in_bytes"), stdout: "134217728\n"},
		{name: "memory-swap default twice", args: []string{"--memory", "32m"}, script: cg("memory", "memory.memsw.limit_in_bytes"), stdout: "67108864\n"},
		{name: "memory-swap below memory", args: []string{"--memory", "64m", "--memory-swap", "32m"}, script: "true", code: 125, stderr: "swap"},
		{name: "memory unlimited", script: cg("memory", "memory.limit_in_bytes"), match: `^9223372036854\d+\n$`},
		{name: "cpus", args: []string{"--cpus", "0.5"}, script: cg("cpu", "cpu.cfs_quota_us") + "; " + cg("cpu", "cpu.cfs_period_us"), stdout: "50000\n100000\n"},
		{name: "cpu-quota", args: []string{"--cpu-period", "50000", "--cpu-quota", "25000"}, script: cg("cpu", "cpu.cfs_quota_us") + "; " + cg("cpu", "cpu.cfs_period_us"), stdout: "25000\n50000\n"},
		{name: "cpu-shares", args: []string{"--cpu-shares", "512"}, script: cg("cpu", "cpu.shares"), stdout: "512\n"},
		{name: "cpuset-cpus", args: []string{"--cpuset-cpus", "0"}, script: cg("cpuset", "cpuset.cpus") + "; grep Cpus_allowed_list /proc/self/status", match: `^0\nCpus_allowed_list:\s+0\n$`},
		{name: "cpuset-cpus bad", args: []string{"--cpuset-cpus", "99"}, script: "true", code: 125, stderr: "99"},
		{name: "pids-limit", args: []string{"--pids-limit", "10"}, script: cg("pids", "pids.max"), stdout: "10\n"},
		{name: "pids-limit enforced", args: []string{"--pids-limit", "10"},
			script: "i=0; while [ $i -lt 20 ]; do sleep 30 & i=$((i+1)); done; echo started", anyCode: true,
			check: func(t *testing.T, r result) {
				if r.code == 0 || r.stdout != "" || !strings.Contains(r.stderr, "can't fork") {
					t.Errorf("20 processes under --pids-limit 10 did not fail to fork: %v", r)
				}
			}},
		{name: "pids-limit allows", args: []string{"--pids-limit", "30"},
			script: "i=0; while [ $i -lt 20 ]; do sleep 30 & i=$((i+1)); done; echo started", stdout: "started\n"},
		{name: "pids-limit small", args: []string{"--pids-limit", "2"}, cmd: []string{"sh", "-c", "echo ok"}, stdout: "ok\n"},
		{name: "ulimit nofile", args: []string{"--ulimit", "nofile=1024:2048"}, script: "ulimit -n; ulimit -Hn", stdout: "1024\n2048\n"},
		{name: "ulimit nproc soft only", args: []string{"--ulimit", "nproc=512"}, script: "ulimit -u; ulimit -Hu", stdout: "512\n512\n"},
		{name: "ulimit above hard limit", args: []string{"--ulimit", "nofile=" + above + ":" + above}, script: "true", code: 125, stderr: "nofile", check: func(t *testing.T, r result) {
			if !strings.Contains(r.stderr, above) || !strings.Contains(r.stderr, hard) {
				t.Errorf("the error does not name the limit %s and the hard limit %s: %q", above, hard, r.stderr)
			}
			if strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
				t.Errorf("want one line of error: %q", r.stderr)
			}
		}},
		{name: "ulimit bad", args: []string{"--ulimit", "nofile=abc"}, script: "true", code: 125, stderr: "nofile"},
		{name: "oom-score-adj", args: []string{"--oom-score-adj", "500"}, script: "cat /proc/self/oom_score_adj", stdout: "500\n"},
		// docker's CLI maps "permission denied" to 126, berth too.
		{name: "oom-score-adj negative", args: []string{"--oom-score-adj", "-500"}, script: "true", anyCode: true, stderr: "cap_sys_resource", check: func(t *testing.T, r result) {
			if r.code != 125 && r.code != 126 || !strings.Contains(r.stderr, "oom_score_adj") {
				t.Errorf("want exit 125 or 126 naming oom_score_adj: %v", r)
			}
		}},
	})
}

func TestFlagResourcesInspect(t *testing.T) {
	cleanupContainer(t, "limited")
	ok(t, "create", "--name", "limited", "--memory", "64m", "--memory-swap", "128m", "--cpus", "1.5",
		"--cpu-shares", "256", "--pids-limit", "42", "--shm-size", "8m", "--stop-timeout", "3", "--stop-signal", "SIGUSR1", "busybox", "true")
	doc := inspect(t, "limited")
	for _, c := range []struct {
		path []string
		want any
	}{
		{[]string{"HostConfig", "Memory"}, 67108864.0},
		{[]string{"HostConfig", "MemorySwap"}, 134217728.0},
		{[]string{"HostConfig", "NanoCpus"}, 1.5e9},
		{[]string{"HostConfig", "CpuShares"}, 256.0},
		{[]string{"HostConfig", "PidsLimit"}, 42.0},
		{[]string{"HostConfig", "ShmSize"}, 8388608.0},
		{[]string{"Config", "StopTimeout"}, 3.0},
		{[]string{"Config", "StopSignal"}, "SIGUSR1"},
	} {
		if got := field(doc, c.path...); got != c.want {
			t.Errorf("%s = %v, want %v", strings.Join(c.path, "."), got, c.want)
		}
	}
}

// Docker's default capability set, as a CapBnd mask.
const defaultCaps = "00000000a80425fb"

func TestFlagSecurity(t *testing.T) {
	hostBnd := hostStatus(t, "CapBnd")
	seccompDeny := writeFile(t, "deny-mkdir.json", `{
  "defaultAction": "SCMP_ACT_ALLOW",
  "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]
}`)
	runFlagCases(t, []flagCase{
		{name: "default caps", script: "grep -E '^Cap(Prm|Eff|Bnd)' /proc/self/status", stdout: "CapPrm:\t" + defaultCaps + "\nCapEff:\t" + defaultCaps + "\nCapBnd:\t" + defaultCaps + "\n"},
		{name: "default caps non-root", args: []string{"-u", "1000"}, script: "grep -E '^Cap(Eff|Bnd)' /proc/self/status", stdout: "CapEff:\t0000000000000000\nCapBnd:\t" + defaultCaps + "\n"},
		{name: "cap-drop CHOWN", args: []string{"--cap-drop", "CHOWN"}, script: "grep CapBnd /proc/self/status; chown 1 /tmp", code: 1, stdout: "CapBnd:\t00000000a80425fa\n"},
		{name: "chown allowed by default", script: "chown 1 /tmp && echo ok", stdout: "ok\n"},
		{name: "cap-drop cap_ lower", args: []string{"--cap-drop", "cap_chown"}, script: "grep CapEff /proc/self/status", stdout: "CapEff:\t00000000a80425fa\n"},
		{name: "cap-drop ALL", args: []string{"--cap-drop", "ALL"}, script: "grep CapEff /proc/self/status", stdout: "CapEff:\t0000000000000000\n"},
		{name: "cap-drop ALL cap-add", args: []string{"--cap-drop", "ALL", "--cap-add", "KILL"}, script: "grep CapEff /proc/self/status", stdout: "CapEff:\t0000000000000020\n"},
		{name: "no NET_ADMIN", script: "ip link set lo down", anyCode: true, check: func(t *testing.T, r result) {
			if r.code == 0 || !strings.Contains(strings.ToLower(r.stderr), "not permitted") {
				t.Errorf("ip link set lo down without NET_ADMIN: %v", r)
			}
		}},
		{name: "cap-add NET_ADMIN", args: []string{"--cap-add", "NET_ADMIN"}, script: "grep CapEff /proc/self/status; ip link set lo down && echo down", stdout: "CapEff:\t00000000a80435fb\ndown\n"},
		{name: "cap-add unknown", args: []string{"--cap-add", "NO_SUCH_CAP"}, script: "true", code: 125, stderr: "no_such_cap"},
		{name: "privileged", args: []string{"--privileged"}, script: "grep -E '^Cap(Eff|Bnd)' /proc/self/status; grep Seccomp: /proc/self/status", stdout: "CapEff:\t" + hostBnd + "\nCapBnd:\t" + hostBnd + "\nSeccomp:\t0\n"},
		{name: "privileged devices", args: []string{"--privileged"}, script: "ls /dev | wc -l; ls /dev | grep -c -x -E 'tty[0-9]+|loop[0-9]+|mem' ", check: func(t *testing.T, r result) {
			n := strings.Fields(r.stdout)
			if len(n) != 2 || n[1] == "0" {
				t.Errorf("--privileged /dev lacks the host's devices: %v", r)
			}
			d := berth(t, "run", "--rm", "busybox", "sh", "-c", "ls /dev | wc -l")
			if d.code != 0 || len(n) == 0 || atoi(t, n[0]) <= atoi(t, strings.TrimSpace(d.stdout)) {
				t.Errorf("privileged /dev has %v entries, default %v", n, d)
			}
		}},
		{name: "privileged proc/sys writable", args: []string{"--privileged"}, script: "echo test > /proc/sys/kernel/domainname && cat /proc/sys/kernel/domainname", stdout: "test\n"},
		{name: "NoNewPrivs default", script: "grep NoNewPrivs /proc/self/status", stdout: "NoNewPrivs:\t0\n"},
		{name: "no-new-privileges", args: []string{"--security-opt", "no-new-privileges"}, script: "grep NoNewPrivs /proc/self/status", stdout: "NoNewPrivs:\t1\n"},
		{name: "no-new-privileges:true", args: []string{"--security-opt", "no-new-privileges:true"}, script: "grep NoNewPrivs /proc/self/status", stdout: "NoNewPrivs:\t1\n"},
		{name: "seccomp default", script: "grep Seccomp: /proc/self/status", stdout: "Seccomp:\t2\n"},
		{name: "seccomp unconfined", args: []string{"--security-opt", "seccomp=unconfined"}, script: "grep Seccomp: /proc/self/status", stdout: "Seccomp:\t0\n"},
		{name: "seccomp profile", args: []string{"--security-opt", "seccomp=" + seccompDeny}, script: "grep Seccomp: /proc/self/status; mkdir /tmp/d", code: 1, stdout: "Seccomp:\t2\n", stderr: "operation not permitted"},
		{name: "seccomp profile allows rest", args: []string{"--security-opt", "seccomp=" + seccompDeny}, script: "touch /tmp/f && echo ok", stdout: "ok\n"},
		{name: "seccomp missing profile", args: []string{"--security-opt", "seccomp=/nonexistent.json"}, script: "true", code: 125, stderr: "/nonexistent.json"},
		{name: "security-opt bad", args: []string{"--security-opt", "bogus=1"}, script: "true", code: 125, stderr: "bogus"},
	})
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("not a number: %q", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func TestFlagInit(t *testing.T) {
	runFlagCases(t, []flagCase{
		{name: "init", args: []string{"--init"}, script: "tr '\\0' ' ' < /proc/1/cmdline; echo; echo $$", check: func(t *testing.T, r result) {
			lines := strings.Split(r.stdout, "\n")
			if len(lines) < 2 || !strings.HasPrefix(lines[0], "/dev/init") || lines[1] == "1" {
				t.Errorf("with --init PID 1 is %q and sh is %q", lines[0], lines[1])
			}
		}},
		{name: "init exit code", args: []string{"--init"}, script: "exit 5", code: 5},
		{name: "no init", script: "echo $$", stdout: "1\n"},
	})
}

func TestFlagStopSignal(t *testing.T) {
	cleanupContainer(t, "usr1")
	ok(t, "run", "-d", "--name", "usr1", "--stop-signal", "USR1", "busybox", "sh", "-c",
		"trap 'echo got usr1; exit 3' USR1; trap 'echo got term; exit 4' TERM; echo ready; while true; do sleep 0.1; done")
	if s := field(inspect(t, "usr1"), "Config", "StopSignal"); s != "USR1" && s != "SIGUSR1" {
		t.Errorf("Config.StopSignal = %v", s)
	}
	eventually(t, 10*time.Second, "the trap to be set", func() bool { return strings.Contains(ok(t, "logs", "usr1"), "ready") })
	ok(t, "stop", "usr1")
	if got := ok(t, "logs", "usr1"); !strings.Contains(got, "got usr1") {
		t.Errorf("stop did not send SIGUSR1: logs %q", got)
	}
	if c := field(inspect(t, "usr1"), "State", "ExitCode"); c != 3.0 {
		t.Errorf("exit code %v, want 3", c)
	}
	if r := berth(t, "run", "--rm", "--stop-signal", "NOSUCHSIG", "busybox", "true"); r.code != 125 || !strings.Contains(r.stderr, "NOSUCHSIG") {
		t.Errorf("a bad stop signal: %v", r)
	}
}

func TestFlagStopTimeout(t *testing.T) {
	cleanupContainer(t, "stubborn")
	ok(t, "run", "-d", "--name", "stubborn", "--stop-timeout", "1", "busybox", "sh", "-c",
		"trap '' TERM; echo ready; while true; do sleep 0.1; done")
	if s := field(inspect(t, "stubborn"), "Config", "StopTimeout"); s != 1.0 {
		t.Errorf("Config.StopTimeout = %v", s)
	}
	eventually(t, 10*time.Second, "the trap to be set", func() bool { return strings.Contains(ok(t, "logs", "stubborn"), "ready") })
	start := time.Now()
	ok(t, "stop", "stubborn")
	// The container ignores TERM: stop waits the container's timeout (1s,
	// not the default 10s), then kills.
	if d := time.Since(start); d < 900*time.Millisecond || d > 6*time.Second {
		t.Errorf("stop took %v with --stop-timeout 1", d)
	}
	if c := field(inspect(t, "stubborn"), "State", "ExitCode"); c != 137.0 {
		t.Errorf("exit code %v, want 137", c)
	}
}

func TestFlagNetwork(t *testing.T) {
	hostName, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	var hostIfs []string
	dev, err := os.ReadFile("/proc/net/dev")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(dev), "\n") {
		if name, _, ok := strings.Cut(l, ":"); ok {
			hostIfs = append(hostIfs, strings.TrimSpace(name))
		}
	}
	ifaces := func(out string) []string {
		var n []string
		for _, l := range strings.Split(out, "\n") {
			if name, _, ok := strings.Cut(l, ":"); ok {
				n = append(n, strings.TrimSpace(name))
			}
		}
		slices.Sort(n)
		return n
	}
	slices.Sort(hostIfs)
	runFlagCases(t, []flagCase{
		{name: "none", args: []string{"--network", "none"}, script: "cat /proc/net/dev", check: func(t *testing.T, r result) {
			if got := ifaces(r.stdout); !slices.Equal(got, []string{"lo"}) {
				t.Errorf("--network none has interfaces %v", got)
			}
		}},
		{name: "host", args: []string{"--network", "host"}, script: "hostname; cat /proc/net/dev", check: func(t *testing.T, r result) {
			name, rest, _ := strings.Cut(r.stdout, "\n")
			if name != hostName {
				t.Errorf("--network host hostname %q, host's %q", name, hostName)
			}
			if got := ifaces(rest); !slices.Equal(got, hostIfs) {
				t.Errorf("--network host interfaces %v, host's %v", got, hostIfs)
			}
		}},
		{name: "host etc/hosts", args: []string{"--network", "host"}, script: "grep -c localhost /etc/hosts", match: `^[1-9]\d*\n$`},
		{name: "unknown network", args: []string{"--network", "no-such-net"}, script: "true", code: 125, stderr: "no-such-net"},
	})
}

func TestFlagPullPlatform(t *testing.T) {
	runFlagCases(t, []flagCase{
		{name: "pull never missing", args: []string{"--pull", "never"}, image: "no-such-image-here", cmd: []string{}, code: 125, stderr: "no-such-image-here"},
		{name: "pull never present", args: []string{"--pull", "never"}, cmd: []string{"echo", "ok"}, stdout: "ok\n"},
		{name: "pull missing present", args: []string{"--pull", "missing"}, cmd: []string{"echo", "ok"}, stdout: "ok\n"},
		{name: "pull bad", args: []string{"--pull", "sometimes"}, cmd: []string{"true"}, code: 125, stderr: "sometimes"},
		{name: "platform", args: []string{"--platform", "linux/amd64"}, cmd: []string{"echo", "ok"}, stdout: "ok\n"},
	})
}

// TestExecPrivileged: exec --privileged gives the process every capability
// berth holds (the host's bounding set), while a plain exec keeps the
// container's default set.
func TestExecPrivileged(t *testing.T) {
	hostBnd := hostStatus(t, "CapBnd")
	ok(t, "run", "-d", "--name", "execpriv", "busybox", "sleep", "60")
	t.Cleanup(func() { cleanupContainer(t, "execpriv") })
	if got := ok(t, "exec", "execpriv", "grep", "CapEff", "/proc/self/status"); got != "CapEff:\t"+defaultCaps+"\n" {
		t.Errorf("exec: %q, want the default set %s", got, defaultCaps)
	}
	got := ok(t, "exec", "--privileged", "execpriv", "grep", "-E", "^Cap(Eff|Bnd)", "/proc/self/status")
	if want := "CapEff:\t" + hostBnd + "\nCapBnd:\t" + hostBnd + "\n"; got != want {
		t.Errorf("exec --privileged: %q, want %q", got, want)
	}
}
