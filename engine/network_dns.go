package engine

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	mobynet "github.com/moby/moby/api/types/network"

	"github.com/berth-project/berth/containers"
	"github.com/berth-project/berth/network"
	"github.com/berth-project/berth/network/netdns"
	"github.com/berth-project/berth/oci"
)

// planEndpoints checks, at create, the user's settings for the network of
// c's network mode (ep: --network-alias, --ip, --ip6, --mac-address; nil
// for none) by docker's rules and records them in c.Endpoints. A
// container without a network mode gets docker's "bridge".
func (s *Store) planEndpoints(c *containers.Container, ep *mobynet.EndpointSettings) error {
	hc := c.HostConfig
	if hc.NetworkMode == "" {
		hc.NetworkMode = "bridge"
	}
	name := networkName(hc.NetworkMode)
	if name == "" {
		if ep != nil {
			switch {
			case len(ep.Aliases) > 0:
				return errors.New("network-scoped alias is supported only for containers in user defined networks")
			case ep.IPAMConfig != nil:
				return errors.New("user specified IP address is supported on user defined networks only")
			case len(ep.MacAddress) > 0:
				return fmt.Errorf("conflicting options: mac-address and the network mode %s", hc.NetworkMode)
			}
		}
		return nil
	}
	n, err := s.Networks().Inspect(name)
	if err != nil {
		return err
	}
	if ep == nil {
		ep = &mobynet.EndpointSettings{}
	}
	if err := checkEndpoint(n, ep); err != nil {
		return err
	}
	c.Endpoints = map[string]*mobynet.EndpointSettings{n.Name: ep}
	return nil
}

// checkEndpoint applies docker's rules to the user's settings ep for
// network n: aliases and fixed addresses only on user networks, an
// address inside one of the network's subnets.
func checkEndpoint(n *network.Network, ep *mobynet.EndpointSettings) error {
	fixed := ep.IPAMConfig != nil && (ep.IPAMConfig.IPv4Address.IsValid() || ep.IPAMConfig.IPv6Address.IsValid())
	if n.Name == network.DefaultName {
		if len(ep.Aliases) > 0 {
			return errors.New("network-scoped alias is supported only for containers in user defined networks")
		}
		if fixed {
			return errors.New("user specified IP address is supported on user defined networks only")
		}
		return nil
	}
	if !fixed {
		return nil
	}
	for _, a := range []netip.Addr{ep.IPAMConfig.IPv4Address, ep.IPAMConfig.IPv6Address} {
		if !a.IsValid() {
			continue
		}
		in := false
		for _, sn := range n.Subnets {
			in = in || sn.Subnet.Contains(a)
		}
		if !in {
			return fmt.Errorf("no configured subnet or ip-range contain the IP address %s", a)
		}
	}
	return nil
}

// endpointConfigs are the networks c joins at start: c.Endpoints, or for
// an older record the network mode's network alone.
func endpointConfigs(c *containers.Container) map[string]*mobynet.EndpointSettings {
	if c.Endpoints != nil {
		return c.Endpoints
	}
	if name := networkName(c.HostConfig.NetworkMode); name != "" {
		return map[string]*mobynet.EndpointSettings{name: {}}
	}
	return map[string]*mobynet.EndpointSettings{}
}

// attachments are the CNI attachments of c's endpoints: the network
// mode's network first (eth0), the others by name.
func attachments(c *containers.Container) []network.Attachment {
	eps := endpointConfigs(c)
	primary := networkName(c.HostConfig.NetworkMode)
	var names []string
	for name := range eps {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		if (names[i] == primary) != (names[j] == primary) {
			return names[i] == primary
		}
		return names[i] < names[j]
	})
	var out []network.Attachment
	for _, name := range names {
		out = append(out, attachment(name, eps[name]))
	}
	return out
}

func attachment(name string, ep *mobynet.EndpointSettings) network.Attachment {
	a := network.Attachment{Name: name}
	if ep == nil {
		return a
	}
	a.Aliases = ep.Aliases
	if ep.IPAMConfig != nil {
		a.IP, a.IP6 = ep.IPAMConfig.IPv4Address, ep.IPAMConfig.IPv6Address
	}
	if len(ep.MacAddress) > 0 {
		a.MAC = net.HardwareAddr(ep.MacAddress)
	}
	return a
}

// endpointSettings is the inspect view of c's endpoint r: what CNI made
// and what the user asked (cfg, may be nil).
func endpointSettings(c *containers.Container, r network.Result, cfg *mobynet.EndpointSettings) *mobynet.EndpointSettings {
	ep := &mobynet.EndpointSettings{NetworkID: r.NetworkID, EndpointID: c.ID[:12] + "-" + r.IfName, Gateway: r.Gateway}
	if r.Address.Addr().Is4() {
		ep.IPAddress, ep.IPPrefixLen = r.Address.Addr(), r.Address.Bits()
	} else {
		ep.IPv6Gateway, ep.Gateway = r.Gateway, netip.Addr{}
	}
	if r.Address6.IsValid() {
		ep.GlobalIPv6Address, ep.GlobalIPv6PrefixLen, ep.IPv6Gateway = r.Address6.Addr(), r.Address6.Bits(), r.Gateway6
	}
	if mac, err := net.ParseMAC(r.MAC); err == nil {
		ep.MacAddress = mobynet.HardwareAddr(mac)
	}
	completeEndpoint(ep, cfg)
	return ep
}

// completeEndpoint adds the user's settings cfg (may be nil) to the
// endpoint ep CNI made.
func completeEndpoint(ep, cfg *mobynet.EndpointSettings) {
	if cfg == nil {
		return
	}
	ep.Aliases, ep.IPAMConfig = cfg.Aliases, cfg.IPAMConfig
}

// dnsNames are the names c answers to on a network with name resolution:
// its name, its aliases there and its short ID, as docker's DNSNames.
func dnsNames(c *containers.Container, aliases []string) []string {
	names := []string{c.Name}
	for _, a := range aliases {
		if !containsFold(names, a) {
			names = append(names, a)
		}
	}
	return append(names, c.ID[:12])
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// registerNames completes c's endpoints in settings with the user's
// settings and puts c's names in the records of each network that
// resolves names, starting its name server if needed.
func (s *Store) registerNames(c *containers.Container, results []network.Result, settings *container.NetworkSettings) error {
	mgr := s.Networks()
	cfgs := endpointConfigs(c)
	for _, r := range results {
		ep := settings.Networks[r.Network]
		if ep == nil {
			continue
		}
		completeEndpoint(ep, cfgs[r.Network])
		if r.Address6.IsValid() && !ep.GlobalIPv6Address.IsValid() {
			ep.GlobalIPv6Address, ep.GlobalIPv6PrefixLen = r.Address6.Addr(), r.Address6.Bits()
		}
		if err := s.addNames(mgr, c, r.Network, ep); err != nil {
			return err
		}
	}
	return nil
}

// addNames puts c's endpoint ep on network name in the network's name
// records, if it resolves names, and sets ep.DNSNames.
func (s *Store) addNames(mgr *network.Manager, c *containers.Container, name string, ep *mobynet.EndpointSettings) error {
	if name == network.DefaultName {
		return nil // no names there: spare the default network's runs a read of its conflist
	}
	n, err := mgr.Inspect(name)
	if err != nil {
		return err
	}
	if !network.HasDNS(n) {
		return nil
	}
	ep.DNSNames = dnsNames(c, ep.Aliases)
	exe, err := s.exe()
	if err != nil {
		return err
	}
	rec := netdns.Endpoint{ContainerID: c.ID, Names: ep.DNSNames, IPv4: ep.IPAddress, IPv6: ep.GlobalIPv6Address}
	for _, d := range c.HostConfig.DNS {
		rec.Upstreams = append(rec.Upstreams, netip.AddrPortFrom(d, 53).String())
	}
	start := []string{exe, "--root", s.root, "--runroot", s.runRoot, "network", "dns", n.Name}
	if err := mgr.AddDNS(n, rec, start); err != nil {
		return fmt.Errorf("container %s: %w", c.Name, err)
	}
	return nil
}

// resolvConf is c's /etc/resolv.conf. On a network that resolves names
// the name server is the network's (on its gateway address: the address
// a container reaches the host by, as podman's aardvark-dns does, rather
// than docker's 127.0.0.11 that needs a NAT rule in every container),
// which forwards other names to the host's servers or the --dns ones;
// the network's domain comes first in the search list. Otherwise the
// host's file with --dns, --dns-search and --dns-option over it.
func resolvConf(c *containers.Container, host []byte) []byte {
	if gw := dnsGateway(c); gw.IsValid() {
		search := c.HostConfig.DNSSearch
		if len(search) == 0 {
			search = hostSearch(host)
		}
		if len(search) == 1 && search[0] == "." {
			search = nil
		}
		search = append([]string{network.DNSDomain}, search...)
		return oci.ResolvConf(host, []string{gw.String()}, search, c.HostConfig.DNSOptions)
	}
	return oci.ResolvConf(host, addrStrings(c.HostConfig.DNS), c.HostConfig.DNSSearch, c.HostConfig.DNSOptions)
}

// dnsGateway is the name server of c's first network (the network
// mode's, else by name) that resolves names, or none.
func dnsGateway(c *containers.Container) netip.Addr {
	if c.NetworkSettings == nil {
		return netip.Addr{}
	}
	primary := networkName(c.HostConfig.NetworkMode)
	var names []string
	for name := range c.NetworkSettings.Networks {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		if (names[i] == primary) != (names[j] == primary) {
			return names[i] == primary
		}
		return names[i] < names[j]
	})
	for _, name := range names {
		ep := c.NetworkSettings.Networks[name]
		if len(ep.DNSNames) == 0 {
			continue
		}
		if ep.Gateway.IsValid() {
			return ep.Gateway
		}
		if ep.IPv6Gateway.IsValid() {
			return ep.IPv6Gateway
		}
	}
	return netip.Addr{}
}

// hostSearch is the search list of the host's resolv.conf (the last
// search or domain line).
func hostSearch(host []byte) []string {
	var out []string
	for line := range strings.SplitSeq(string(host), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && (f[0] == "search" || f[0] == "domain") {
			out = f[1:]
		}
	}
	return out
}

// nextIfName is the first ethN name none of the endpoints in settings
// uses (their EndpointIDs end in "-ethN").
func nextIfName(settings *container.NetworkSettings) string {
	used := map[int]bool{}
	if settings != nil {
		for _, ep := range settings.Networks {
			if _, ifName, ok := strings.Cut(ep.EndpointID, "-"); ok {
				if n, err := strconv.Atoi(strings.TrimPrefix(ifName, "eth")); err == nil {
					used[n] = true
				}
			}
		}
	}
	i := 0
	for used[i] {
		i++
	}
	return "eth" + strconv.Itoa(i)
}

// removeNames takes c's names out of every network's records.
func (s *Store) removeNames(c *containers.Container) error {
	return s.Networks().RemoveDNS(c.ID)
}

// renameDNSNames recomputes the names of a renamed container c on the
// networks that resolve names.
func renameDNSNames(c *containers.Container) {
	if c.NetworkSettings == nil {
		return
	}
	for _, ep := range c.NetworkSettings.Networks {
		if len(ep.DNSNames) > 0 {
			ep.DNSNames = dnsNames(c, ep.Aliases)
		}
	}
}

// refreshNames puts a running container's names (after a rename) in the
// records of its networks that resolve names.
func (s *Store) refreshNames(c *containers.Container) error {
	if !running(c) || c.NetworkSettings == nil {
		return nil
	}
	mgr := s.Networks()
	var errs []error
	for name, ep := range c.NetworkSettings.Networks {
		if len(ep.DNSNames) > 0 {
			errs = append(errs, s.addNames(mgr, c, name, ep))
		}
	}
	return errors.Join(errs...)
}
