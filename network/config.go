package network

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/containernetworking/cni/libcni"
)

// DefaultName is the default network's name: the one containers join
// with --network bridge (or none given).
const DefaultName = "berth"

// The default network's bridge and subnet, those of podman's default.
const (
	DefaultBridge = "berth0"
	DefaultSubnet = "10.88.0.0/16"
)

// cniVersion is the CNI spec version berth's conflists ask for.
const cniVersion = "1.0.0"

// Network is one of berth's networks, as its conflist describes it.
type Network struct {
	Name     string
	ID       string // 64 hex digits
	Driver   string // "bridge"
	Bridge   string // the host's bridge interface
	Subnets  []Subnet
	Internal bool // no gateway to the outside, no NAT
	// GatewayOnHost: the bridge holds the gateway addresses (the bridge
	// plugin's isGateway), where the network's name server listens.
	// Every network berth makes has it; internal networks made before
	// berth resolved names on them do not.
	GatewayOnHost bool
	IPv6          bool
	Labels        map[string]string
	Created       time.Time
	// Path is the network's conflist.
	Path string
}

// Subnet is one address range of a network and its gateway.
type Subnet struct {
	Subnet  netip.Prefix
	Gateway netip.Addr
}

// meta is what berth keeps in a conflist beyond CNI's keys: libcni and
// the plugins ignore it.
type meta struct {
	ID       string            `json:"id"`
	Driver   string            `json:"driver"`
	Internal bool              `json:"internal,omitempty"`
	IPv6     bool              `json:"ipv6,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	Created  time.Time         `json:"created"`
}

type conflist struct {
	CNIVersion string           `json:"cniVersion"`
	Name       string           `json:"name"`
	Berth      meta             `json:"berth"`
	Plugins    []map[string]any `json:"plugins"`
}

// validName is docker's rule for network names, [a-zA-Z0-9][a-zA-Z0-9_.-]*
// (matched by hand: a regexp compiled at package initialisation cost
// every berth process its compile).
func validName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return s != ""
}

// reserved are names that mean a network mode, not a network.
var reserved = map[string]bool{"bridge": true, "host": true, "none": true, "default": true, "container": true}

// ValidateName checks a new network's name.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("network name is empty")
	case len(name) > 64:
		return fmt.Errorf("network name %q is longer than 64 characters", name)
	case !validName(name):
		return fmt.Errorf("invalid network name %q: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed", name)
	case reserved[name] || name == DefaultName:
		return fmt.Errorf("network name %q is reserved", name)
	}
	return nil
}

// conflistBytes returns n's CNI configuration list; ipamDir is
// host-local's data directory.
func conflistBytes(n *Network, ipamDir string) ([]byte, error) {
	var ranges [][]map[string]string
	var routes []map[string]string
	for _, s := range n.Subnets {
		r := map[string]string{"subnet": s.Subnet.String()}
		if s.Gateway.IsValid() {
			r["gateway"] = s.Gateway.String()
		}
		ranges = append(ranges, []map[string]string{r})
		if !n.Internal {
			dst := "0.0.0.0/0"
			if s.Subnet.Addr().Is6() {
				dst = "::/0"
			}
			routes = append(routes, map[string]string{"dst": dst})
		}
	}
	ipam := map[string]any{"type": "host-local", "ranges": ranges, "dataDir": ipamDir}
	if len(routes) > 0 {
		ipam["routes"] = routes
	}
	bridge := map[string]any{
		"type":   "bridge",
		"bridge": n.Bridge,
		// The bridge holds the gateway address on internal networks
		// too (as docker's do): their name server answers there; berth's
		// rules keep their traffic off other interfaces, and no route
		// leads out of their containers.
		"isGateway": true,
		// NAT, isolation and forwarding are berth's rules per network
		// (hostrules.go), set up once per bridge: the plugin's ipMasq
		// would add and remove a chain per container.
		"ipMasq":       false,
		"hairpinMode":  true,
		"capabilities": map[string]bool{"ips": true, "mac": true},
		"ipam":         ipam,
	}
	plugins := []map[string]any{bridge}
	if !n.Internal {
		// portmap runs only for containers that publish ports (see
		// Attach); the firewall plugin's per-container rules are
		// replaced by berth's per-network ones.
		plugins = append(plugins,
			map[string]any{"type": "portmap", "snat": true, "capabilities": map[string]bool{"portMappings": true}})
	}
	cl := conflist{CNIVersion: cniVersion, Name: n.Name, Plugins: plugins,
		Berth: meta{ID: n.ID, Driver: n.Driver, Internal: n.Internal, IPv6: n.IPv6, Labels: n.Labels, Created: n.Created.UTC()}}
	return json.MarshalIndent(cl, "", "  ")
}

// parseConflist reads a network from its conflist: berth's keys, and the
// bridge plugin's name and subnets (an operator may have edited them).
func parseConflist(path string, data []byte) (*Network, *libcni.NetworkConfigList, error) {
	list, err := libcni.ConfListFromBytes(data)
	if err != nil {
		return nil, nil, fmt.Errorf("network config %s: %w", path, err)
	}
	var cl struct {
		Name    string `json:"name"`
		Berth   meta   `json:"berth"`
		Plugins []struct {
			Type      string `json:"type"`
			Bridge    string `json:"bridge"`
			IsGateway bool   `json:"isGateway"`
			IPAM      struct {
				Ranges [][]struct {
					Subnet  string `json:"subnet"`
					Gateway string `json:"gateway"`
				} `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(data, &cl); err != nil {
		return nil, nil, fmt.Errorf("network config %s: %w", path, err)
	}
	n := &Network{Name: cl.Name, ID: cl.Berth.ID, Driver: cl.Berth.Driver, Internal: cl.Berth.Internal, IPv6: cl.Berth.IPv6,
		Labels: cl.Berth.Labels, Created: cl.Berth.Created, Path: path}
	if n.Driver == "" {
		n.Driver = "bridge"
	}
	for _, p := range cl.Plugins {
		if p.Type != "bridge" {
			continue
		}
		n.Bridge, n.GatewayOnHost = p.Bridge, p.IsGateway
		for _, set := range p.IPAM.Ranges {
			for _, r := range set {
				pfx, err := netip.ParsePrefix(r.Subnet)
				if err != nil {
					return nil, nil, fmt.Errorf("network config %s: subnet %q: %w", path, r.Subnet, err)
				}
				s := Subnet{Subnet: pfx.Masked()}
				if r.Gateway != "" {
					if s.Gateway, err = netip.ParseAddr(r.Gateway); err != nil {
						return nil, nil, fmt.Errorf("network config %s: gateway %q: %w", path, r.Gateway, err)
					}
				} else {
					s.Gateway = pfx.Masked().Addr().Next()
				}
				n.Subnets = append(n.Subnets, s)
			}
		}
	}
	return n, list, nil
}
