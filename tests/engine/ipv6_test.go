package engine

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The IPv6 tests use networks named v6t-*, IPv4 subnets in 10.203.0.0/16
// and IPv6 subnets in fd00:b6::/48 only (fd00:b6:0:N::/64; note that
// fd00:b6:1::/64 is outside it).

// ip6tablesRules is `ip6tables-save` as "table\tline" entries for chains
// and rules.
func ip6tablesRules(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command("ip6tables-save").Output()
	if err != nil {
		t.Fatalf("ip6tables-save: %v", err)
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
	return set
}

// ip6tablesRestore deletes the ip6tables rules and chains that are not in
// before (the v6 counterpart of hostNet's cleanup).
func ip6tablesRestore(t *testing.T, before map[string]bool) {
	var dels, flush, drop []string
	tables := map[string]bool{}
	for k := range ip6tablesRules(t) {
		if before[k] {
			continue
		}
		table, line, _ := strings.Cut(k, "\t")
		tables[table] = true
		if strings.HasPrefix(line, "-A ") {
			dels = append(dels, table+"\t-D "+line[3:])
		} else {
			flush = append(flush, table+"\t-F "+line[1:])
			drop = append(drop, table+"\t-X "+line[1:])
		}
	}
	var script strings.Builder
	for table := range tables {
		fmt.Fprintf(&script, "*%s\n", table)
		for _, l := range append(append(dels, flush...), drop...) {
			if tb, cmd, _ := strings.Cut(l, "\t"); tb == table {
				script.WriteString(cmd + "\n")
			}
		}
		script.WriteString("COMMIT\n")
	}
	if script.Len() == 0 {
		return
	}
	cmd := exec.Command("ip6tables-restore", "--noflush")
	cmd.Stdin = strings.NewReader(script.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("restore ip6tables: %v: %s\n%s", err, out, script.String())
	}
}

// hostNet6 is hostNet for both families.
func hostNet6(t *testing.T) {
	t.Helper()
	hostNet(t)
	before := ip6tablesRules(t)
	t.Cleanup(func() { ip6tablesRestore(t, before) })
}

// containerIP6 is the container's IPv6 address on network, and its
// prefix length.
func containerIP6(t *testing.T, ref, network string) netip.Prefix {
	t.Helper()
	ep, _ := field(inspect(t, ref), "NetworkSettings", "Networks", network).(map[string]any)
	a, err := netip.ParseAddr(fmt.Sprint(ep["GlobalIPv6Address"]))
	if err != nil {
		t.Fatalf("container %s has no IPv6 address on %s: %v", ref, network, ep)
	}
	bits, _ := ep["GlobalIPv6PrefixLen"].(float64)
	return netip.PrefixFrom(a, int(bits))
}

// ipamConfig is network inspect's IPAM.Config: subnet → gateway.
func ipamConfig(t *testing.T, name string) (map[string]string, bool) {
	t.Helper()
	var nets []struct {
		EnableIPv6 bool
		IPAM       struct{ Config []map[string]string }
	}
	doc := ok(t, "network", "inspect", name)
	if err := json.Unmarshal([]byte(doc), &nets); err != nil || len(nets) != 1 {
		t.Fatalf("network inspect %s: %v\n%s", name, err, doc)
	}
	out := map[string]string{}
	for _, c := range nets[0].IPAM.Config {
		out[c["Subnet"]] = c["Gateway"]
	}
	return out, nets[0].EnableIPv6
}

// get6 fetches url once, "" on any failure.
func get6(url string) string {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b))
}

// bridgeOf is the host bridge of the berth network name.
func bridgeOf(t *testing.T, name string) string {
	t.Helper()
	return strings.TrimSpace(ok(t, "network", "inspect", "--format", `{{index .Options "com.docker.network.bridge.name"}}`, name))
}

// v6Lines are the ip6tables chains and rules (from ip6tablesRules) that
// mention one of words.
func v6Lines(rules map[string]bool, words ...string) []string {
	var out []string
	for k := range rules {
		for _, w := range words {
			if strings.Contains(k, w) {
				out = append(out, k)
				break
			}
		}
	}
	return out
}

func TestIPv6DualStack(t *testing.T) {
	hostNet6(t)
	createNetwork(t, "v6t-dual", "--ipv6", "--subnet", "10.203.1.0/24", "--subnet", "fd00:b6::/64", "--gateway", "fd00:b6::fe")
	cfg, v6 := ipamConfig(t, "v6t-dual")
	if !v6 || len(cfg) != 2 || cfg["10.203.1.0/24"] != "10.203.1.1" || cfg["fd00:b6::/64"] != "fd00:b6::fe" {
		t.Fatalf("network inspect: EnableIPv6 %v, IPAM.Config %v", v6, cfg)
	}
	bridge := bridgeOf(t, "v6t-dual")

	// Warm up: the bridge and portmap's shared chains exist after the
	// first container with a published port; what a container adds is
	// gone when it is.
	ok(t, "run", "--rm", "--network", "v6t-dual", "-p", "18095:80", "busybox", "true")
	warm := ip6tablesRules(t)
	veths := vethCount(t)

	ok(t, "run", "-d", "--name", "v6a", "--network", "v6t-dual", "busybox", "sh", "-c", httpdScript("from-v6a"))
	cleanupContainer(t, "v6a")
	out, _ := exec.Command("ip", "-6", "addr", "show", "dev", bridge).Output()
	t.Logf("bridge %s after the first container:\n%s", bridge, out)
	ok(t, "run", "-d", "--name", "v6b", "--network", "v6t-dual", "busybox", "sleep", "120")
	cleanupContainer(t, "v6b")
	a6, b6 := containerIP6(t, "v6a", "v6t-dual"), containerIP6(t, "v6b", "v6t-dual")
	// The first ping6 right after start, no retry: the bridge plugin
	// turns DAD off on the container's side, so the address is usable
	// at once.
	if r := berth(t, "exec", "v6b", "ping6", "-c", "1", "-W", "2", a6.Addr().String()); r.code != 0 {
		t.Errorf("v6b cannot ping6 v6a right after start: %v", r)
	}
	if r := berth(t, "exec", "v6a", "ping6", "-c", "1", "-W", "2", b6.Addr().String()); r.code != 0 {
		t.Errorf("v6a cannot ping6 v6b: %v", r)
	}
	subnet6 := netip.MustParsePrefix("fd00:b6::/64")
	if !subnet6.Contains(a6.Addr()) || !subnet6.Contains(b6.Addr()) || a6 == b6 || a6.Bits() != 64 {
		t.Errorf("IPv6 addresses %v and %v, want two /64 in %v", a6, b6, subnet6)
	}
	ep, _ := field(inspect(t, "v6a"), "NetworkSettings", "Networks", "v6t-dual").(map[string]any)
	if ep["IPv6Gateway"] != "fd00:b6::fe" || ep["Gateway"] != "10.203.1.1" {
		t.Errorf("gateways: IPv6Gateway %v, Gateway %v", ep["IPv6Gateway"], ep["Gateway"])
	}
	a4 := containerIP(t, "v6a", "v6t-dual")
	if !netip.MustParsePrefix("10.203.1.0/24").Contains(a4) {
		t.Errorf("IPv4 address %v not in 10.203.1.0/24", a4)
	}
	if out := ok(t, "exec", "v6a", "ip", "-6", "addr", "show", "eth0"); !strings.Contains(out, "inet6 "+a6.String()) || strings.Contains(out, "tentative") {
		t.Errorf("ip -6 addr in v6a, want %v (not tentative):\n%s", a6, out)
	}
	if out := ok(t, "exec", "v6a", "cat", "/etc/hosts"); !strings.Contains(out, a6.Addr().String()+"\t") || !strings.Contains(out, a4.String()+"\t") {
		t.Errorf("/etc/hosts lacks %v or %v:\n%s", a6.Addr(), a4, out)
	}
	var body string
	eventually(t, 10*time.Second, "v6b fetches from v6a over IPv6", func() bool {
		r := berth(t, "exec", "v6b", "timeout", "5", "wget", "-q", "-O-", "http://["+a6.Addr().String()+"]/index.html")
		body = r.stdout
		return r.code == 0
	})
	if strings.TrimSpace(body) != "from-v6a" {
		t.Errorf("wget over IPv6: %q", body)
	}
	if r := berth(t, "exec", "v6a", "ping6", "-c", "1", "-W", "3", "fd00:b6::fe"); r.code != 0 {
		t.Errorf("v6a cannot ping6 its gateway: %v", r)
	}

	// Published ports: on the gateway's IPv6 address, and on every
	// address (both families, but not ::1: see checkPortFamilies).
	ok(t, "run", "-d", "--name", "v6web", "--network", "v6t-dual", "-p", "[fd00:b6::fe]:18096:80", "-p", "18097:80",
		"busybox", "sh", "-c", httpdScript("from-v6web"))
	cleanupContainer(t, "v6web")
	var got string
	eventually(t, 10*time.Second, "GET [fd00:b6::fe]:18096", func() bool {
		got = get6("http://[fd00:b6::fe]:18096/index.html")
		return got != ""
	})
	if got != "from-v6web" {
		t.Errorf("GET [fd00:b6::fe]:18096: %q", got)
	}
	for _, u := range []string{"http://[fd00:b6::fe]:18097/", "http://127.0.0.1:18097/", "http://10.203.1.1:18097/"} {
		if got := get6(u + "index.html"); got != "from-v6web" {
			t.Errorf("GET %s: %q", u, got)
		}
	}
	if out := strings.TrimSpace(ok(t, "port", "v6web", "80")); !strings.Contains(out, "[fd00:b6::fe]:18096") || !strings.Contains(out, "0.0.0.0:18097") {
		t.Errorf("port v6web 80: %q", out)
	}
	// A fixed IPv6 address (--ip6).
	ok(t, "run", "-d", "--name", "v6fixed", "--network", "v6t-dual", "--ip6", "fd00:b6::99", "busybox", "sleep", "60")
	cleanupContainer(t, "v6fixed")
	if got := containerIP6(t, "v6fixed", "v6t-dual"); got != netip.MustParsePrefix("fd00:b6::99/64") {
		t.Errorf("--ip6 fd00:b6::99: address %v", got)
	}
	r := berth(t, "run", "--rm", "--network", "v6t-dual", "-p", "[::1]:18098:80", "busybox", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "IPv6 loopback") {
		t.Errorf("-p [::1]:18098:80: %v", r)
	}

	// Teardown: what the containers added to ip6tables goes with them,
	// and the network's rules with the network.
	ok(t, "rm", "-f", "v6a", "v6b", "v6web", "v6fixed")
	if n := vethCount(t); n != veths {
		t.Errorf("veths: %d after rm, %d before", n, veths)
	}
	now := ip6tablesRules(t)
	for k := range now {
		if !warm[k] {
			t.Errorf("ip6tables after rm has what it had not before the containers: %s", k)
		}
	}
	ok(t, "network", "rm", "v6t-dual")
	if left := v6Lines(ip6tablesRules(t), "fd00:b6:", "v6t-dual", bridge); len(left) > 0 {
		t.Errorf("ip6tables after network rm still has:\n%s", strings.Join(left, "\n"))
	}
	if _, err := exec.Command("ip", "link", "show", bridge).Output(); err == nil {
		t.Errorf("bridge %s stays after network rm", bridge)
	}
}

func TestIPv6Only(t *testing.T) {
	hostNet6(t)
	createNetwork(t, "v6t-only", "--ipv6", "--subnet", "fd00:b6:0:1::/64")
	if cfg, v6 := ipamConfig(t, "v6t-only"); !v6 || len(cfg) != 1 || cfg["fd00:b6:0:1::/64"] != "fd00:b6:0:1::1" {
		t.Fatalf("network inspect: EnableIPv6 %v, IPAM.Config %v", v6, cfg)
	}
	ok(t, "run", "-d", "--name", "v6o", "--network", "v6t-only", "-p", "18099:80", "busybox", "sh", "-c", httpdScript("from-v6o"))
	cleanupContainer(t, "v6o")
	a6 := containerIP6(t, "v6o", "v6t-only")
	if !netip.MustParsePrefix("fd00:b6:0:1::/64").Contains(a6.Addr()) {
		t.Errorf("address %v not in fd00:b6:0:1::/64", a6)
	}
	ep, _ := field(inspect(t, "v6o"), "NetworkSettings", "Networks", "v6t-only").(map[string]any)
	if ep["IPAddress"] != "" || ep["IPv6Gateway"] != "fd00:b6:0:1::1" {
		t.Errorf("IPv6-only endpoint: IPAddress %q, IPv6Gateway %v", ep["IPAddress"], ep["IPv6Gateway"])
	}
	if out := ok(t, "exec", "v6o", "ip", "-o", "addr", "show", "eth0"); strings.Contains(out, "inet ") || !strings.Contains(out, "inet6 "+a6.String()) {
		t.Errorf("addresses in an IPv6-only container:\n%s", out)
	}
	if r := berth(t, "exec", "v6o", "ping6", "-c", "1", "-W", "3", "fd00:b6:0:1::1"); r.code != 0 {
		t.Errorf("cannot ping6 the gateway: %v", r)
	}
	var got string
	eventually(t, 10*time.Second, "GET [fd00:b6:0:1::1]:18099", func() bool {
		got = get6("http://[fd00:b6:0:1::1]:18099/index.html")
		return got != ""
	})
	if got != "from-v6o" {
		t.Errorf("GET through the published port: %q", got)
	}
	r := berth(t, "run", "--rm", "--network", "v6t-only", "-p", "127.0.0.1:18094:80", "busybox", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "has no IPv4 subnet") {
		t.Errorf("IPv4 host address on an IPv6-only network: %v", r)
	}
}

func TestIPv6CreateErrors(t *testing.T) {
	hostNet6(t)
	createNetwork(t, "v6t-base", "--ipv6", "--subnet", "10.203.2.0/24", "--subnet", "fd00:b6:0:2::/64")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--subnet", "fd00:b6:0:3::/64"}, "IPv6 subnet fd00:b6:0:3::/64 needs --ipv6"},
		{[]string{"--ipv6", "--subnet", "10.203.3.0/24", "--subnet", "10.203.4.0/24"}, "at most one IPv4 subnet"},
		{[]string{"--ipv6", "--subnet", "fd00:b6:0:3::/64", "--subnet", "fd00:b6:0:4::/64"}, "at most one IPv6 subnet"},
		{[]string{"--ipv6", "--subnet", "fd00:b6:0:3::/64", "--gateway", "fd00:b6:0:4::1"}, "gateway fd00:b6:0:4::1 is not in subnet fd00:b6:0:3::/64"},
		{[]string{"--ipv6", "--subnet", "fd00:b6:0:3::/64", "--gateway", "10.203.3.1"}, "no IPv4 subnet given"},
		{[]string{"--ipv6", "--subnet", "fd00:b6:0:3::1/64"}, "host bits set"},
		{[]string{"--ipv6", "--subnet", "fd00:b6::/48"}, "overlaps subnet fd00:b6:0:2::/64 of network v6t-base"},
		{[]string{"--ipv6", "--subnet", "10.203.5.0/24", "--subnet", "fd00:b6:0:2:8000::/65"}, "overlaps subnet fd00:b6:0:2::/64 of network v6t-base"},
	} {
		r := berth(t, append(append([]string{"network", "create"}, tc.args...), "v6t-bad")...)
		if r.code == 0 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("network create %v: %v, want an error with %q", tc.args, r, tc.want)
			berthCmd("network", "rm", "v6t-bad").Run()
		}
		if r := berth(t, "network", "inspect", "v6t-bad"); r.code == 0 {
			t.Errorf("network create %v failed but left the network", tc.args)
			berthCmd("network", "rm", "v6t-bad").Run()
		}
	}

	// --ipv6 without an IPv6 subnet: a /64 of berth's ULA pool. No
	// container joins it (its addresses are outside the tests' range).
	createNetwork(t, "v6t-ula", "--ipv6", "--subnet", "10.203.6.0/24")
	cfg, _ := ipamConfig(t, "v6t-ula")
	var ula netip.Prefix
	for s := range cfg {
		if p := netip.MustParsePrefix(s); p.Addr().Is6() {
			ula = p
		}
	}
	if len(cfg) != 2 || ula.Bits() != 64 || !netip.MustParsePrefix("fd00::/8").Contains(ula.Addr()) {
		t.Errorf("--ipv6 without an IPv6 subnet: IPAM.Config %v, want 10.203.6.0/24 and a ULA /64", cfg)
	}
	if gw := cfg[ula.String()]; gw != ula.Addr().Next().String() {
		t.Errorf("ULA gateway %q, want %v", gw, ula.Addr().Next())
	}
}
