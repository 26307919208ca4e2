package engine

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// netState is what containers' networks leave on the host and in the
// test store's run root: it must be the same before and after a loop.
type netState struct {
	veths    int
	rules    int // iptables rules (filter and nat)
	chains   int
	leases   []string // host-local's lease files
	cache    []string // libcni's cached results
	netns    []string // netns files
	mounts   int      // netns bind mounts
	pending  []string // teardowns in progress
	iptables map[string]bool
}

func takeNetState(t *testing.T) netState {
	t.Helper()
	s := netState{veths: vethCount(t), iptables: iptablesSave(t)}
	s.rules = ruleCount(s.iptables)
	s.chains = len(s.iptables) - s.rules
	s.leases, _ = filepath.Glob(filepath.Join(runDir, "network", "ipam", "*", "[0-9a-f]*[.:]*"))
	s.cache, _ = filepath.Glob(filepath.Join(runDir, "network", "cache", "results", "*"))
	s.netns, _ = filepath.Glob(filepath.Join(runDir, "netns", "*"))
	s.pending, _ = filepath.Glob(filepath.Join(runDir, "network", "pending", "*"))
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	s.mounts = strings.Count(string(mi), filepath.Join(runDir, "netns")+"/")
	return s
}

// diff describes how s differs from before ("" when it does not).
func (s netState) diff(before netState) string {
	var d []string
	if s.veths != before.veths {
		d = append(d, fmt.Sprintf("veths %d, before %d", s.veths, before.veths))
	}
	if s.rules != before.rules || s.chains != before.chains {
		var extra []string
		for k := range s.iptables {
			if !before.iptables[k] {
				extra = append(extra, k)
			}
		}
		d = append(d, fmt.Sprintf("iptables %d rules and %d chains, before %d and %d; new: %q", s.rules, s.chains, before.rules, before.chains, extra))
	}
	for _, x := range []struct {
		what        string
		now, before []string
	}{{"leases", s.leases, before.leases}, {"CNI results", s.cache, before.cache}, {"netns files", s.netns, before.netns},
		{"pending teardowns", s.pending, before.pending}} {
		if len(x.now) != len(x.before) {
			d = append(d, fmt.Sprintf("%s %v, before %v", x.what, x.now, x.before))
		}
	}
	if s.mounts != before.mounts {
		d = append(d, fmt.Sprintf("netns mounts %d, before %d", s.mounts, before.mounts))
	}
	return strings.Join(d, "\n")
}

// settled waits until the detached teardowns of --rm containers are done
// and the state is before's, and fails the test with the difference if
// it does not come.
func settled(t *testing.T, before netState, what string) {
	t.Helper()
	var d string
	deadline := time.Now().Add(15 * time.Second)
	for {
		d = takeNetState(t).diff(before)
		if d == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s left:\n%s", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// quietState waits until no network teardown is pending and returns the
// state then.
func quietState(t *testing.T) netState {
	t.Helper()
	eventually(t, 15*time.Second, "the pending network teardowns", func() bool {
		p, _ := filepath.Glob(filepath.Join(runDir, "network", "pending", "*"))
		return len(p) == 0
	})
	return takeNetState(t)
}

// runLoop runs `berth run --rm busybox true` n times with args, in
// workers parallel loops, and returns the first failure.
func runLoop(t *testing.T, n, workers int, args ...string) error {
	t.Helper()
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				r := berth(t, append(append([]string{"run", "--rm"}, args...), "busybox", "true")...)
				if r.code != 0 {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("run %d: %v", i, r)
					}
					mu.Unlock()
					return
				}
			}
		}(w)
	}
	wg.Wait()
	return first
}

// TestNetLoop200 runs 200 containers with --rm on the default bridge and
// 200 on a user network, two at a time: no veth, iptables rule or chain,
// IPAM lease, CNI cache entry or netns (file or mount) may be left.
func TestNetLoop200(t *testing.T) {
	hostNet(t)
	createNetwork(t, "nst-loop", "--subnet", "10.202.1.0/24")
	// The first runs make the bridges and their rules, once.
	ok(t, "run", "--rm", "busybox", "true")
	ok(t, "run", "--rm", "--network", "nst-loop", "busybox", "true")
	before := quietState(t)
	if len(before.leases)+len(before.cache)+len(before.netns)+before.mounts != 0 {
		t.Fatalf("state before the loop: %+v", before)
	}

	for _, net := range []string{"bridge", "nst-loop"} {
		start := time.Now()
		if err := runLoop(t, 200, 2, "--network", net); err != nil {
			t.Fatal(err)
		}
		t.Logf("200 runs on %s: %v", net, time.Since(start))
		settled(t, before, "200 runs on "+net)
	}
	// The network is still usable: a container gets an address.
	out := ok(t, "run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show", "eth0")
	if !strings.Contains(out, "inet 10.88.") {
		t.Errorf("after the loop, eth0: %q", out)
	}
	settled(t, before, "the last run")
}

// TestNetPendingTeardown: berth dies after a --rm container is removed
// but before its network is torn down; the next command finishes the
// teardown from libcni's cache.
func TestNetPendingTeardown(t *testing.T) {
	hostNet(t)
	ok(t, "run", "--rm", "busybox", "true")
	before := quietState(t)

	cmd := berthCmd("run", "--rm", "busybox", "true")
	cmd.Env = append(cmd.Env, "BERTH_TEST_CRASH_BEFORE_TEARDOWN=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run --rm: %v: %s", err, out)
	}
	mid := takeNetState(t)
	if len(mid.pending) != 1 || len(mid.leases) != 1 || len(mid.cache) != 1 || mid.veths != before.veths+1 {
		t.Fatalf("after the crashed teardown: pending %v, leases %v, cache %v, veths %d (before %d): want one of each",
			mid.pending, mid.leases, mid.cache, mid.veths, before.veths)
	}
	if names := psNames(t); len(names) != 0 {
		t.Errorf("the --rm container is still listed: %v", names)
	}
	// ps found the teardown's process dead and finished it.
	if d := takeNetState(t).diff(before); d != "" {
		t.Errorf("after ps:\n%s", d)
	}
}

// TestNetKill9 kills a container's monitor and its processes with
// SIGKILL: the next berth command cleans it up, and CNI DEL from libcni's
// cache removes its veth, lease and port rules.
func TestNetKill9(t *testing.T) {
	hostNet(t)
	createNetwork(t, "nst-kill", "--subnet", "10.202.2.0/24")
	ok(t, "run", "--rm", "--network", "nst-kill", "-p", "127.0.0.1:18095:80", "busybox", "true")
	before := quietState(t)

	ok(t, "run", "-d", "--name", "nstkill", "--network", "nst-kill", "-p", "127.0.0.1:18095:80", "busybox", "sh", "-c", "sleep 60 & sleep 60")
	cleanupContainer(t, "nstkill")
	pid, err := strconv.Atoi(strings.TrimSpace(ok(t, "inspect", "--format", "{{.State.Pid}}", "nstkill")))
	if err != nil {
		t.Fatal(err)
	}
	mon := ppid(t, pid) // the container's init is its monitor's child
	if cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", mon)); !strings.Contains(string(cmdline), "monitor") {
		t.Fatalf("parent %d of the container's init is %q, not its monitor", mon, cmdline)
	}
	if mid := takeNetState(t); mid.veths != before.veths+1 || len(mid.leases) != 1 || mid.rules <= before.rules {
		t.Fatalf("running: veths %d, leases %v, rules %d (before %d, %d)", mid.veths, mid.leases, mid.rules, before.veths, before.rules)
	}
	// The monitor first, so that nobody records the exit, then every
	// process of the container.
	procs := append([]int{pid}, children(pid)...)
	if err := syscall.Kill(mon, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		syscall.Kill(p, syscall.SIGKILL)
	}
	eventually(t, 10*time.Second, "the container's processes to end", func() bool {
		for _, p := range append(procs, mon) {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p)); err == nil && !strings.Contains(string(b), ") Z ") {
				return false
			}
		}
		return true
	})
	if st := status(t, "nstkill"); st != "exited" {
		t.Errorf("status after the kill: %q, want exited", st)
	}
	if d := takeNetState(t).diff(before); d != "" {
		t.Errorf("after the next command:\n%s", d)
	}
	ok(t, "rm", "nstkill")
	// The port is free for another container.
	ok(t, "run", "--rm", "--network", "nst-kill", "-p", "127.0.0.1:18095:80", "busybox", "true")
	settled(t, before, "the last run")
}

// ppid is process pid's parent.
func ppid(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	p, _ := strconv.Atoi(f[1])
	return p
}

// children are pid's child processes.
func children(pid int) []int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	var out []int
	for _, f := range strings.Fields(string(b)) {
		if p, err := strconv.Atoi(f); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// TestNetIsolation: containers of one network reach each other, not
// those of another network; both reach the host.
func TestNetIsolation(t *testing.T) {
	hostNet(t)
	createNetwork(t, "nst-a", "--subnet", "10.202.3.0/24")
	createNetwork(t, "nst-b", "--subnet", "10.202.4.0/24")
	for _, c := range []struct{ name, net string }{{"nsta1", "nst-a"}, {"nsta2", "nst-a"}, {"nstb1", "nst-b"}} {
		ok(t, "run", "-d", "--name", c.name, "--network", c.net, "busybox", "sh", "-c", httpdScript(c.name))
		cleanupContainer(t, c.name)
	}
	a2, b1 := containerIP(t, "nsta2", "nst-a"), containerIP(t, "nstb1", "nst-b")
	get := func(from string, to netip.Addr) result {
		return berth(t, "exec", from, "timeout", "3", "wget", "-q", "-O-", "http://"+to.String()+"/index.html")
	}
	var r result
	eventually(t, 10*time.Second, "nsta1 to reach nsta2", func() bool { r = get("nsta1", a2); return r.code == 0 })
	if strings.TrimSpace(r.stdout) != "nsta2" {
		t.Errorf("nsta1 → nsta2: %v", r)
	}
	if r := get("nsta1", b1); r.code == 0 {
		t.Errorf("nsta1 (nst-a) reached nstb1 (nst-b): %v", r)
	}
	if r := get("nstb1", a2); r.code == 0 {
		t.Errorf("nstb1 (nst-b) reached nsta2 (nst-a): %v", r)
	}
	// Both reach a server on the host, on their own gateway's address.
	for _, c := range []struct{ name, gw string }{{"nsta1", "10.202.3.1"}, {"nstb1", "10.202.4.1"}} {
		ln, err := net.Listen("tcp", net.JoinHostPort(c.gw, "0"))
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "host") })}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		r := berth(t, "exec", c.name, "timeout", "3", "wget", "-q", "-O-", "http://"+ln.Addr().String()+"/")
		if r.code != 0 || r.stdout != "host" {
			t.Errorf("%s → the host's server at %s: %v", c.name, ln.Addr(), r)
		}
	}
}

// TestNetMultiHost makes two network namespaces joined by a veth pair
// (10.202.250.1/30 and .2/30) that act as two hosts, each with a berth of
// its own (--root, --runroot) whose containers' networks live in that
// namespace. A port published on host 1 answers host 2, and a container
// on host 1 reaches a server on host 2 through the NAT (host 2 has no
// route back to the containers' subnet).
func TestNetMultiHost(t *testing.T) {
	hostNet(t)
	suffix := strconv.Itoa(os.Getpid() % 100000)
	ns1, ns2 := "nst-h1-"+suffix, "nst-h2-"+suffix
	for _, ns := range []string{ns1, ns2} {
		mustRun(t, "ip", "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		mustRun(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	mustRun(t, "ip", "link", "add", "nstv1-"+suffix, "netns", ns1, "type", "veth", "peer", "name", "nstv2-"+suffix, "netns", ns2)
	mustRun(t, "ip", "-n", ns1, "addr", "add", "10.202.250.1/30", "dev", "nstv1-"+suffix)
	mustRun(t, "ip", "-n", ns2, "addr", "add", "10.202.250.2/30", "dev", "nstv2-"+suffix)
	mustRun(t, "ip", "-n", ns1, "link", "set", "nstv1-"+suffix, "up")
	mustRun(t, "ip", "-n", ns2, "link", "set", "nstv2-"+suffix, "up")

	// host runs berth in ns's network namespace with a store of its own;
	// the mount namespace is the test's, so that later commands see the
	// mounts earlier ones made.
	host := func(ns string) func(args ...string) result {
		dir := filepath.Join(baseDir, ns)
		return func(args ...string) result {
			t.Helper()
			full := append([]string{"--net=/run/netns/" + ns, berthExe, "--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run")}, args...)
			cmd := exec.Command("nsenter", full...)
			cmd.Env = append(os.Environ(), "BERTH_REGISTRIES_CONF=/nonexistent")
			var out, errb strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &errb
			err := cmd.Run()
			r := result{stdout: out.String(), stderr: errb.String()}
			if ee, ok := err.(*exec.ExitError); ok {
				r.code = ee.ExitCode()
			} else if err != nil {
				t.Fatalf("nsenter berth %v: %v", args, err)
			}
			return r
		}
	}
	h1, h2 := host(ns1), host(ns2)
	// The --rm containers' detached teardowns end before the namespaces
	// and the stores go.
	for _, ns := range []string{ns1, ns2} {
		pending := filepath.Join(baseDir, ns, "run", "network", "pending")
		t.Cleanup(func() {
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				if e, _ := os.ReadDir(pending); len(e) == 0 {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Errorf("network teardowns still pending in %s", pending)
		})
	}
	must := func(r result) string {
		t.Helper()
		if r.code != 0 {
			t.Fatal(r)
		}
		return r.stdout
	}
	for _, h := range []func(...string) result{h1, h2} {
		h := h
		must(h("load", "-q", "-i", filepath.Join(baseDir, "images", "busybox"), "busybox"))
		t.Cleanup(func() {
			ids := strings.Fields(h("ps", "-aq", "--no-trunc").stdout)
			if len(ids) > 0 {
				h(append([]string{"rm", "-f"}, ids...)...)
			}
		})
	}

	must(h1("run", "-d", "--name", "web", "-p", "8080:80", "busybox", "sh", "-c", httpdScript("from-host-1")))
	var r result
	eventually(t, 15*time.Second, "host 2 to reach host 1's published port", func() bool {
		r = h2("run", "--rm", "busybox", "timeout", "3", "wget", "-q", "-O-", "http://10.202.250.1:8080/index.html")
		return r.code == 0
	})
	if strings.TrimSpace(r.stdout) != "from-host-1" {
		t.Errorf("host 2's container → host 1:8080: %v", r)
	}
	// From host 2 itself (no container).
	out, err := exec.Command("ip", "netns", "exec", ns2, "curl", "-sS", "-m", "3", "http://10.202.250.1:8080/index.html").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "from-host-1" {
		t.Errorf("host 2 → host 1:8080: %v: %s", err, out)
	}

	// A server on host 2 (python's http.server in its namespace) is
	// reached by a container on host 1 only through host 1's masquerade.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("from-host-2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := exec.Command("nsenter", "--net=/run/netns/"+ns2, "python3", "-m", "http.server", "--bind", "10.202.250.2", "--directory", dir, "8081")
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-srv.Process.Pid, syscall.SIGKILL); srv.Wait() })
	eventually(t, 15*time.Second, "host 1's container to reach host 2's server", func() bool {
		r = h1("run", "--rm", "busybox", "timeout", "3", "wget", "-q", "-O-", "http://10.202.250.2:8081/index.html")
		return r.code == 0
	})
	if strings.TrimSpace(r.stdout) != "from-host-2" {
		t.Errorf("host 1's container → host 2's server: %v", r)
	}
	must(h1("rm", "-f", "web"))
	// Nothing of host 1's containers is left in its namespace.
	eventually(t, 10*time.Second, "host 1's veths to go", func() bool {
		out, _ := exec.Command("ip", "-n", ns1, "-o", "link", "show", "type", "veth").Output()
		return strings.Count(string(out), "\n") == 1 // the link to host 2
	})
}

// mustRun runs a command and fails the test unless it succeeds.
func mustRun(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}
