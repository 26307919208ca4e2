package cli

import (
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/spf13/pflag"
)

type runResult struct {
	cfg *container.Config
	hc  *container.HostConfig
	f   *runFlags
}

// runParse parses argv (flags, image, command) as `berth run` would.
func runParse(argv []string, env map[string]string) (runResult, error) {
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	f := &runFlags{}
	addRunFlags(fs, f)
	if err := fs.Parse(argv); err != nil {
		return runResult{f: f}, err
	}
	rest := fs.Args()
	if len(rest) == 0 {
		rest = []string{"busybox"}
	}
	getenv := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	cfg, hc, err := f.parse(rest[0], rest[1:], getenv)
	return runResult{cfg, hc, f}, err
}

func mustRunParse(t *testing.T, argv ...string) runResult {
	t.Helper()
	r, err := runParse(argv, nil)
	if err != nil {
		t.Fatalf("parse %q: %v", argv, err)
	}
	return r
}

func TestRunFlagsDefaults(t *testing.T) {
	r := mustRunParse(t, "busybox")
	c, h := r.cfg, r.hc
	if c.Image != "busybox" || c.Cmd != nil {
		t.Errorf("image %q cmd %q", c.Image, c.Cmd)
	}
	if !c.AttachStdout || !c.AttachStderr || c.AttachStdin || c.OpenStdin || c.StdinOnce || c.Tty {
		t.Errorf("streams: %+v", c)
	}
	if c.Entrypoint != nil || c.Healthcheck != nil || c.StopTimeout != nil || h.PidsLimit != nil || h.Init != nil {
		t.Errorf("unset values set: %+v %+v", c, h)
	}
	if h.NetworkMode != "" || h.RestartPolicy.Name != "no" || h.AutoRemove {
		t.Errorf("host config: %+v", h)
	}
	o := r.f.options()
	if o.Pull != "missing" || !o.SigProxy || o.Detach {
		t.Errorf("options %+v", o)
	}
}

func TestRunFlagsStreams(t *testing.T) {
	for _, tc := range []struct {
		argv                          []string
		in, out, errs, open, once, tt bool
	}{
		{[]string{"-i", "img", "sh"}, true, true, true, true, true, false},
		{[]string{"-it", "img"}, true, true, true, true, true, true},
		{[]string{"-d", "img"}, false, false, false, false, false, false},
		{[]string{"-di", "img"}, false, false, false, true, false, false},
		{[]string{"-a", "stdout", "img"}, false, true, false, false, false, false},
		{[]string{"-a", "STDIN", "-a", "stderr", "-i", "img"}, true, false, true, true, true, false},
	} {
		r, err := runParse(tc.argv, nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.argv, err)
		}
		c := r.cfg
		got := []bool{c.AttachStdin, c.AttachStdout, c.AttachStderr, c.OpenStdin, c.StdinOnce, c.Tty}
		want := []bool{tc.in, tc.out, tc.errs, tc.open, tc.once, tc.tt}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q: in,out,err,open,once,tty = %v, want %v", tc.argv, got, want)
		}
	}
	r := mustRunParse(t, "img", "sh", "-c", "echo -d")
	if !reflect.DeepEqual(r.cfg.Cmd, []string{"sh", "-c", "echo -d"}) {
		t.Errorf("flags after the image must be the command's: %q", r.cfg.Cmd)
	}
}

func TestRunFlagsErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"-m", "12q"}, `invalid argument "12q" for "-m, --memory" flag: invalid size: '12q'`},
		{[]string{"--memory-swap", "x"}, `invalid argument "x" for "--memory-swap" flag: invalid size: 'x'`},
		{[]string{"--shm-size", "1z"}, `invalid argument "1z" for "--shm-size" flag`},
		{[]string{"-m", "1g", "--memory-swap", "512m"}, "memoryswap limit should be larger than memory limit"},
		{[]string{"--cpus", "abc"}, `invalid argument "abc" for "--cpus" flag: failed to parse abc as a rational number`},
		{[]string{"--cpus", "0.0000000001"}, "value is too precise"},
		{[]string{"--cpus", "1", "--cpu-quota", "50000"}, "--cpus and --cpu-period/--cpu-quota"},
		{[]string{"-c", "x"}, `invalid argument "x" for "-c, --cpu-shares" flag`},
		{[]string{"--cpu-period", "10"}, `invalid argument "10" for "--cpu-period" flag`},
		{[]string{"--cpuset-cpus", "0-a"}, `invalid argument "0-a" for "--cpuset-cpus" flag`},
		{[]string{"--ulimit", "nofile"}, `invalid argument "nofile" for "--ulimit" flag`},
		{[]string{"--ulimit", "nofile=20:10"}, `invalid argument "nofile=20:10" for "--ulimit" flag`},
		{[]string{"--oom-score-adj", "2000"}, `invalid argument "2000" for "--oom-score-adj" flag`},
		{[]string{"-w", "rel/dir"}, `invalid argument "rel/dir" for "-w, --workdir" flag: the working directory 'rel/dir' is invalid, it needs to be an absolute path`},
		{[]string{"-e", "=x"}, `invalid argument "=x" for "-e, --env" flag`},
		{[]string{"-e", "A B=x"}, "contains whitespaces"},
		{[]string{"--env-file", filepath.Join(dir, "missing")}, filepath.Join(dir, "missing")},
		{[]string{"--add-host", "db:1.2.3"}, `invalid argument "db:1.2.3" for "--add-host" flag: invalid IP address in add-host: "1.2.3"`},
		{[]string{"--add-host", "db"}, `invalid argument "db" for "--add-host" flag`},
		{[]string{"--dns", "example.com"}, `invalid argument "example.com" for "--dns" flag`},
		{[]string{"--cap-add", "NOPE"}, `invalid argument "NOPE" for "--cap-add" flag: unknown capability`},
		{[]string{"--security-opt", "bogus=1"}, `invalid argument "bogus=1" for "--security-opt" flag`},
		{[]string{"--security-opt", "no-new-privileges:maybe"}, "no-new-privileges"},
		{[]string{"--security-opt", "systempaths=confined"}, "systempaths"},
		{[]string{"--security-opt", "seccomp=" + filepath.Join(dir, "nope.json")}, filepath.Join(dir, "nope.json")},
		{[]string{"--device", "/dev/fuse:/dev/fuse:rwx"}, `invalid argument "/dev/fuse:/dev/fuse:rwx" for "--device" flag: invalid device permissions`},
		{[]string{"--device", "dev/fuse"}, "not absolute"},
		{[]string{"--restart", "sometimes"}, `invalid argument "sometimes" for "--restart" flag: invalid restart policy: unknown policy 'sometimes'`},
		{[]string{"--restart", "on-failure:-1"}, "maximum retry count cannot be negative"},
		{[]string{"--restart", "always:3"}, "maximum retry count can only be used with 'on-failure'"},
		{[]string{"--restart", "on-failure:x"}, "maximum retry count must be an integer"},
		{[]string{"--restart", ":3"}, "no policy provided before colon"},
		{[]string{"--restart", "always", "--rm"}, "Conflicting options: --restart and --rm"},
		{[]string{"--no-healthcheck", "--health-cmd", "true"}, "--no-healthcheck conflicts with --health-* options"},
		{[]string{"--health-interval", "-1s"}, "--health-interval cannot be negative"},
		{[]string{"--health-timeout", "1us"}, "--health-timeout cannot be less than 1ms"},
		{[]string{"--health-retries", "-2"}, "--health-retries cannot be negative"},
		{[]string{"--health-interval", "soon"}, `invalid argument "soon" for "--health-interval" flag`},
		{[]string{"--stop-signal", "SIGNOPE"}, `invalid argument "SIGNOPE" for "--stop-signal" flag: invalid signal`},
		{[]string{"--stop-timeout", "-5"}, `invalid argument "-5" for "--stop-timeout" flag`},
		{[]string{"-p", "80/xtp"}, `invalid argument "80/xtp" for "-p, --publish" flag: invalid protocol 'xtp'`},
		{[]string{"-p", "1.2.3:80:80"}, "invalid IP address '1.2.3'"},
		{[]string{"-p", "8000-8002:80-81"}, "differ in length"},
		{[]string{"-p", "x:80"}, "invalid host port 'x'"},
		{[]string{"-p", "70000"}, "invalid start port '70000'"},
		{[]string{"--expose", "80-70"}, `invalid argument "80-70" for "--expose" flag`},
		{[]string{"--network", "none", "-p", "80"}, "cannot publish ports with --network none"},
		{[]string{"--pull", "sometimes"}, `invalid argument "sometimes" for "--pull" flag`},
		{[]string{"--platform", "linux"}, `invalid argument "linux" for "--platform" flag`},
		{[]string{"--log-driver", "syslog"}, `invalid argument "syslog" for "--log-driver" flag: unsupported logging driver 'syslog'`},
		{[]string{"--log-opt", "max-size=big"}, `invalid argument "max-size=big" for "--log-opt" flag`},
		{[]string{"--log-opt", "max-file=0"}, "max-file"},
		{[]string{"--log-opt", "labels=a"}, "unknown log opt 'labels'"},
		{[]string{"--log-driver", "none", "--log-opt", "max-file=2"}, "takes no options"},
		{[]string{"-a", "stdweird"}, `invalid argument "stdweird" for "-a, --attach" flag`},
		{[]string{"-a", "stdout", "-d"}, "--attach and --detach"},
		{[]string{"--ipc", "weird"}, `invalid argument "weird" for "--ipc" flag`},
		{[]string{"--pid", "container:"}, `invalid argument "container:" for "--pid" flag`},
		{[]string{"--uts", "container:x"}, `invalid argument "container:x" for "--uts" flag`},
		{[]string{"--uts", "host", "-h", "box"}, "--hostname with --uts host"},
		{[]string{"--cgroupns", "shared"}, `invalid argument "shared" for "--cgroupns" flag`},
		{[]string{"--sysctl", "net.ipv4.ip_forward"}, `invalid argument "net.ipv4.ip_forward" for "--sysctl" flag`},
		{[]string{"--tmpfs", "run:size=1m"}, `invalid argument "run:size=1m" for "--tmpfs" flag`},
		{[]string{"--name", "-bad"}, `invalid argument "-bad" for "--name" flag`},
		{[]string{"--network", "container:"}, `invalid argument "container:" for "--network" flag`},
	} {
		_, err := runParse(tc.argv, nil)
		if err == nil {
			t.Errorf("%q: no error, want %q", tc.argv, tc.want)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %q, want it to contain %q", tc.argv, err, tc.want)
		}
	}
}

func TestRunFlagsResources(t *testing.T) {
	r := mustRunParse(t, "-m", "512m", "--memory-swap", "-1", "--memory-reservation", "256m", "--cpus", "1.5",
		"-c", "512", "--cpuset-cpus", "0-1,3", "--cpuset-mems", "0", "--pids-limit", "100",
		"--ulimit", "nofile=1024:2048", "--ulimit", "nproc=10", "--shm-size", "64m", "--oom-score-adj", "-500", "img")
	h := r.hc
	if h.Memory != 512<<20 || h.MemorySwap != -1 || h.MemoryReservation != 256<<20 || h.ShmSize != 64<<20 {
		t.Errorf("memory %d swap %d res %d shm %d", h.Memory, h.MemorySwap, h.MemoryReservation, h.ShmSize)
	}
	if h.NanoCPUs != 1_500_000_000 || h.CPUShares != 512 || h.CpusetCpus != "0-1,3" || h.CpusetMems != "0" {
		t.Errorf("cpu: %+v", h.Resources)
	}
	if h.PidsLimit == nil || *h.PidsLimit != 100 || h.OomScoreAdj != -500 {
		t.Errorf("pids %v oom %d", h.PidsLimit, h.OomScoreAdj)
	}
	want := []*units.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}, {Name: "nproc", Soft: 10, Hard: 10}}
	if !reflect.DeepEqual(h.Ulimits, want) {
		t.Errorf("ulimits %v, want %v", h.Ulimits, want)
	}
	r = mustRunParse(t, "--cpu-period", "100000", "--cpu-quota", "50000", "img")
	if r.hc.CPUPeriod != 100000 || r.hc.CPUQuota != 50000 {
		t.Errorf("period %d quota %d", r.hc.CPUPeriod, r.hc.CPUQuota)
	}
}

func TestRunFlagsEnv(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.env")
	if err := os.WriteFile(good, []byte("\xef\xbb\xbf# comment\n\nA=1\n  B=two words\nFROMHOST\nUNSET\nC=\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"FROMHOST": "h", "HOME": "/root"}
	r, err := runParse([]string{"--env-file", good, "-e", "X=y=z", "-e", "HOME", "-e", "NOTSET", "-e", "A=override", "img"}, env)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A=1", "B=two words", "FROMHOST=h", "C=", "X=y=z", "HOME=/root", "A=override"}
	if !reflect.DeepEqual(r.cfg.Env, want) {
		t.Errorf("env %q, want %q", r.cfg.Env, want)
	}
	bad := filepath.Join(dir, "bad.env")
	if err := os.WriteFile(bad, []byte("A=1\n# ok\nBAD KEY=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = runParse([]string{"--env-file", bad, "img"}, nil)
	if err == nil || !strings.Contains(err.Error(), bad+":3:") || !strings.Contains(err.Error(), "BAD KEY") {
		t.Errorf("bad env file: %v, want the file, line 3 and the key", err)
	}
	empty := filepath.Join(dir, "empty.env")
	if err := os.WriteFile(empty, []byte("A=1\n=2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err = runParse([]string{"--env-file", empty, "img"}, nil); err == nil || !strings.Contains(err.Error(), empty+":2:") {
		t.Errorf("no name: %v", err)
	}
}

func TestRunFlagsLabelsAndMisc(t *testing.T) {
	dir := t.TempDir()
	lf := filepath.Join(dir, "labels")
	if err := os.WriteFile(lf, []byte("# labels\nteam=core\nflag\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := mustRunParse(t, "--label-file", lf, "-l", "a=b", "--label", "team=edge", "--name", "web.1", "-h", "box",
		"--domainname", "example.org", "-u", "1000:1000", "-w", "/srv", "--entrypoint", "/bin/sh",
		"--read-only", "--privileged", "--init", "--group-add", "audio", "--cidfile", "/tmp/cid",
		"--sysctl", "net.core.somaxconn=1024", "--pull", "never", "--platform", "linux/arm64/v8",
		"--detach-keys", "ctrl-x", "--sig-proxy=false", "--stop-signal", "SIGUSR1", "--stop-timeout", "0",
		"--tmpfs", "/run:size=64m,mode=1777", "--tmpfs", "/tmp", "img", "arg")
	c, h := r.cfg, r.hc
	if !reflect.DeepEqual(c.Labels, map[string]string{"team": "edge", "flag": "", "a": "b"}) {
		t.Errorf("labels %v", c.Labels)
	}
	if c.Hostname != "box" || c.Domainname != "example.org" || c.User != "1000:1000" || c.WorkingDir != "/srv" {
		t.Errorf("config %+v", c)
	}
	if !reflect.DeepEqual(c.Entrypoint, []string{"/bin/sh"}) || !reflect.DeepEqual(c.Cmd, []string{"arg"}) {
		t.Errorf("entrypoint %q cmd %q", c.Entrypoint, c.Cmd)
	}
	if c.StopSignal != "SIGUSR1" || c.StopTimeout == nil || *c.StopTimeout != 0 {
		t.Errorf("stop %q %v", c.StopSignal, c.StopTimeout)
	}
	if !h.ReadonlyRootfs || !h.Privileged || h.Init == nil || !*h.Init || h.ContainerIDFile != "/tmp/cid" {
		t.Errorf("host %+v", h)
	}
	if !reflect.DeepEqual(h.GroupAdd, []string{"audio"}) || h.Sysctls["net.core.somaxconn"] != "1024" {
		t.Errorf("groups %v sysctls %v", h.GroupAdd, h.Sysctls)
	}
	if !reflect.DeepEqual(h.Tmpfs, map[string]string{"/run": "size=64m,mode=1777", "/tmp": ""}) {
		t.Errorf("tmpfs %v", h.Tmpfs)
	}
	o := r.f.options()
	want := runOptions{Name: "web.1", Pull: "never", Platform: "linux/arm64/v8", DetachKeys: "ctrl-x", SigProxy: false}
	if o != want {
		t.Errorf("options %+v, want %+v", o, want)
	}
	// --entrypoint "" resets the image's entrypoint: given, but empty.
	r = mustRunParse(t, "--entrypoint", "", "img")
	if !reflect.DeepEqual(r.cfg.Entrypoint, []string{""}) {
		t.Errorf("empty entrypoint %q, want [\"\"]", r.cfg.Entrypoint)
	}
}

func TestRunFlagsVolumes(t *testing.T) {
	r := mustRunParse(t, "-v", "/host:/data", "-v", "/h2:/ro:ro,rshared", "-v", "cache:/cache:nocopy",
		"-v", "/anon", "-v", "named.vol-1:/n:rw,Z", "img")
	wantBinds := []string{"/host:/data", "/h2:/ro:ro,rshared", "cache:/cache:nocopy", "named.vol-1:/n:rw,Z"}
	if !reflect.DeepEqual(r.hc.Binds, wantBinds) {
		t.Errorf("binds %q, want %q", r.hc.Binds, wantBinds)
	}
	if !reflect.DeepEqual(r.cfg.Volumes, map[string]struct{}{"/anon": {}}) {
		t.Errorf("anonymous volumes %v", r.cfg.Volumes)
	}
	for _, bad := range []struct{ spec, want string }{
		{"/h:data", "destination 'data' is not an absolute path"},
		{"data", "destination 'data' is not an absolute path"},
		{"/h::ro", "empty section"},
		{":/d", "empty section"},
		{"/h:/d:", "empty section"},
		{"/h:/d:ro:x", "too many colons"},
		{"/h:/d:fast", "unknown option 'fast'"},
		{"/h:/d:ro,rw", "conflicting options"},
		{"/h:/d:nocopy", "nocopy is for volumes"},
		{"./rel:/d", "neither an absolute path nor a volume name"},
		{"v:/", "destination can't be '/'"},
	} {
		_, err := runParse([]string{"-v", bad.spec, "img"}, nil)
		if err == nil || !strings.Contains(err.Error(), `invalid argument "`+bad.spec+`" for "-v, --volume" flag`) ||
			!strings.Contains(err.Error(), bad.want) {
			t.Errorf("-v %s: error %v, want %q", bad.spec, err, bad.want)
		}
	}
}

func TestRunFlagsMount(t *testing.T) {
	r := mustRunParse(t,
		"--mount", "type=bind,source=/src,target=/dst,readonly,bind-propagation=rslave",
		"--mount", "type=volume,src=data,dst=/data,volume-nocopy,ro=false",
		"--mount", `type=tmpfs,destination=/scratch,tmpfs-size=64m,tmpfs-mode=1770`,
		"--mount", `"type=volume","target=/with,comma","volume-label=a=b"`,
		"img")
	want := []mount.Mount{
		{Type: mount.TypeBind, Source: "/src", Target: "/dst", ReadOnly: true, BindOptions: &mount.BindOptions{Propagation: mount.PropagationRSlave}},
		{Type: mount.TypeVolume, Source: "data", Target: "/data", VolumeOptions: &mount.VolumeOptions{NoCopy: true}},
		{Type: mount.TypeTmpfs, Target: "/scratch", TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 64 << 20, Mode: 01770}},
		{Type: mount.TypeVolume, Target: "/with,comma", VolumeOptions: &mount.VolumeOptions{Labels: map[string]string{"a": "b"}}},
	}
	if !reflect.DeepEqual(r.hc.Mounts, want) {
		t.Errorf("mounts\n got %+v\nwant %+v", r.hc.Mounts, want)
	}
	for _, bad := range []struct{ spec, want string }{
		{"type=bind,target=/d", "source is required"},
		{"type=volume,source=data", "target is required"},
		{"type=nfs,target=/d", "unsupported mount type 'nfs'"},
		{"type=volume,target=/d,bind-propagation=rshared", "cannot mix 'bind-propagation' with mount type 'volume'"},
		{"type=bind,src=/s,target=/d,volume-nocopy", "cannot mix 'volume-nocopy'"},
		{"type=tmpfs,target=/t,tmpfs-size=lots", "invalid value for tmpfs-size"},
		{"type=tmpfs,target=/t,tmpfs-mode=999", "invalid value for tmpfs-mode"},
		{"type=tmpfs,src=x,target=/t", "takes no source"},
		{"target=/d,color=red", "unexpected key 'color'"},
		{"target=/d,readonly=maybe", "invalid value for readonly"},
		{"target", "must be a key=value pair"},
		{"type=bind,src=rel,target=/d", "not an absolute path"},
		{`type=bind,"src=/a`, "extraneous or missing"},
	} {
		_, err := runParse([]string{"--mount", bad.spec, "img"}, nil)
		if err == nil || !strings.Contains(err.Error(), `for "--mount" flag`) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("--mount %s: error %v, want %q", bad.spec, err, bad.want)
		}
	}
}

func TestRunFlagsRestart(t *testing.T) {
	for _, tc := range []struct {
		val  string
		want container.RestartPolicy
	}{
		{"no", container.RestartPolicy{Name: "no"}},
		{"always", container.RestartPolicy{Name: "always"}},
		{"unless-stopped", container.RestartPolicy{Name: "unless-stopped"}},
		{"on-failure", container.RestartPolicy{Name: "on-failure"}},
		{"on-failure:3", container.RestartPolicy{Name: "on-failure", MaximumRetryCount: 3}},
	} {
		r := mustRunParse(t, "--restart", tc.val, "img")
		if r.hc.RestartPolicy != tc.want {
			t.Errorf("--restart %s: %+v, want %+v", tc.val, r.hc.RestartPolicy, tc.want)
		}
	}
	// --rm with the default (or an explicit "no") restart policy is fine.
	if r := mustRunParse(t, "--rm", "--restart", "no", "img"); !r.hc.AutoRemove {
		t.Error("--rm not set")
	}
}

func TestRunFlagsHealth(t *testing.T) {
	r := mustRunParse(t, "--health-cmd", "curl -f localhost", "--health-interval", "30s", "--health-timeout", "5s",
		"--health-start-period", "1m", "--health-start-interval", "2s", "--health-retries", "4", "img")
	want := &container.HealthConfig{Test: []string{"CMD-SHELL", "curl -f localhost"}, Interval: 30 * time.Second,
		Timeout: 5 * time.Second, StartPeriod: time.Minute, StartInterval: 2 * time.Second, Retries: 4}
	if !reflect.DeepEqual(r.cfg.Healthcheck, want) {
		t.Errorf("health %+v, want %+v", r.cfg.Healthcheck, want)
	}
	r = mustRunParse(t, "--no-healthcheck", "img")
	if r.cfg.Healthcheck == nil || !reflect.DeepEqual(r.cfg.Healthcheck.Test, []string{"NONE"}) {
		t.Errorf("no-healthcheck: %+v", r.cfg.Healthcheck)
	}
	r = mustRunParse(t, "--health-retries", "2", "img")
	if r.cfg.Healthcheck == nil || r.cfg.Healthcheck.Test != nil || r.cfg.Healthcheck.Retries != 2 {
		t.Errorf("retries only (keeps the image's test): %+v", r.cfg.Healthcheck)
	}
}

func TestRunFlagsSecurity(t *testing.T) {
	dir := t.TempDir()
	prof := filepath.Join(dir, "seccomp.json")
	if err := os.WriteFile(prof, []byte("{\n  \"defaultAction\": \"SCMP_ACT_ALLOW\"\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	notJSON := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(notJSON, []byte("defaultAction: allow"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := mustRunParse(t, "--cap-add", "net_admin", "--cap-add", "CAP_SYS_TIME", "--cap-drop", "all",
		"--security-opt", "no-new-privileges", "--security-opt", "no-new-privileges:false",
		"--security-opt", "seccomp="+prof, "--security-opt", "seccomp=unconfined",
		"--security-opt", "label=disable", "--security-opt", "apparmor=unconfined",
		"--security-opt", "mask=/proc/a:/proc/b", "--security-opt", "unmask=ALL", "--security-opt", "systempaths=unconfined",
		"--device", "/dev/fuse", "--device", "/dev/sda:/dev/xvda:r", "--device", "/dev/null:rw", "img")
	h := r.hc
	if !reflect.DeepEqual(h.CapAdd, []string{"CAP_NET_ADMIN", "CAP_SYS_TIME"}) || !reflect.DeepEqual(h.CapDrop, []string{"ALL"}) {
		t.Errorf("caps %v %v", h.CapAdd, h.CapDrop)
	}
	wantOpts := []string{"no-new-privileges=true", "no-new-privileges=false", `seccomp={"defaultAction":"SCMP_ACT_ALLOW"}`,
		"seccomp=unconfined", "label=disable", "apparmor=unconfined", "mask=/proc/a:/proc/b", "unmask=ALL", "systempaths=unconfined"}
	if !reflect.DeepEqual(h.SecurityOpt, wantOpts) {
		t.Errorf("security opts\n got %q\nwant %q", h.SecurityOpt, wantOpts)
	}
	wantDev := []container.DeviceMapping{
		{PathOnHost: "/dev/fuse", PathInContainer: "/dev/fuse", CgroupPermissions: "rwm"},
		{PathOnHost: "/dev/sda", PathInContainer: "/dev/xvda", CgroupPermissions: "r"},
		{PathOnHost: "/dev/null", PathInContainer: "/dev/null", CgroupPermissions: "rw"},
	}
	if !reflect.DeepEqual(h.Devices, wantDev) {
		t.Errorf("devices %+v", h.Devices)
	}
	_, err := runParse([]string{"--security-opt", "seccomp=" + notJSON, "img"}, nil)
	if err == nil || !strings.Contains(err.Error(), notJSON) || !strings.Contains(err.Error(), "not JSON") {
		t.Errorf("not-JSON profile: %v", err)
	}
}

func TestRunFlagsNetwork(t *testing.T) {
	r := mustRunParse(t, "--net", "host", "--add-host", "db:10.0.0.2", "--add-host", "v6=::1", "--add-host", "gw:host-gateway",
		"--dns", "1.1.1.1", "--dns-search", "example.org", "--dns-option", "ndots:2", "img")
	h := r.hc
	if h.NetworkMode != "host" {
		t.Errorf("--net host: %q", h.NetworkMode)
	}
	if !reflect.DeepEqual(h.ExtraHosts, []string{"db:10.0.0.2", "v6:::1", "gw:host-gateway"}) {
		t.Errorf("extra hosts %q", h.ExtraHosts)
	}
	if !reflect.DeepEqual(h.DNS, []netip.Addr{netip.MustParseAddr("1.1.1.1")}) ||
		!reflect.DeepEqual(h.DNSSearch, []string{"example.org"}) || !reflect.DeepEqual(h.DNSOptions, []string{"ndots:2"}) {
		t.Errorf("dns %v %v %v", h.DNS, h.DNSSearch, h.DNSOptions)
	}
	for _, n := range []string{"none", "bridge", "default", "mynet", "container:web"} {
		if r := mustRunParse(t, "--network", n, "img"); string(r.hc.NetworkMode) != n {
			t.Errorf("--network %s: %q", n, r.hc.NetworkMode)
		}
	}
}

func TestRunFlagsPorts(t *testing.T) {
	r := mustRunParse(t, "-p", "80", "-p", "8080:80", "-p", "127.0.0.1:8443:443/tcp", "-p", "127.0.0.1::53/udp",
		"-p", "[::1]:9000:9000", "-p", "7000-7001:7000-7001", "-p", "6000-6010:6000", "--expose", "3000-3001/udp", "img")
	port := network.MustParsePort
	lo := netip.MustParseAddr("127.0.0.1")
	want := network.PortMap{
		port("80/tcp"):   {{}, {HostPort: "8080"}},
		port("443/tcp"):  {{HostIP: lo, HostPort: "8443"}},
		port("53/udp"):   {{HostIP: lo}},
		port("9000/tcp"): {{HostIP: netip.MustParseAddr("::1"), HostPort: "9000"}},
		port("7000/tcp"): {{HostPort: "7000"}},
		port("7001/tcp"): {{HostPort: "7001"}},
		port("6000/tcp"): {{HostPort: "6000-6010"}},
	}
	if !reflect.DeepEqual(r.hc.PortBindings, want) {
		t.Errorf("port bindings\n got %v\nwant %v", r.hc.PortBindings, want)
	}
	exposed := network.PortSet{}
	for p := range want {
		exposed[p] = struct{}{}
	}
	exposed[port("3000/udp")] = struct{}{}
	exposed[port("3001/udp")] = struct{}{}
	if !reflect.DeepEqual(r.cfg.ExposedPorts, exposed) {
		t.Errorf("exposed %v, want %v", r.cfg.ExposedPorts, exposed)
	}
}

func TestRunFlagsLoggingAndNamespaces(t *testing.T) {
	r := mustRunParse(t, "--log-driver", "json-file", "--log-opt", "max-size=10m", "--log-opt", "max-file=3",
		"--ipc", "shareable", "--pid", "host", "--uts", "private", "--cgroupns", "host", "img")
	h := r.hc
	if h.LogConfig.Type != "json-file" || !reflect.DeepEqual(h.LogConfig.Config, map[string]string{"max-size": "10m", "max-file": "3"}) {
		t.Errorf("log config %+v", h.LogConfig)
	}
	if h.IpcMode != "shareable" || h.PidMode != "host" || h.UTSMode != "" || h.CgroupnsMode != "host" {
		t.Errorf("namespaces ipc %q pid %q uts %q cgroupns %q", h.IpcMode, h.PidMode, h.UTSMode, h.CgroupnsMode)
	}
	r = mustRunParse(t, "--log-driver", "none", "--uts", "host", "--ipc", "container:db", "img")
	if r.hc.LogConfig.Type != "none" || r.hc.UTSMode != "host" || r.hc.IpcMode != "container:db" {
		t.Errorf("log %q uts %q ipc %q", r.hc.LogConfig.Type, r.hc.UTSMode, r.hc.IpcMode)
	}
}
