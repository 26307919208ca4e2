package engine

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	mobynet "github.com/moby/moby/api/types/network"

	"github.com/berth-project/berth/containers"
	"github.com/berth-project/berth/network"
)

func TestCheckEndpoint(t *testing.T) {
	user := &network.Network{Name: "web", Subnets: []network.Subnet{{Subnet: netip.MustParsePrefix("10.201.0.0/24")}}}
	def := &network.Network{Name: network.DefaultName, Subnets: []network.Subnet{{Subnet: netip.MustParsePrefix("10.88.0.0/16")}}}
	fixed := func(ip string) *mobynet.EndpointSettings {
		return &mobynet.EndpointSettings{IPAMConfig: &mobynet.EndpointIPAMConfig{IPv4Address: netip.MustParseAddr(ip)}}
	}
	for _, tc := range []struct {
		n    *network.Network
		ep   *mobynet.EndpointSettings
		want string
	}{
		{user, &mobynet.EndpointSettings{Aliases: []string{"a"}}, ""},
		{user, fixed("10.201.0.7"), ""},
		{user, fixed("10.201.1.7"), "no configured subnet or ip-range contain the IP address 10.201.1.7"},
		{def, &mobynet.EndpointSettings{}, ""},
		{def, &mobynet.EndpointSettings{Aliases: []string{"a"}}, "network-scoped alias is supported only for containers in user defined networks"},
		{def, fixed("10.88.0.7"), "user specified IP address is supported on user defined networks only"},
	} {
		err := checkEndpoint(tc.n, tc.ep)
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s %+v: %v, want %q", tc.n.Name, tc.ep, err, tc.want)
		}
	}
}

func TestAttachmentsOrder(t *testing.T) {
	c := &containers.Container{HostConfig: &container.HostConfig{NetworkMode: "zeta"},
		Endpoints: map[string]*mobynet.EndpointSettings{"alpha": {}, "zeta": {Aliases: []string{"z"}}, "beta": {}}}
	var names []string
	for _, a := range attachments(c) {
		names = append(names, a.Name)
	}
	if strings.Join(names, ",") != "zeta,alpha,beta" {
		t.Errorf("attachments %v, want the network mode's first, then by name", names)
	}
	old := &containers.Container{HostConfig: &container.HostConfig{NetworkMode: "bridge"}}
	if a := attachments(old); len(a) != 1 || a[0].Name != network.DefaultName {
		t.Errorf("attachments of a record without endpoints: %+v", a)
	}
	none := &containers.Container{HostConfig: &container.HostConfig{NetworkMode: "none"}}
	if a := attachments(none); len(a) != 0 {
		t.Errorf("attachments with --network none: %+v", a)
	}
}

func TestNextIfName(t *testing.T) {
	s := &container.NetworkSettings{Networks: map[string]*mobynet.EndpointSettings{
		"a": {EndpointID: "0123456789ab-eth0"}, "b": {EndpointID: "0123456789ab-eth2"}}}
	if got := nextIfName(s); got != "eth1" {
		t.Errorf("nextIfName = %s, want eth1", got)
	}
	if got := nextIfName(nil); got != "eth0" {
		t.Errorf("nextIfName(nil) = %s", got)
	}
}

func TestResolvConfOnUserNetwork(t *testing.T) {
	host := []byte("search corp.example\nnameserver 10.255.255.53\noptions edns0\n")
	c := &containers.Container{ID: strings.Repeat("ab", 32), Name: "web",
		HostConfig: &container.HostConfig{NetworkMode: "web", DNS: []netip.Addr{netip.MustParseAddr("192.0.2.53")}},
		NetworkSettings: &container.NetworkSettings{Networks: map[string]*mobynet.EndpointSettings{
			"web": {Gateway: netip.MustParseAddr("10.201.0.1"), DNSNames: []string{"web"}}}}}
	got := string(resolvConf(c, host))
	for _, want := range []string{"nameserver 10.201.0.1\n", "search dns.berth corp.example\n", "options edns0\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("resolv.conf lacks %q:\n%s", want, got)
		}
	}
	// --dns goes to the network's name server as upstreams, not here.
	if strings.Contains(got, "192.0.2.53") || strings.Contains(got, "10.255.255.53") {
		t.Errorf("resolv.conf names other servers:\n%s", got)
	}
	c.HostConfig.DNSSearch = []string{"."}
	if got := string(resolvConf(c, host)); !strings.Contains(got, "search dns.berth\n") {
		t.Errorf("--dns-search . :\n%s", got)
	}
	// Without a name server on its network (the default one): --dns.
	c.NetworkSettings.Networks["web"].DNSNames = nil
	if got := string(resolvConf(c, host)); !strings.Contains(got, "nameserver 192.0.2.53\n") || strings.Contains(got, "10.201.0.1") {
		t.Errorf("default network's resolv.conf:\n%s", got)
	}
	if got := dnsNames(c, []string{"alias", "WEB"}); strings.Join(got, ",") != "web,alias,"+c.ID[:12] {
		t.Errorf("dnsNames = %v", got)
	}
}
