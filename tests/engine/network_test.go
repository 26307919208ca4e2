package engine

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// hostNet snapshots the host's links and iptables rules, and registers a
// cleanup that removes what appeared after it (bridges, CNI's chains and
// rules), so a test leaves the host as it found it, also on failure.
func hostNet(t *testing.T) {
	t.Helper()
	snap, err := snapshotHostNet()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := snap.restore(); err != nil {
			t.Error(err)
		}
	})
}

// hostNetState is what the host's network had: its links, and its
// iptables chains and rules.
type hostNetState struct {
	links, rules map[string]bool
}

func snapshotHostNet() (hostNetState, error) {
	links, err := hostLinks()
	if err != nil {
		return hostNetState{}, err
	}
	rules, err := iptablesRules()
	if err != nil {
		return hostNetState{}, err
	}
	return hostNetState{links, rules}, nil
}

// restore deletes the links, chains and rules that are not in h: the
// bridges and CNI chains containers made (TestMain runs it after the
// suite too, since bridge is the default network).
func (h hostNetState) restore() error {
	now, err := hostLinks()
	if err != nil {
		return err
	}
	for name := range now {
		if !h.links[name] {
			exec.Command("ip", "link", "del", name).Run()
		}
	}
	return restoreIptables(h.rules)
}

// hostLinks are the host's network interfaces.
func hostLinks() (map[string]bool, error) {
	out, err := exec.Command("ip", "-o", "link").Output()
	if err != nil {
		return nil, fmt.Errorf("ip -o link: %w", err)
	}
	names := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 {
			names[strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]] = true
		}
	}
	return names, nil
}

// vethCount is the number of veth interfaces on the host.
func vethCount(t *testing.T) int {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link", "show", "type", "veth").Output()
	if err != nil {
		t.Fatalf("ip link show type veth: %v", err)
	}
	return strings.Count(string(out), "\n")
}

// iptablesSave is iptablesRules for a test.
func iptablesSave(t *testing.T) map[string]bool {
	t.Helper()
	rules, err := iptablesRules()
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

// iptablesRules is `iptables-save` of the filter and nat tables, as
// "table\tline" entries for chains and rules.
func iptablesRules() (map[string]bool, error) {
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		return nil, fmt.Errorf("iptables-save: %w", err)
	}
	set := map[string]bool{}
	table := ""
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case strings.HasPrefix(line, ":"):
			set[table+"\t"+strings.Fields(line)[0]] = true
		case strings.HasPrefix(line, "-A "):
			set[table+"\t"+line] = true
		}
	}
	return set, nil
}

// ruleCount counts the iptables rules (not chains).
func ruleCount(rules map[string]bool) int {
	n := 0
	for k := range rules {
		if strings.Contains(k, "\t-A ") {
			n++
		}
	}
	return n
}

// restoreIptables deletes the rules and chains that are not in before.
func restoreIptables(before map[string]bool) error {
	now, err := iptablesRules()
	if err != nil {
		return err
	}
	byTable := map[string][]string{}
	var chains []string
	for k := range now {
		if before[k] {
			continue
		}
		table, line, _ := strings.Cut(k, "\t")
		if strings.HasPrefix(line, "-A ") {
			byTable[table] = append(byTable[table], "-D "+line[3:])
		} else {
			chains = append(chains, k)
		}
	}
	for _, k := range chains {
		table, line, _ := strings.Cut(k, "\t")
		byTable[table] = append(byTable[table], "-F "+line[1:])
	}
	for _, k := range chains {
		table, line, _ := strings.Cut(k, "\t")
		byTable[table] = append(byTable[table], "-X "+line[1:])
	}
	var script strings.Builder
	for table, lines := range byTable {
		fmt.Fprintf(&script, "*%s\n%s\nCOMMIT\n", table, strings.Join(lines, "\n"))
	}
	if script.Len() == 0 {
		return nil
	}
	cmd := exec.Command("iptables-restore", "--noflush")
	cmd.Stdin = strings.NewReader(script.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("restore iptables: %v: %s\n%s", err, out, script.String())
	}
	return nil
}

// createNetwork creates a berth network removed when the test ends.
func createNetwork(t *testing.T, name string, args ...string) {
	t.Helper()
	ok(t, append([]string{"network", "create"}, append(args, name)...)...)
	t.Cleanup(func() { berthCmd("network", "rm", name).Run() })
}

// containerIP is the container's address on network.
func containerIP(t *testing.T, ref, network string) netip.Addr {
	t.Helper()
	s := strings.TrimSpace(ok(t, "inspect", "--format", fmt.Sprintf("{{(index .NetworkSettings.Networks %q).IPAddress}}", network), ref))
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("container %s has no address on %s: %q", ref, network, s)
	}
	return a
}

// httpGet fetches url until it answers (the server may be starting).
func httpGet(t *testing.T, url string) string {
	t.Helper()
	var body string
	eventually(t, 10*time.Second, "GET "+url, func() bool {
		c := http.Client{Timeout: time.Second}
		resp, err := c.Get(url)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == 200
	})
	return body
}

// httpdScript serves text on port 80 from /tmp with busybox httpd.
func httpdScript(text string) string {
	return fmt.Sprintf("echo %s > /tmp/index.html && exec httpd -f -p 80 -h /tmp", text)
}

func TestNetDefaultBridge(t *testing.T) {
	hostNet(t)
	// The first container creates the default network's bridge and its
	// gateway address, where the host's server listens.
	ok(t, "run", "--rm", "busybox", "true")
	gw := netip.MustParseAddr("10.88.0.1")
	ln, err := net.Listen("tcp", net.JoinHostPort(gw.String(), "0"))
	if err != nil {
		t.Fatalf("listen on the bridge's gateway: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "hello from the host")
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	url := fmt.Sprintf("http://%s/", ln.Addr())

	out := ok(t, "run", "--rm", "busybox", "sh", "-c", "ip -o -4 addr show eth0; wget -q -O- "+url)
	if !strings.Contains(out, "hello from the host") {
		t.Errorf("the container did not reach the host's server at %s: %q", url, out)
	}
	f := strings.Fields(out)
	var addr netip.Prefix
	for i, w := range f {
		if w == "inet" && i+1 < len(f) {
			addr, _ = netip.ParsePrefix(f[i+1])
		}
	}
	if !netip.MustParsePrefix("10.88.0.0/16").Contains(addr.Addr()) || addr.Bits() != 16 {
		t.Errorf("eth0's address %v is not in 10.88.0.0/16: %q", addr, out)
	}

	// A running container records its endpoint; /etc/hosts names it.
	ok(t, "run", "-d", "--name", "netdef", "busybox", "sleep", "60")
	cleanupContainer(t, "netdef")
	ip := containerIP(t, "netdef", "berth")
	if !netip.MustParsePrefix("10.88.0.0/16").Contains(ip) {
		t.Errorf("inspect IPAddress %v not in 10.88/16", ip)
	}
	doc := inspect(t, "netdef")
	if gwv := field(doc, "NetworkSettings", "Networks", "berth", "Gateway"); gwv != "10.88.0.1" {
		t.Errorf("Gateway %v, want 10.88.0.1", gwv)
	}
	if mac, _ := field(doc, "NetworkSettings", "Networks", "berth", "MacAddress").(string); len(mac) != 17 {
		t.Errorf("MacAddress %q", mac)
	}
	// Its lease and namespace exist while it runs (the loop test checks
	// they go).
	if leases, _ := filepath.Glob(filepath.Join(runDir, "network", "ipam", "berth", ip.String())); len(leases) != 1 {
		t.Errorf("no host-local lease for %s", ip)
	}
	if key := field(doc, "NetworkSettings", "SandboxKey"); key != filepath.Join(runDir, "netns", fmt.Sprint(field(doc, "Id"))) {
		t.Errorf("SandboxKey %v", key)
	}
	hosts := ok(t, "exec", "netdef", "cat", "/etc/hosts")
	id := strings.TrimSpace(ok(t, "inspect", "--format", "{{.Id}}", "netdef"))
	if !strings.Contains(hosts, ip.String()+"\t"+id[:12]) {
		t.Errorf("/etc/hosts lacks %s %s:\n%s", ip, id[:12], hosts)
	}
	if rc := ok(t, "exec", "netdef", "cat", "/etc/resolv.conf"); !strings.Contains(rc, "nameserver") {
		t.Errorf("resolv.conf without a name server: %q", rc)
	}
	ok(t, "rm", "-f", "netdef")
	if n := vethCount(t); n != 0 {
		t.Errorf("%d veths left after rm -f", n)
	}
}

func TestNetPublish(t *testing.T) {
	hostNet(t)
	ok(t, "run", "-d", "--name", "netweb", "-p", "127.0.0.1:18080:80", "busybox", "sh", "-c", httpdScript("published"))
	cleanupContainer(t, "netweb")
	if body := httpGet(t, "http://127.0.0.1:18080/index.html"); strings.TrimSpace(body) != "published" {
		t.Errorf("GET through the published port: %q", body)
	}
	if out := strings.TrimSpace(ok(t, "port", "netweb")); out != "80/tcp -> 127.0.0.1:18080" {
		t.Errorf("port: %q", out)
	}
	if out := strings.TrimSpace(ok(t, "port", "netweb", "80")); out != "127.0.0.1:18080" {
		t.Errorf("port netweb 80: %q", out)
	}
	if r := berth(t, "port", "netweb", "81/tcp"); r.code == 0 || !strings.Contains(r.stderr, "no public port '81/tcp'") {
		t.Errorf("port of an unpublished port: %v", r)
	}
	if out := ok(t, "ps", "--filter", "name=netweb", "--format", "{{.Ports}}"); strings.TrimSpace(out) != "127.0.0.1:18080->80/tcp" {
		t.Errorf("ps PORTS: %q", out)
	}

	// Ranges and UDP.
	ok(t, "run", "-d", "--name", "netrange", "-p", "127.0.0.1:18085-18086:80-81", "-p", "127.0.0.1:18087:53/udp", "busybox", "sleep", "60")
	cleanupContainer(t, "netrange")
	want := "53/udp -> 127.0.0.1:18087\n80/tcp -> 127.0.0.1:18085\n81/tcp -> 127.0.0.1:18086"
	if out := strings.TrimSpace(ok(t, "port", "netrange")); out != want {
		t.Errorf("port netrange:\n%s\nwant\n%s", out, want)
	}
	if out, _ := exec.Command("iptables-save", "-t", "nat").Output(); !strings.Contains(string(out), "--dport 18087") || !strings.Contains(string(out), "--dport 18086") {
		t.Errorf("no DNAT rules for 18086/tcp and 18087/udp:\n%s", out)
	}
	if out := strings.TrimSpace(ok(t, "ps", "--filter", "name=netrange", "--format", "{{.Networks}}")); out != "berth" {
		t.Errorf("ps NETWORKS: %q", out)
	}
	ok(t, "rm", "-f", "netrange")

	// A host port in use, by a container or by a process, is refused
	// before anything is set up.
	veths := vethCount(t)
	r := berth(t, "run", "--rm", "-p", "127.0.0.1:18080:80", "busybox", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "127.0.0.1:18080/tcp") || !strings.Contains(r.stderr, "netweb") {
		t.Errorf("second publish of 18080: %v", r)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	r = berth(t, "run", "--rm", "-p", fmt.Sprintf("127.0.0.1:%d:80", port), "busybox", "true")
	if r.code != 125 || !strings.Contains(r.stderr, fmt.Sprintf("127.0.0.1:%d/tcp", port)) || !strings.Contains(r.stderr, "already allocated") {
		t.Errorf("publish of a port a process holds: %v", r)
	}
	if n := vethCount(t); n != veths {
		t.Errorf("refused runs left veths: %d, want %d", n, veths)
	}

	// -P publishes the exposed port on a random host port.
	ok(t, "run", "-d", "--name", "netrand", "--expose", "80", "-P", "busybox", "sh", "-c", httpdScript("random"))
	cleanupContainer(t, "netrand")
	out := strings.TrimSpace(ok(t, "port", "netrand", "80/tcp"))
	_, hp, err := net.SplitHostPort(out)
	if n, _ := strconv.Atoi(hp); err != nil || n <= 0 {
		t.Fatalf("port netrand 80/tcp: %q", out)
	}
	if body := httpGet(t, "http://127.0.0.1:"+hp+"/index.html"); strings.TrimSpace(body) != "random" {
		t.Errorf("GET through -P's port %s: %q", hp, body)
	}
}

func TestNetUserNetwork(t *testing.T) {
	hostNet(t)
	createNetwork(t, "nettest", "--subnet", "10.254.9.0/24", "--label", "purpose=test")
	ok(t, "run", "-d", "--name", "netsrv", "--network", "nettest", "busybox", "sh", "-c", httpdScript("from-netsrv"))
	cleanupContainer(t, "netsrv")
	ok(t, "run", "-d", "--name", "netcli", "--network", "nettest", "busybox", "sleep", "60")
	cleanupContainer(t, "netcli")
	srv, cli := containerIP(t, "netsrv", "nettest"), containerIP(t, "netcli", "nettest")
	subnet := netip.MustParsePrefix("10.254.9.0/24")
	if !subnet.Contains(srv) || !subnet.Contains(cli) || srv == cli {
		t.Fatalf("addresses %v and %v, want two in %v", srv, cli, subnet)
	}
	var out string
	eventually(t, 10*time.Second, "netcli reaches netsrv's httpd", func() bool {
		r := berth(t, "exec", "netcli", "timeout", "5", "wget", "-q", "-O-", "http://"+srv.String()+"/index.html")
		out = r.stdout
		return r.code == 0
	})
	if strings.TrimSpace(out) != "from-netsrv" {
		t.Errorf("wget from netcli: %q", out)
	}
	if r := berth(t, "exec", "netsrv", "ping", "-c", "1", "-W", "2", cli.String()); r.code != 0 {
		t.Errorf("netsrv cannot ping netcli: %v", r)
	}
	// container:NAME shares netsrv's namespace.
	if out := ok(t, "run", "--rm", "--network", "container:netsrv", "busybox", "ip", "-o", "-4", "addr", "show", "eth0"); !strings.Contains(out, srv.String()+"/24") {
		t.Errorf("container:netsrv sees %q, want %s", out, srv)
	}

	var nets []map[string]any
	doc := ok(t, "network", "inspect", "nettest")
	if err := json.Unmarshal([]byte(doc), &nets); err != nil || len(nets) != 1 {
		t.Fatalf("network inspect: %v %s", err, doc)
	}
	if l, _ := nets[0]["Labels"].(map[string]any); l["purpose"] != "test" {
		t.Errorf("labels %v", nets[0]["Labels"])
	}
	if cfg := filepath.Base(fmt.Sprint(nets[0]["ConfigFile"])); cfg != "nettest.conflist" {
		t.Errorf("ConfigFile %v", nets[0]["ConfigFile"])
	}
	if out := ok(t, "network", "ls"); !strings.Contains(out, "nettest") || !strings.Contains(out, "berth") {
		t.Errorf("network ls: %s", out)
	}

	// Bad input: an overlapping subnet, removing a network in use.
	if r := berth(t, "network", "create", "--subnet", "10.254.9.128/25", "netover"); r.code == 0 || !strings.Contains(r.stderr, "network nettest") {
		t.Errorf("overlapping create: %v", r)
	}
	r := berth(t, "network", "rm", "nettest")
	if r.code == 0 || !strings.Contains(r.stderr, "netsrv") || !strings.Contains(r.stderr, "netcli") {
		t.Errorf("rm of a network in use: %v", r)
	}
	ok(t, "rm", "-f", "netsrv", "netcli")
	ok(t, "network", "rm", "nettest")
	if r := berth(t, "network", "inspect", "nettest"); r.code == 0 {
		t.Errorf("removed network still inspects: %v", r)
	}
}

func TestNetNoneAndHost(t *testing.T) {
	hostNet(t)
	out := strings.TrimSpace(ok(t, "run", "--rm", "--network", "none", "busybox", "ip", "-o", "link"))
	if lines := strings.Split(out, "\n"); len(lines) != 1 || !strings.Contains(lines[0], "lo:") {
		t.Errorf("--network none has links %q, want only lo", out)
	}
	host, err := hostLinks()
	if err != nil {
		t.Fatal(err)
	}
	out = ok(t, "run", "--rm", "--network", "host", "busybox", "ip", "-o", "link")
	for name := range host {
		if !strings.Contains(out, " "+name+":") && !strings.Contains(out, " "+name+"@") {
			t.Errorf("--network host lacks the host's %s: %s", name, out)
		}
	}
}

func TestNetRunRmLoop(t *testing.T) {
	hostNet(t)
	ok(t, "run", "--rm", "-p", "127.0.0.1:18090:80", "busybox", "true") // the bridge and CNI's shared chains
	veths, rules := vethCount(t), ruleCount(iptablesSave(t))
	for i := 0; i < 30; i++ {
		ok(t, "run", "--rm", "-p", "127.0.0.1:18090:80", "busybox", "true")
	}
	if n := vethCount(t); n != veths {
		t.Errorf("veths: %d after the loop, %d before", n, veths)
	}
	if n := ruleCount(iptablesSave(t)); n != rules {
		t.Errorf("iptables rules: %d after the loop, %d before", n, rules)
	}
	leases, _ := filepath.Glob(filepath.Join(runDir, "network", "ipam", "*", "[0-9a-f]*[.:]*"))
	if len(leases) != 0 {
		t.Errorf("IPAM leases left: %v", leases)
	}
	cached, _ := filepath.Glob(filepath.Join(runDir, "network", "cache", "results", "*"))
	if len(cached) != 0 {
		t.Errorf("CNI results left: %v", cached)
	}
	ns, _ := os.ReadDir(filepath.Join(runDir, "netns"))
	if len(ns) != 0 {
		t.Errorf("netns files left: %d", len(ns))
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), filepath.Join(runDir, "netns")) {
		t.Errorf("netns mounts left:\n%s", mi)
	}
}

// TestNetCrashTeardown kills a container's monitor: the next berth
// command that notices cleans the container up, and its network goes with
// it, from libcni's cache.
func TestNetCrashTeardown(t *testing.T) {
	hostNet(t)
	veths := vethCount(t)
	ok(t, "run", "-d", "--name", "netcrash", "-p", "127.0.0.1:18091:80", "busybox", "sleep", "60")
	cleanupContainer(t, "netcrash")
	if n := vethCount(t); n != veths+1 {
		t.Fatalf("veths %d while running, want %d", n, veths+1)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(ok(t, "inspect", "--format", "{{.State.Pid}}", "netcrash")))
	if err != nil {
		t.Fatal(err)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The init's parent is its monitor (fields after the command's ")").
	f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	monitor, _ := strconv.Atoi(f[1])
	comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", monitor))
	if !strings.Contains(string(comm), "monitor") {
		t.Fatalf("parent %d of the container's init is %q, not its monitor", monitor, comm)
	}
	if err := syscall.Kill(monitor, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "netcrash to be exited", func() bool { return status(t, "netcrash") == "exited" })
	if n := vethCount(t); n != veths {
		t.Errorf("veths %d after the crash, want %d", n, veths)
	}
	if ns, _ := os.ReadDir(filepath.Join(runDir, "netns")); len(ns) != 0 {
		t.Errorf("netns left after the crash: %d", len(ns))
	}
	if out, _ := exec.Command("iptables-save", "-t", "nat").Output(); strings.Contains(string(out), "18091") {
		t.Errorf("the port's DNAT rule is left after the crash:\n%s", out)
	}
	// The port is free again for another container.
	ok(t, "run", "--rm", "-p", "127.0.0.1:18091:80", "busybox", "true")
}
