package network

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"reflect"
	"strings"
	"testing"

	types100 "github.com/containernetworking/cni/pkg/types/100"
)

func TestPairGateways(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	got, err := PairGateways([]netip.Prefix{p("fd00:b6::/64"), p("10.1.0.0/24")}, []netip.Addr{a("fd00:b6::fe"), a("10.1.0.254")})
	if err != nil {
		t.Fatal(err)
	}
	want := []Subnet{{p("10.1.0.0/24"), a("10.1.0.254")}, {p("fd00:b6::/64"), a("fd00:b6::fe")}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("PairGateways = %v, want %v (IPv4 first, each gateway with its family)", got, want)
	}
	for _, tc := range []struct {
		subnets []netip.Prefix
		gws     []netip.Addr
		want    string
	}{
		{[]netip.Prefix{p("10.1.0.0/24"), p("10.2.0.0/24")}, nil, "at most one IPv4 subnet"},
		{[]netip.Prefix{p("fd00:b6::/64"), p("fd00:b6:1::/64")}, nil, "at most one IPv6 subnet"},
		{[]netip.Prefix{p("10.1.0.0/24")}, []netip.Addr{a("fd00:b6::1")}, "no IPv6 subnet given"},
		{[]netip.Prefix{p("10.1.0.0/24")}, []netip.Addr{a("10.1.0.1"), a("10.1.0.2")}, "at most one IPv4 gateway"},
		{[]netip.Prefix{p("fd00:b6::/64")}, []netip.Addr{a("fd00:b7::1")}, "gateway fd00:b7::1 is not in subnet fd00:b6::/64"},
		{nil, []netip.Addr{a("10.1.0.1")}, "no IPv4 subnet given"},
	} {
		if _, err := PairGateways(tc.subnets, tc.gws); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("PairGateways(%v, %v) = %v, want %q", tc.subnets, tc.gws, err, tc.want)
		}
	}
}

func TestValidateSubnets(t *testing.T) {
	p := netip.MustParsePrefix
	a := netip.MustParseAddr
	if err := validateSubnets([]Subnet{{p("10.1.0.0/24"), a("10.1.0.1")}, {p("fd00:b6::/64"), a("fd00:b6::1")}}, true); err != nil {
		t.Errorf("dual stack: %v", err)
	}
	for _, tc := range []struct {
		subnets []Subnet
		ipv6    bool
		want    string
	}{
		{[]Subnet{{Subnet: p("fd00:b6::/64")}}, false, "IPv6 subnet fd00:b6::/64 needs --ipv6"},
		{[]Subnet{{Subnet: p("fd00:b6::1/64")}}, true, "host bits set (did you mean fd00:b6::/64?)"},
		{[]Subnet{{Subnet: p("10.1.0.0/24")}, {Subnet: p("10.2.0.0/24")}}, true, "at most one IPv4 subnet"},
		{[]Subnet{{Subnet: p("fd00:b6::/64")}, {Subnet: p("fd00:b6:1::/64")}}, true, "at most one IPv6 subnet"},
		{[]Subnet{{p("fd00:b6::/64"), a("fd00:b7::1")}}, true, "gateway fd00:b7::1 is not in subnet fd00:b6::/64"},
		{[]Subnet{{p("fd00:b6::/64"), a("10.1.0.1")}}, true, "gateway 10.1.0.1 is not in subnet fd00:b6::/64"},
		{[]Subnet{{p("fd00:b6::/64"), a("fd00:b6::")}}, true, "network address"},
		{[]Subnet{{p("10.1.0.0/24"), a("10.1.0.255")}}, false, "broadcast address"},
		{[]Subnet{{Subnet: p("fd00:b6::/127")}}, true, "too small"},
		{[]Subnet{{Subnet: p("::ffff:10.0.0.0/120")}}, true, "IPv4-mapped"},
	} {
		if err := validateSubnets(tc.subnets, tc.ipv6); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("validateSubnets(%v, %v) = %v, want %q", tc.subnets, tc.ipv6, err, tc.want)
		}
	}
}

func TestULAPool(t *testing.T) {
	pool := ULAPool("/var/lib/berth/networks")
	if pool.Bits() != 48 || !netip.MustParsePrefix("fd00::/8").Contains(pool.Addr()) || pool != pool.Masked() {
		t.Fatalf("ULAPool = %v, want a /48 in fd00::/8", pool)
	}
	if again := ULAPool("/var/lib/berth/networks"); again != pool {
		t.Errorf("ULAPool changed: %v then %v", pool, again)
	}
	if other := ULAPool("/tmp/other/networks"); other == pool {
		t.Errorf("two roots share the pool %v", pool)
	}
}

func TestFreeULA(t *testing.T) {
	pool := netip.MustParsePrefix("fd12:3456:789a::/48")
	first, err := freeULA(pool, nil, nil)
	if err != nil || first != netip.MustParsePrefix("fd12:3456:789a::/64") {
		t.Fatalf("freeULA on an empty host = %v, %v; want the pool's first /64", first, err)
	}
	nets := []*Network{{Name: "a", Subnets: []Subnet{{Subnet: first}}}}
	routes := []Route{{Dst: netip.MustParsePrefix("fd12:3456:789a:1::/64"), Device: "eth0"}}
	got, err := freeULA(pool, nets, routes)
	if err != nil || got != netip.MustParsePrefix("fd12:3456:789a:2::/64") {
		t.Errorf("freeULA past a network and a route = %v, %v; want fd12:3456:789a:2::/64", got, err)
	}
	// A route covering the whole pool leaves nothing.
	full := []Route{{Dst: netip.MustParsePrefix("fd12::/16"), Device: "eth0"}}
	if _, err := freeULA(pool, nil, full); err == nil || !strings.Contains(err.Error(), "no free IPv6 /64 left in fd12:3456:789a::/48") {
		t.Errorf("freeULA in a covered pool: %v", err)
	}
}

func TestCreateDualStack(t *testing.T) {
	m := testManager(t, Route{Dst: netip.MustParsePrefix("fd00:b6:9::/64"), Device: "eth0"})
	p := netip.MustParsePrefix
	n, err := m.Create("dual", CreateOptions{IPv6: true,
		Subnets: []Subnet{{Subnet: p("10.203.1.0/24")}, {Subnet: p("fd00:b6::/64"), Gateway: netip.MustParseAddr("fd00:b6::fe")}}})
	if err != nil {
		t.Fatal(err)
	}
	want := []Subnet{{p("10.203.1.0/24"), netip.MustParseAddr("10.203.1.1")}, {p("fd00:b6::/64"), netip.MustParseAddr("fd00:b6::fe")}}
	if !reflect.DeepEqual(n.Subnets, want) || !n.IPv6 {
		t.Errorf("subnets %v (IPv6 %v), want %v", n.Subnets, n.IPv6, want)
	}
	// The conflist: one range set per family, a default route per
	// family, NAT for both.
	data, err := os.ReadFile(n.Path)
	if err != nil {
		t.Fatal(err)
	}
	var cl struct {
		Plugins []struct {
			Type   string
			IPMasq bool `json:"ipMasq"`
			IPAM   struct {
				Ranges [][]map[string]string
				Routes []map[string]string
			}
		}
	}
	if err := json.Unmarshal(data, &cl); err != nil {
		t.Fatal(err)
	}
	br := cl.Plugins[0]
	wantRanges := [][]map[string]string{{{"subnet": "10.203.1.0/24", "gateway": "10.203.1.1"}}, {{"subnet": "fd00:b6::/64", "gateway": "fd00:b6::fe"}}}
	if br.Type != "bridge" || !reflect.DeepEqual(br.IPAM.Ranges, wantRanges) {
		t.Errorf("ranges %v, want %v\n%s", br.IPAM.Ranges, wantRanges, data)
	}
	if wantRoutes := []map[string]string{{"dst": "0.0.0.0/0"}, {"dst": "::/0"}}; !reflect.DeepEqual(br.IPAM.Routes, wantRoutes) {
		t.Errorf("routes %v, want %v", br.IPAM.Routes, wantRoutes)
	}
	// NAT is berth's own rule per subnet and family (hostrules.go), made
	// once per network, not the bridge plugin's chain per container.
	if br.IPMasq {
		t.Errorf("ipMasq in the conflist: %s", data)
	}
	if v6 := networkRules(n, true); !strings.Contains(fmt.Sprint(v6), "fd00:b6::/64") || !strings.Contains(fmt.Sprint(v6), "MASQUERADE") {
		t.Errorf("no IPv6 masquerade among the network's rules: %v", v6)
	}
	// Read back as it was written.
	back, err := m.Inspect("dual")
	if err != nil || !reflect.DeepEqual(back.Subnets, want) || !back.IPv6 {
		t.Errorf("Inspect = %+v, %v", back, err)
	}

	// Overlaps, per family: with a network, with a host route.
	for _, tc := range []struct {
		subnets []Subnet
		want    string
	}{
		{[]Subnet{{Subnet: p("fd00:b6::/48")}}, "overlaps subnet fd00:b6::/64 of network dual"},
		{[]Subnet{{Subnet: p("fd00:b6:9:0:1::/80")}}, "overlaps the host's route fd00:b6:9::/64 dev eth0"},
		{[]Subnet{{Subnet: p("10.203.1.128/25")}, {Subnet: p("fd00:b6:2::/64")}}, "overlaps subnet 10.203.1.0/24 of network dual"},
	} {
		if _, err := m.Create("other", CreateOptions{IPv6: true, Subnets: tc.subnets}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Create(%v) = %v, want %q", tc.subnets, err, tc.want)
		}
	}
	if _, err := m.Inspect("other"); err == nil {
		t.Errorf("a refused network exists")
	}
}

func TestCreateIPv6Families(t *testing.T) {
	m := testManager(t)
	p := netip.MustParsePrefix
	pool := ULAPool(m.configDir)

	only, err := m.Create("only6", CreateOptions{IPv6: true, Subnets: []Subnet{{Subnet: p("fd00:b6:1::/64")}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(only.Subnets) != 1 || only.Subnets[0].Subnet != p("fd00:b6:1::/64") || only.Subnets[0].Gateway != netip.MustParseAddr("fd00:b6:1::1") {
		t.Errorf("IPv6-only network's subnets %v", only.Subnets)
	}

	auto, err := m.Create("auto6", CreateOptions{IPv6: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(auto.Subnets) != 2 || !auto.Subnets[0].Subnet.Addr().Is4() || auto.Subnets[1].Subnet.Bits() != 64 || !pool.Contains(auto.Subnets[1].Subnet.Addr()) {
		t.Errorf("--ipv6 alone: subnets %v, want an IPv4 /24 and a /64 of %v", auto.Subnets, pool)
	}
	auto2, err := m.Create("auto6b", CreateOptions{IPv6: true, Subnet: p("10.203.5.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	if len(auto2.Subnets) != 2 || auto2.Subnets[0].Subnet != p("10.203.5.0/24") || auto2.Subnets[1].Subnet == auto.Subnets[1].Subnet || !pool.Contains(auto2.Subnets[1].Subnet.Addr()) {
		t.Errorf("second --ipv6 network: subnets %v (first had %v)", auto2.Subnets, auto.Subnets)
	}

	v4, err := m.Create("v4only", CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(v4.Subnets) != 1 || !v4.Subnets[0].Subnet.Addr().Is4() {
		t.Errorf("a network without --ipv6 has %v", v4.Subnets)
	}
	if _, err := m.Create("bad", CreateOptions{Subnets: []Subnet{{Subnet: p("fd00:b6:2::/64")}}}); err == nil || !strings.Contains(err.Error(), "needs --ipv6") {
		t.Errorf("IPv6 subnet without --ipv6: %v", err)
	}
}

func TestCheckPortFamilies(t *testing.T) {
	p := netip.MustParsePrefix
	dual := &Network{Name: "dual", Subnets: []Subnet{{Subnet: p("10.203.1.0/24")}, {Subnet: p("fd00:b6::/64")}}}
	v4 := &Network{Name: "v4", Subnets: []Subnet{{Subnet: p("10.203.2.0/24")}}}
	v6 := &Network{Name: "v6", Subnets: []Subnet{{Subnet: p("fd00:b6:1::/64")}}}
	port := func(ip string) []PortMapping {
		m := PortMapping{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}
		if ip != "" {
			m.HostIP = netip.MustParseAddr(ip)
		}
		return []PortMapping{m}
	}
	for _, tc := range []struct {
		n    *Network
		ip   string
		want string // "" for accepted
	}{
		{dual, "", ""},
		{dual, "127.0.0.1", ""},
		{dual, "fd00:b6::1", ""},
		{dual, "::1", "IPv6 loopback"},
		{v4, "fd00:b6::1", "network v4 has no IPv6 subnet"},
		{v6, "127.0.0.1", "network v6 has no IPv4 subnet"},
		{v6, "fd00:b6:1::1", ""},
	} {
		err := checkPortFamilies(tc.n, port(tc.ip))
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("checkPortFamilies(%s, %q) = %v, want %q", tc.n.Name, tc.ip, err, tc.want)
		}
	}
}

func TestResultDualStack(t *testing.T) {
	ipnet := func(s string) net.IPNet {
		ip, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		n.IP = ip
		return *n
	}
	zero := 0
	res := &types100.Result{CNIVersion: "1.0.0",
		Interfaces: []*types100.Interface{{Name: "eth0", Mac: "02:42:0a:cb:01:02", Sandbox: "/run/netns/x"}},
		IPs: []*types100.IPConfig{
			{Interface: &zero, Address: ipnet("fd00:b6::2/64"), Gateway: net.ParseIP("fd00:b6::fe")},
			{Interface: &zero, Address: ipnet("10.203.1.2/24"), Gateway: net.ParseIP("10.203.1.1")},
		}}
	r, err := result(res, "eth0")
	if err != nil {
		t.Fatal(err)
	}
	if r.Address != netip.MustParsePrefix("10.203.1.2/24") || r.Gateway != netip.MustParseAddr("10.203.1.1") {
		t.Errorf("IPv4: %v via %v", r.Address, r.Gateway)
	}
	if r.Address6 != netip.MustParsePrefix("fd00:b6::2/64") || r.Gateway6 != netip.MustParseAddr("fd00:b6::fe") {
		t.Errorf("IPv6: %v via %v", r.Address6, r.Gateway6)
	}
	// IPv6 only: Address is the IPv6 one too.
	res.IPs = res.IPs[:1]
	if r, err = result(res, "eth0"); err != nil || r.Address != r.Address6 || r.Gateway6 != netip.MustParseAddr("fd00:b6::fe") {
		t.Errorf("IPv6 only: %+v, %v", r, err)
	}
}
