package cli

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	mobynet "github.com/moby/moby/api/types/network"
	"github.com/spf13/pflag"
)

// netRunFlags are run's per-network flags: the settings of the container's
// endpoint on the network of --network.
type netRunFlags struct {
	aliases, netAliases []string // --network-alias, and docker's old --net-alias
	ip, ip6, macAdr     string
}

func addNetRunFlags(fs *pflag.FlagSet, f *netRunFlags) {
	fs.StringArrayVar(&f.aliases, "network-alias", nil, "add network-scoped alias for the container")
	fs.StringArrayVar(&f.netAliases, "net-alias", nil, "add network-scoped alias for the container")
	_ = fs.MarkHidden("net-alias")
	fs.StringVar(&f.ip, "ip", "", "IPv4 address (e.g., 172.30.100.104)")
	fs.StringVar(&f.ip6, "ip6", "", "IPv6 address (e.g., 2001:db8::33)")
	fs.StringVar(&f.macAdr, "mac-address", "", "container MAC address (e.g., 92:d0:c6:0a:29:33)")
}

// endpoint validates the flags and returns the endpoint settings they
// ask for, nil for none. The network's own rules (aliases and fixed
// addresses only on user networks) are the engine's.
func (f *runFlags) endpoint() (*mobynet.EndpointSettings, error) {
	n := f.net
	ep := &mobynet.EndpointSettings{}
	set := false
	if aliases := append(append([]string(nil), n.aliases...), n.netAliases...); len(aliases) > 0 {
		ep.Aliases, set = aliases, true
	}
	if n.ip != "" || n.ip6 != "" {
		ep.IPAMConfig, set = &mobynet.EndpointIPAMConfig{}, true
	}
	if n.ip != "" {
		a, err := netip.ParseAddr(n.ip)
		if err != nil || !a.Is4() {
			return nil, f.badArg("ip", n.ip, errors.New("not an IPv4 address"))
		}
		ep.IPAMConfig.IPv4Address = a
	}
	if n.ip6 != "" {
		a, err := netip.ParseAddr(n.ip6)
		if err != nil || !a.Is6() || a.Is4In6() {
			return nil, f.badArg("ip6", n.ip6, errors.New("not an IPv6 address"))
		}
		ep.IPAMConfig.IPv6Address = a
	}
	if n.macAdr != "" {
		mac, err := net.ParseMAC(n.macAdr)
		if err != nil || len(mac) != 6 {
			return nil, fmt.Errorf("%s is not a valid mac address", n.macAdr)
		}
		ep.MacAddress, set = mobynet.HardwareAddr(mac), true
	}
	if !set {
		return nil, nil
	}
	return ep, nil
}
