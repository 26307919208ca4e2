package network

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"os"
)

// IPv6 on berth's networks.
//
// A network has at most one subnet per address family. Which families it
// has follows from what network create was given, as with docker:
//
//   - no --subnet: an IPv4 /24 from 10.89.0.0/16, and with --ipv6 also an
//     IPv6 /64 from berth's ULA pool (see ULAPool);
//   - an IPv4 --subnet: that one, and with --ipv6 a /64 from the pool;
//   - an IPv6 --subnet (which needs --ipv6): that one only, an IPv6-only
//     network (docker 27 would add an IPv4 subnet; docker 28 asks for
//     --ipv4=false, which berth does not have);
//   - both: a dual-stack network.
//
// Containers on an IPv6 network get an address of each family the
// network has. NAT: the bridge plugin masquerades every address of a
// container whose network is not internal, IPv6 ones included (NAT66 with
// ip6tables), as docker 27 does with its default ip6tables=true: a ULA
// subnet is not routed anywhere else, so without it a container could
// reach no IPv6 host beyond this one.

// PairGateways matches each gateway with the subnet of its address family
// (docker's --subnet and --gateway, repeated once per family). There may
// be one subnet and one gateway per family; a gateway must lie in its
// subnet. Subnets come back in the order given, IPv4 before IPv6.
func PairGateways(subnets []netip.Prefix, gateways []netip.Addr) ([]Subnet, error) {
	var out []Subnet
	for _, p := range subnets {
		for _, s := range out {
			if s.Subnet.Addr().Is4() == p.Addr().Is4() {
				return nil, fmt.Errorf("subnets %s and %s: a network has at most one %s subnet", s.Subnet, p, family(p.Addr()))
			}
		}
		out = append(out, Subnet{Subnet: p})
	}
	if len(out) == 2 && out[0].Subnet.Addr().Is6() {
		out[0], out[1] = out[1], out[0]
	}
	for _, gw := range gateways {
		i := -1
		for j, s := range out {
			if s.Subnet.Addr().Is4() == gw.Is4() {
				i = j
			}
		}
		switch {
		case i < 0:
			return nil, fmt.Errorf("gateway %s: no %s subnet given for it (--subnet)", gw, family(gw))
		case out[i].Gateway.IsValid():
			return nil, fmt.Errorf("gateways %s and %s: a network has at most one %s gateway", out[i].Gateway, gw, family(gw))
		case !out[i].Subnet.Contains(gw):
			return nil, fmt.Errorf("gateway %s is not in subnet %s", gw, out[i].Subnet)
		}
		out[i].Gateway = gw
	}
	return out, nil
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// validateSubnets checks the subnets a network is created with: one per
// family, no host bits, an IPv6 one only with ipv6, gateways inside and
// neither the subnet's network address nor (IPv4) its broadcast address.
func validateSubnets(subnets []Subnet, ipv6 bool) error {
	var seen4, seen6 bool
	for _, s := range subnets {
		p := s.Subnet
		if !p.IsValid() {
			return errors.New("invalid subnet")
		}
		seen := &seen4
		if p.Addr().Is6() {
			if p.Addr().Is4In6() {
				return fmt.Errorf("subnet %s: an IPv4-mapped IPv6 subnet is not allowed", p)
			}
			if !ipv6 {
				return fmt.Errorf("IPv6 subnet %s needs --ipv6", p)
			}
			seen = &seen6
		}
		if *seen {
			return fmt.Errorf("subnet %s: a network has at most one %s subnet", p, family(p.Addr()))
		}
		*seen = true
		if p != p.Masked() {
			return fmt.Errorf("subnet %s has host bits set (did you mean %s?)", p, p.Masked())
		}
		if p.Bits() > p.Addr().BitLen()-2 {
			return fmt.Errorf("subnet %s is too small: it has no room for a gateway and a container", p)
		}
		gw := s.Gateway
		if !gw.IsValid() {
			continue
		}
		if gw.Is4() != p.Addr().Is4() || !p.Contains(gw) {
			return fmt.Errorf("gateway %s is not in subnet %s", gw, p)
		}
		if gw == p.Addr() {
			return fmt.Errorf("gateway %s is the network address of subnet %s", gw, p)
		}
		if gw.Is4() && gw == lastAddr(p) {
			return fmt.Errorf("gateway %s is the broadcast address of subnet %s", gw, p)
		}
	}
	return nil
}

// lastAddr is the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := range b {
		keep := p.Bits() - 8*i
		switch {
		case keep <= 0:
			b[i] = 0xff
		case keep < 8:
			b[i] |= 0xff >> keep
		}
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// planSubnets returns the subnets of a new network: the ones asked for,
// checked against the existing networks and the host's routes, and the
// free ones it gets when it asked for none of a family (see the comment
// at the top of this file). ulaPool is the /48 IPv6 subnets come from.
func planSubnets(asked []Subnet, ipv6 bool, ulaPool netip.Prefix, existing []*Network, routes []Route) ([]Subnet, error) {
	var out []Subnet
	var has4, has6 bool
	for _, s := range asked {
		if err := checkOverlap(s.Subnet, existing, routes); err != nil {
			return nil, err
		}
		has4 = has4 || s.Subnet.Addr().Is4()
		has6 = has6 || s.Subnet.Addr().Is6()
		out = append(out, s)
	}
	if !has4 && !has6 {
		p, err := freeSubnet(existing, routes)
		if err != nil {
			return nil, err
		}
		out = append(out, Subnet{Subnet: p})
	}
	if ipv6 && !has6 {
		p, err := freeULA(ulaPool, existing, routes)
		if err != nil {
			return nil, err
		}
		out = append(out, Subnet{Subnet: p})
	}
	for i := range out {
		if !out[i].Gateway.IsValid() {
			out[i].Gateway = out[i].Subnet.Addr().Next()
		}
	}
	return out, nil
}

// ULAPool is the /48 berth takes the IPv6 subnets of networks created
// with --ipv6 and no IPv6 --subnet from: a Unique Local Address prefix
// (RFC 4193, fd00::/8) whose 40-bit Global ID is a hash of the host's
// /etc/machine-id and of berth's network config directory. Docker 27 does
// the same with its engine ID; a hash rather than a random draw keeps the
// pool the same for every network of one berth root (so /64s are handed
// out in order, like the IPv4 /24s), and different on another host or
// under another root. Without a machine ID the directory alone is hashed.
func ULAPool(configDir string) netip.Prefix {
	id, _ := os.ReadFile("/etc/machine-id")
	sum := sha256.Sum256(append(append(id, 0), configDir...))
	var a [16]byte
	a[0] = 0xfd
	copy(a[1:6], sum[:5])
	return netip.PrefixFrom(netip.AddrFrom16(a), 48)
}

// freeULA picks the first /64 of pool (a /48) that overlaps no network and
// no host route.
func freeULA(pool netip.Prefix, networks []*Network, routes []Route) (netip.Prefix, error) {
	base := pool.Masked().Addr().As16()
	for i := 0; i < 1<<16; i++ {
		a := base
		a[6], a[7] = byte(i>>8), byte(i)
		p := netip.PrefixFrom(netip.AddrFrom16(a), 64)
		if checkOverlap(p, networks, routes) == nil {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free IPv6 /64 left in %s: give one with --subnet", pool)
}

// checkPortFamilies refuses published ports the portmap plugin's DNAT
// rules cannot serve: a host address of a family n has no subnet of (no
// rule would be made for it), and the IPv6 loopback ::1 (the kernel does
// not route packets from ::1 to another namespace, and IPv6 has no
// route_localnet; docker serves it with its userland proxy, which berth
// does not have). A port on every address is served over each family n
// has, except on ::1.
func checkPortFamilies(n *Network, ports []PortMapping) error {
	for _, p := range ports {
		ip := p.HostIP
		if !ip.IsValid() {
			continue
		}
		if ip.Is6() && ip.IsLoopback() {
			return fmt.Errorf("publish %s: the IPv6 loopback address cannot be published (the kernel does not route ::1 to a container); use 127.0.0.1 or one of the host's IPv6 addresses", p)
		}
		has := false
		for _, s := range n.Subnets {
			has = has || s.Subnet.Addr().Is4() == ip.Unmap().Is4()
		}
		if !has {
			return fmt.Errorf("publish %s: network %s has no %s subnet", p, n.Name, family(ip.Unmap()))
		}
	}
	return nil
}
