package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/moby/api/types/container"
	mobynet "github.com/moby/moby/api/types/network"

	"github.com/berth-project/berth/containers"
	"github.com/berth-project/berth/metadata"
	"github.com/berth-project/berth/network"
)

// Networks returns the manager of the store's networks: conflists in
// ROOT/networks, libcni's cache and IPAM leases under the run root.
func (s *Store) Networks() *network.Manager {
	return network.New(filepath.Join(s.root, "networks"), filepath.Join(s.runRoot, "network"), nil)
}

// netnsPath is where the network namespace berth makes for container id
// is mounted.
func (s *Store) netnsPath(id string) string { return filepath.Join(s.runRoot, "netns", id) }

// networkName is the berth network a container's network mode means, or
// "" for modes without one (host, none, container:ID).
func networkName(mode container.NetworkMode) string {
	switch {
	case mode == "" || mode == "default" || mode == "bridge":
		return network.DefaultName
	case mode.IsHost() || mode.IsNone() || mode.IsContainer():
		return ""
	}
	return string(mode)
}

// beginNetwork gives c, before its runtime starts, the network of its
// mode: for bridge and user networks a network namespace of its own,
// attached through CNI with its published ports; for container:NAME that
// container's. It works in two steps, so that the CNI ADD (the plugins'
// executions, most of a network's cost) runs while the container is
// being created: beginNetwork makes the network namespace, sets
// c.NetworkSettings to name it (SandboxKey, all bundle and the runtime's
// create need), starts the ADD in a goroutine and returns. finish waits
// for the ADD, then records its result in c.NetworkSettings and, on
// networks that resolve names, c's names in the network's name records
// (see registerNames). finish must be called (also when the start fails:
// it is what waits for the goroutine); a second call returns the first
// one's error. On an error of either step the namespace is removed and
// nothing is left attached.
func (s *Store) beginNetwork(ctx context.Context, c *containers.Container) (finish func() error, _ error) {
	none := func() error { return nil }
	c.NetworkSettings = nil
	mode := c.HostConfig.NetworkMode
	if mode.IsContainer() {
		other, err := s.Container(ctx, mode.ConnectedContainer())
		if err != nil {
			return nil, fmt.Errorf("network mode %s: %w", mode, err)
		}
		if other.State.Status != containers.Running || other.State.Pid == 0 {
			return nil, fmt.Errorf("cannot join network of a non running container: %s: %w", other.Name, ErrConflict)
		}
		c.NetworkSettings = &container.NetworkSettings{SandboxKey: fmt.Sprintf("/proc/%d/ns/net", other.State.Pid)}
		return none, nil
	}
	name := networkName(mode)
	if name == "" {
		return none, nil
	}
	ports, err := s.portMappings(ctx, c)
	if err != nil {
		return nil, err
	}
	s.finishPendingTeardowns(ctx, false)
	mgr := s.Networks()
	if _, err := mgr.Inspect(name); err != nil {
		return nil, err
	}
	// What a start that died half-way left: its attachments, its netns.
	if err := mgr.Detach(ctx, c.ID); err != nil {
		return nil, err
	}
	ns := s.netnsPath(c.ID)
	network.RemoveNS(ns)
	if err := network.NewNS(ns); err != nil {
		return nil, err
	}
	c.NetworkSettings = &container.NetworkSettings{SandboxKey: ns}

	// The network mode's network and those of network connect, with
	// the user's aliases, fixed addresses and MAC.
	nets := attachments(c)
	var results []network.Result
	var attachErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		results, attachErr = mgr.Attach(ctx, c.ID, ns, nets, ports)
	}()
	var once sync.Once
	var finishErr error
	return func() error {
		once.Do(func() {
			<-done
			if finishErr = attachErr; finishErr == nil {
				finishErr = s.recordNetwork(c, ns, results, ports)
			}
			if finishErr != nil {
				network.RemoveNS(ns)
			}
		})
		return finishErr
	}, nil
}

// recordNetwork sets c.NetworkSettings from the CNI results of its
// attachment and registers its names.
func (s *Store) recordNetwork(c *containers.Container, ns string, results []network.Result, ports []network.PortMapping) error {
	settings := &container.NetworkSettings{SandboxKey: ns, Networks: map[string]*mobynet.EndpointSettings{}}
	for _, r := range results {
		ep := &mobynet.EndpointSettings{NetworkID: r.NetworkID, EndpointID: c.ID[:12] + "-" + r.IfName,
			Gateway: r.Gateway, Aliases: r.Aliases}
		if r.Address.Addr().Is4() {
			ep.IPAddress, ep.IPPrefixLen = r.Address.Addr(), r.Address.Bits()
		} else {
			ep.Gateway = netip.Addr{}
		}
		if r.Address6.IsValid() {
			ep.GlobalIPv6Address, ep.GlobalIPv6PrefixLen, ep.IPv6Gateway = r.Address6.Addr(), r.Address6.Bits(), r.Gateway6
		}
		if mac, err := net.ParseMAC(r.MAC); err == nil {
			ep.MacAddress = mobynet.HardwareAddr(mac)
		}
		settings.Networks[r.Network] = ep
	}
	if len(ports) > 0 {
		settings.Ports = mobynet.PortMap{}
		for _, p := range ports {
			port, _ := mobynet.PortFrom(p.ContainerPort, mobynet.IPProtocol(p.Protocol))
			settings.Ports[port] = append(settings.Ports[port], mobynet.PortBinding{HostIP: p.HostIP, HostPort: strconv.Itoa(int(p.HostPort))})
		}
	}
	c.NetworkSettings = settings
	return s.registerNames(c, results, settings)
}

// netSysctls reports whether c sets a sysctl of its network namespace:
// the runtime's create writes them, and those of an interface (and the
// values CNI's plugins set, which the user's override) need the CNI ADD
// done first.
func netSysctls(c *containers.Container) bool {
	for k := range c.HostConfig.Sysctls {
		if strings.HasPrefix(strings.ReplaceAll(k, "/", "."), "net.") {
			return true
		}
	}
	return false
}

// teardownNetwork undoes beginNetwork for c: CNI DEL of what libcni's
// cache says was added (so it works after a crash and twice) and the
// removal of its network namespace.
//
// DEL runs while the netns is still mounted, so that the bridge plugin
// deletes the veth: unmounting first would leave its deletion to the
// kernel when the namespace ends (later, and never while a container that
// joined it with --network container:NAME runs, though its address's
// lease is released).
func (s *Store) teardownNetwork(ctx context.Context, c *containers.Container) error {
	err := s.Networks().Detach(context.WithoutCancel(ctx), c.ID)
	return errors.Join(err, s.removeNames(c), network.RemoveNS(s.netnsPath(c.ID)))
}

// containerNetNS is the network namespace c's spec joins ("" for a new
// one or the host's).
func containerNetNS(c *containers.Container) string {
	if c.NetworkSettings == nil {
		return ""
	}
	return c.NetworkSettings.SandboxKey
}

// hostsEntries are the /etc/hosts lines that name the container by its
// addresses.
func hostsEntries(c *containers.Container, hostname string) []byte {
	if c.NetworkSettings == nil {
		return nil
	}
	var names []string
	for name := range c.NetworkSettings.Networks {
		names = append(names, name)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, name := range names {
		ep := c.NetworkSettings.Networks[name]
		for _, a := range []netip.Addr{ep.IPAddress, ep.GlobalIPv6Address} {
			if a.IsValid() {
				fmt.Fprintf(&b, "%s\t%s\n", a, hostname)
			}
		}
	}
	return []byte(b.String())
}

// portMappings resolves c's published ports (-p and, with -P, every
// exposed port) to host ports: a missing host port or a range gets a free
// one. A host port another process or another of berth's running
// containers holds is an error naming it, before anything is set up.
func (s *Store) portMappings(ctx context.Context, c *containers.Container) ([]network.PortMapping, error) {
	bindings := mobynet.PortMap{}
	for p, bs := range c.HostConfig.PortBindings {
		bindings[p] = append(bindings[p], bs...)
	}
	if c.HostConfig.PublishAllPorts {
		for p := range c.Config.ExposedPorts {
			if len(bindings[p]) == 0 {
				bindings[p] = []mobynet.PortBinding{{}}
			}
		}
	}
	if len(bindings) == 0 {
		return nil, nil
	}
	taken := map[string]string{} // "ip:port/proto" → container name
	all, err := s.db.ListContainers(ctx)
	if err != nil {
		return nil, err
	}
	for _, o := range all {
		if o.ID == c.ID || o.NetworkSettings == nil || (o.State.Status != containers.Running && o.State.Status != containers.Paused) {
			continue
		}
		for p, bs := range o.NetworkSettings.Ports {
			for _, b := range bs {
				taken[b.HostPort+"/"+string(p.Proto())] = o.Name
			}
		}
	}
	var ports []mobynet.Port
	for p := range bindings {
		ports = append(ports, p)
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i].String() < ports[j].String() })
	var out []network.PortMapping
	for _, p := range ports {
		for _, b := range bindings[p] {
			m := network.PortMapping{HostIP: b.HostIP, ContainerPort: p.Num(), Protocol: string(p.Proto())}
			if m.HostIP.IsValid() && m.HostIP.IsUnspecified() {
				m.HostIP = netip.Addr{}
			}
			checked := false
			switch {
			case b.HostPort == "":
				// A port free a moment ago may be some connection's
				// local port by the time it is checked again: try a few.
				for try := 0; ; try++ {
					if m.HostPort, err = network.FreePort(m.Protocol, m.HostIP); err != nil {
						return nil, err
					}
					err = network.CheckPorts([]network.PortMapping{m})
					if other := taken[strconv.Itoa(int(m.HostPort))+"/"+m.Protocol]; err == nil && other != "" {
						err = fmt.Errorf("port %d is allocated by container %s", m.HostPort, other)
					}
					if err == nil {
						break
					}
					if try == 9 {
						return nil, fmt.Errorf("no free host port for %s: %w", p, err)
					}
				}
				checked = true
			case strings.Contains(b.HostPort, "-"):
				r, err := mobynet.ParsePortRange(b.HostPort)
				if err != nil {
					return nil, fmt.Errorf("host port range %q: %w", b.HostPort, err)
				}
				for hp := r.Start(); hp <= r.End() && hp != 0; hp++ {
					m.HostPort = hp
					if taken[strconv.Itoa(int(hp))+"/"+m.Protocol] == "" && network.CheckPorts([]network.PortMapping{m}) == nil {
						break
					}
					if hp == r.End() {
						return nil, fmt.Errorf("no free host port in %s for %s", b.HostPort, p)
					}
				}
			default:
				n, err := strconv.ParseUint(b.HostPort, 10, 16)
				if err != nil {
					return nil, fmt.Errorf("host port %q: %w", b.HostPort, err)
				}
				m.HostPort = uint16(n)
			}
			if other := taken[strconv.Itoa(int(m.HostPort))+"/"+m.Protocol]; other != "" {
				return nil, fmt.Errorf("bind for %s failed: port is already allocated by container %s", m, other)
			}
			if !checked {
				if err := network.CheckPorts([]network.PortMapping{m}); err != nil {
					return nil, err
				}
			}
			taken[strconv.Itoa(int(m.HostPort))+"/"+m.Protocol] = c.Name
			out = append(out, m)
		}
	}
	return out, nil
}

// NetworkUsers returns the names of the containers that use the network
// name (running or not), for network rm.
func (s *Store) NetworkUsers(ctx context.Context, name string) ([]string, error) {
	s.finishPendingTeardowns(ctx, true) // their leases and cached configs
	all, err := s.db.ListContainers(ctx)
	if err != nil && !errors.Is(err, metadata.ErrNotFound) {
		return nil, err
	}
	var out []string
	for _, c := range all {
		if networkName(c.HostConfig.NetworkMode) == name || c.Endpoints[name] != nil {
			out = append(out, c.Name)
		}
	}
	return out, nil
}
