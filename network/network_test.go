package network

import (
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/berth-project/berth/internal/hostnetlock"
	"golang.org/x/sys/unix"
)

func testManager(t *testing.T, routes ...Route) *Manager {
	t.Helper()
	dir := t.TempDir()
	m := New(filepath.Join(dir, "networks"), filepath.Join(dir, "run"), nil)
	m.hostRoutes = func() ([]Route, error) { return routes, nil }
	return m
}

func TestDefaultNetworkConflist(t *testing.T) {
	m := testManager(t)
	nets, err := m.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(nets) != 1 || nets[0].Name != DefaultName || nets[0].Bridge != DefaultBridge {
		t.Fatalf("List = %+v, want only the default network on %s", nets, DefaultBridge)
	}
	data, err := os.ReadFile(filepath.Join(m.configDir, "berth.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	var cl struct {
		CNIVersion string           `json:"cniVersion"`
		Plugins    []map[string]any `json:"plugins"`
	}
	if err := json.Unmarshal(data, &cl); err != nil {
		t.Fatalf("conflist is not JSON: %v\n%s", err, data)
	}
	var types []string
	for _, p := range cl.Plugins {
		types = append(types, p["type"].(string))
	}
	if got := strings.Join(types, ","); got != "bridge,portmap" {
		t.Errorf("plugins %s, want bridge,portmap", got)
	}
	br := cl.Plugins[0]
	if br["ipMasq"] != false || br["isGateway"] != true {
		t.Errorf("default bridge without gateway, or with the plugin's per-container NAT: %v", br)
	}
	ipam := br["ipam"].(map[string]any)
	if ipam["type"] != "host-local" || ipam["dataDir"] != filepath.Join(m.runDir, "ipam") {
		t.Errorf("ipam %v, want host-local in the run dir", ipam)
	}
	if !strings.Contains(string(data), `"subnet": "10.88.0.0/16"`) || !strings.Contains(string(data), `"gateway": "10.88.0.1"`) {
		t.Errorf("conflist lacks the default subnet and gateway:\n%s", data)
	}
	if pm := cl.Plugins[1]; pm["snat"] != true {
		t.Errorf("portmap without snat: %v", pm)
	}
}

func TestCreateInternalAndLabels(t *testing.T) {
	m := testManager(t)
	n, err := m.Create("backend", CreateOptions{Subnet: netip.MustParsePrefix("10.77.0.0/24"), Internal: true, Labels: map[string]string{"team": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Inspect("backend")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != n.ID || !got.Internal || got.Labels["team"] != "a" || got.Subnets[0].Gateway != netip.MustParseAddr("10.77.0.1") {
		t.Errorf("Inspect = %+v, want internal network with label and gateway 10.77.0.1", got)
	}
	if byID, err := m.Inspect(n.ID[:10]); err != nil || byID.Name != "backend" {
		t.Errorf("Inspect by ID prefix = %v, %v", byID, err)
	}
	data, _ := os.ReadFile(n.Path)
	if strings.Contains(string(data), "portmap") || strings.Contains(string(data), `"ipMasq": true`) {
		t.Errorf("internal network has NAT or ports:\n%s", data)
	}
	if _, err := m.Create("backend", CreateOptions{}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second create: %v, want already exists", err)
	}
}

func TestCreateOverlap(t *testing.T) {
	m := testManager(t, Route{Dst: netip.MustParsePrefix("192.0.2.0/24"), Device: "eth0"})
	if _, err := m.Create("one", CreateOptions{Subnet: netip.MustParsePrefix("10.50.0.0/16")}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ subnet, want string }{
		{"10.50.3.0/24", "overlaps subnet 10.50.0.0/16 of network one"},
		{"10.0.0.0/8", "overlaps subnet 10.88.0.0/16 of network berth"},
		{"192.0.2.128/25", "overlaps the host's route 192.0.2.0/24 dev eth0"},
	} {
		_, err := m.Create("two", CreateOptions{Subnet: netip.MustParsePrefix(tc.subnet)})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("create %s: %v, want %q", tc.subnet, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(m.configDir, "two.conflist")); err == nil {
		t.Error("a refused network left its conflist")
	}
	// Without a subnet, the first free /24 of 10.89/16 is used.
	n, err := m.Create("auto", CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n2, err := m.Create("auto2", CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Subnets[0].Subnet.String() != "10.89.0.0/24" || n2.Subnets[0].Subnet.String() != "10.89.1.0/24" {
		t.Errorf("automatic subnets %v and %v, want 10.89.0.0/24 and 10.89.1.0/24", n.Subnets, n2.Subnets)
	}
}

func TestCreateValidation(t *testing.T) {
	m := testManager(t)
	for _, tc := range []struct {
		name string
		opts CreateOptions
		want string
	}{
		{"bridge", CreateOptions{}, "reserved"},
		{"berth", CreateOptions{}, "reserved"},
		{"-x", CreateOptions{}, "invalid network name"},
		{"a/b", CreateOptions{}, "invalid network name"},
		{"n", CreateOptions{Driver: "macvlan"}, "not supported"},
		{"n", CreateOptions{Subnet: netip.MustParsePrefix("10.60.0.1/24")}, "host bits"},
		{"n", CreateOptions{Subnet: netip.MustParsePrefix("10.60.0.0/24"), Gateway: netip.MustParseAddr("10.61.0.1")}, "not in subnet"},
		{"n", CreateOptions{Subnet: netip.MustParsePrefix("fd00::/64")}, "needs --ipv6"},
	} {
		if _, err := m.Create(tc.name, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Create(%q, %+v) = %v, want %q", tc.name, tc.opts, err, tc.want)
		}
	}
}

func TestRemoveAndPrune(t *testing.T) {
	m := testManager(t)
	for _, name := range []string{"a", "b", "c"} {
		if _, err := m.Create(name, CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	used := func(n string) []string {
		if n == "b" {
			return []string{"web", "db"}
		}
		return nil
	}
	if err := m.Remove("b", used); err == nil || !strings.Contains(err.Error(), "web, db") {
		t.Errorf("remove of a used network: %v, want the containers named", err)
	}
	if err := m.Remove("berth", used); err == nil || !strings.Contains(err.Error(), "pre-defined") {
		t.Errorf("remove of the default network: %v", err)
	}
	if err := m.Remove("a", used); err != nil {
		t.Fatal(err)
	}
	// "a" may still resolve, as the prefix of another network's ID.
	if n, err := m.Inspect("a"); err == nil && n.Name == "a" {
		t.Error("a removed network is still there")
	}
	pruned, err := m.Prune(used)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(pruned, ",") != "c" {
		t.Errorf("pruned %v, want [c]", pruned)
	}
	nets, _ := m.List()
	var names []string
	for _, n := range nets {
		names = append(names, n.Name)
	}
	if strings.Join(names, ",") != "berth,b" {
		t.Errorf("left %v, want berth,b", names)
	}
}

func TestParseRoutes(t *testing.T) {
	r, ok, err := parseRoute4(strings.Fields("eth0	0002000C	00000000	0001	0	0	0	00FFFFFF	0	0	0"))
	if err != nil || !ok || r.Dst.String() != "12.0.2.0/24" || r.Device != "eth0" {
		t.Errorf("parseRoute4 = %v %v %v", r, ok, err)
	}
	r, ok, err = parseRoute6(strings.Fields("fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 br0"))
	if err != nil || !ok || r.Dst.String() != "fd00::/64" || r.Device != "br0" {
		t.Errorf("parseRoute6 = %v %v %v", r, ok, err)
	}
	routes, err := HostRoutes()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("ip", "-4", "route", "show", "table", "main").Output()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] == "default" {
			continue
		}
		dst := f[0]
		if !strings.Contains(dst, "/") {
			dst += "/32"
		}
		found := false
		for _, r := range routes {
			if r.Dst.String() == dst {
				found = true
			}
		}
		if !found {
			t.Errorf("HostRoutes %v misses %s (ip route: %s)", routes, dst, line)
		}
	}
}

func TestNetNS(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "netns", "c1")
	if err := NewNS(path); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveNS(path) })
	var own, other unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &own); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(path, &other); err != nil {
		t.Fatal(err)
	}
	if own.Ino == other.Ino {
		t.Fatal("the new netns is the test's own")
	}
	out, err := exec.Command("nsenter", "--net="+path, "ip", "-o", "link").CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter: %v: %s", err, out)
	}
	if lines := strings.Split(strings.TrimSpace(string(out)), "\n"); len(lines) != 1 || !strings.Contains(lines[0], "lo:") || !strings.Contains(lines[0], "UP") {
		t.Errorf("links in the new netns: %s, want only lo, up", out)
	}
	if err := NewNS(path); err == nil {
		t.Error("a second NewNS on the same path succeeded")
	}
	if err := RemoveNS(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("netns file still there: %v", err)
	}
	if err := RemoveNS(path); err != nil {
		t.Errorf("second RemoveNS: %v", err)
	}
}

// TestAttachDetach runs the real plugins: a container netns on a new
// network gets an address, a veth on the bridge and a lease; Detach
// removes both, also when run twice.
func TestAttachDetach(t *testing.T) {
	lockHostNet(t)
	removeNewBerthChains(t)
	m := testManager(t)
	n, err := m.Create("unit", CreateOptions{Subnet: netip.MustParsePrefix("10.251.7.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteBridge(n.Bridge) })
	ns := filepath.Join(m.runDir, "netns", "c1")
	if err := NewNS(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveNS(ns) })
	id := "0123456789abcdef"
	ctx := context.Background()
	t.Cleanup(func() { m.Detach(ctx, id) })
	res, err := m.Attach(ctx, id, ns, []Attachment{{Name: "unit", IP: netip.MustParseAddr("10.251.7.9")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 || res[0].Address.String() != "10.251.7.9/24" || res[0].Gateway.String() != "10.251.7.1" || res[0].MAC == "" || res[0].IfName != "eth0" {
		t.Fatalf("Attach = %+v, want 10.251.7.9/24 via 10.251.7.1 on eth0 with a MAC", res)
	}
	out, _ := exec.Command("nsenter", "--net="+ns, "ip", "-o", "addr", "show", "eth0").CombinedOutput()
	if !strings.Contains(string(out), "10.251.7.9/24") {
		t.Errorf("eth0 in the netns: %s", out)
	}
	leases, _ := filepath.Glob(filepath.Join(m.runDir, "ipam", "unit", "10.*"))
	if len(leases) != 1 {
		t.Errorf("leases %v, want one", leases)
	}
	// NAT and forwarding are the network's rules, not the container's:
	// no per-container chain, and the ADD cached a list without portmap
	// (no ports), which DEL uses.
	masq := []string{"-t", "nat", "-C", chainPost, "-s", "10.251.7.0/24", "!", "-o", n.Bridge, "!", "-d", "224.0.0.0/4",
		"-m", "comment", "--comment", ruleMarker + "unit", "-j", "MASQUERADE"}
	if out, err := exec.Command("iptables", masq...).CombinedOutput(); err != nil {
		t.Errorf("no masquerade rule for the network: %v: %s", err, out)
	}
	if out, _ := exec.Command("iptables-save", "-t", "nat").Output(); strings.Contains(string(out), "10.251.7.9") {
		t.Errorf("per-container NAT rules for 10.251.7.9:\n%s", out)
	}
	cached, _ := filepath.Glob(filepath.Join(m.runDir, "cache", "results", "unit-"+id+"-eth0"))
	if len(cached) != 1 {
		t.Fatalf("libcni cache %v, want one result", cached)
	}
	var entry struct {
		Config []byte `json:"config"`
	}
	if data, err := os.ReadFile(cached[0]); err != nil || json.Unmarshal(data, &entry) != nil {
		t.Fatalf("read libcni cache %s: %v", cached[0], err)
	}
	if strings.Contains(string(entry.Config), "portmap") || !strings.Contains(string(entry.Config), `"type":"bridge"`) {
		t.Errorf("cached config of a container without ports: %s", entry.Config)
	}
	if err := m.Detach(ctx, id); err != nil {
		t.Fatal(err)
	}
	if err := m.Detach(ctx, id); err != nil {
		t.Errorf("second Detach: %v", err)
	}
	leases, _ = filepath.Glob(filepath.Join(m.runDir, "ipam", "unit", "10.*"))
	if len(leases) != 0 {
		t.Errorf("leases after Detach: %v", leases)
	}
	out, _ = exec.Command("ip", "-o", "link", "show", "master", n.Bridge).CombinedOutput()
	if strings.TrimSpace(string(out)) != "" {
		t.Errorf("veths left on %s: %s", n.Bridge, out)
	}
	if err := m.Remove("unit", nil); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("ip", "link", "show", n.Bridge).CombinedOutput(); err == nil {
		t.Errorf("bridge %s left after Remove: %s", n.Bridge, out)
	}
	if out, err := exec.Command("iptables", masq...).CombinedOutput(); err == nil {
		t.Errorf("masquerade rule left after Remove: %s", out)
	}
	if out, _ := exec.Command("iptables-save").Output(); strings.Contains(string(out), ruleMarker+"unit") {
		t.Errorf("the network's rules left after Remove:\n%s", out)
	}
}

// lockHostNet holds the host network lock until the test ends: this
// test's cleanup removes the chains that appeared while it ran, which
// must not be another package's.
func lockHostNet(t *testing.T) {
	unlock, err := hostnetlock.Lock()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unlock)
}

// removeNewBerthChains removes, when the test ends, berth's shared
// chains and their jumps if they did not exist before it.
func removeNewBerthChains(t *testing.T) {
	if exec.Command("iptables", "-t", "filter", "-S", chainFwd, "1").Run() == nil {
		return
	}
	t.Cleanup(func() {
		for _, j := range jumps() {
			exec.Command("iptables", append([]string{"-t", j.table, "-D", j.chain}, j.spec...)...).Run()
		}
		for _, c := range []struct{ table, chain string }{{"nat", chainPost}, {"filter", chainFwd}, {"filter", chainIso1}, {"filter", chainIso2}} {
			exec.Command("iptables", "-t", c.table, "-F", c.chain).Run()
			if out, err := exec.Command("iptables", "-t", c.table, "-X", c.chain).CombinedOutput(); err != nil {
				t.Errorf("remove chain %s: %v: %s", c.chain, err, out)
			}
		}
	})
}

func TestNetworkRules(t *testing.T) {
	n := &Network{Name: "n1", Bridge: "br-x", Subnets: []Subnet{{Subnet: netip.MustParsePrefix("10.1.2.0/24")}, {Subnet: netip.MustParsePrefix("fd00::/64")}}}
	join := func(rs []rule) string {
		var lines []string
		for _, r := range rs {
			lines = append(lines, r.table+" "+r.chain+" "+strings.Join(r.spec, " "))
		}
		return strings.Join(lines, "\n")
	}
	v4 := join(networkRules(n, false))
	for _, want := range []string{
		"nat BERTH-POSTROUTING -s 10.1.2.0/24 ! -o br-x ! -d 224.0.0.0/4 -j MASQUERADE",
		"filter BERTH-ISOLATION-2 -o br-x -j DROP",
		"filter BERTH-FORWARD -i br-x -j ACCEPT",
	} {
		if !strings.Contains(v4, want) {
			t.Errorf("IPv4 rules lack %q:\n%s", want, v4)
		}
	}
	if strings.Contains(v4, "fd00") {
		t.Errorf("IPv4 rules with the IPv6 subnet:\n%s", v4)
	}
	if v6 := join(networkRules(n, true)); !strings.Contains(v6, "-s fd00::/64 ! -o br-x -j MASQUERADE") || strings.Contains(v6, "10.1.2.0") {
		t.Errorf("IPv6 rules:\n%s", v6)
	}
	n.Internal = true
	in := join(networkRules(n, false))
	if strings.Contains(in, "MASQUERADE") || strings.Contains(in, "-i br-x -j ACCEPT") || !strings.Contains(in, "-i br-x ! -o br-x -j DROP") {
		t.Errorf("internal network's rules NAT or forward out:\n%s", in)
	}
	if f := families(&Network{}); len(f) != 1 || f[0] {
		t.Errorf("families of a network without subnets: %v", f)
	}
}

// TestNetnsID: the marker of installed rules names the network
// namespace, since a new namespace numbers its interfaces from 1 again.
func TestNetnsID(t *testing.T) {
	here := netnsID()
	if here == "unknown" || here != netnsID() {
		t.Fatalf("netnsID %q, then %q", here, netnsID())
	}
	other := make(chan string, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			other <- "unshare: " + err.Error()
			return
		}
		other <- netnsID()
	}()
	if id := <-other; id == here || strings.HasPrefix(id, "unshare") {
		t.Errorf("netnsID in a new network namespace %q, in the test's %q", id, here)
	}
}
