package network

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// Attachment is a container's wish to be on a network.
type Attachment struct {
	Name    string     // the network's name ("bridge" and "" are the default network)
	Aliases []string   // more names for the container on this network (for name resolution)
	IP      netip.Addr // a fixed IPv4 address (--ip)
	IP6     netip.Addr // a fixed IPv6 address (--ip6)
	MAC     net.HardwareAddr
}

// PortMapping publishes a container's port on the host.
type PortMapping struct {
	HostIP        netip.Addr // invalid: every address
	HostPort      uint16
	ContainerPort uint16
	Protocol      string // tcp, udp, sctp
}

func (p PortMapping) String() string {
	ip := "0.0.0.0"
	if p.HostIP.IsValid() {
		ip = p.HostIP.String()
	}
	return net.JoinHostPort(ip, strconv.Itoa(int(p.HostPort))) + "/" + p.Protocol
}

// Result is a container's endpoint on one network, as CNI ADD made it.
type Result struct {
	Network   string
	NetworkID string
	IfName    string
	Address   netip.Prefix // the container's address and its subnet's length
	Address6  netip.Prefix // its first IPv6 address, if any (Address too on an IPv6-only network)
	Gateway6  netip.Addr   // the gateway of Address6
	Gateway   netip.Addr
	MAC       string
	Aliases   []string
}

// Attach connects the container in the network namespace netnsPath to
// each network (interfaces eth0, eth1, ... in order) through CNI ADD, and
// publishes ports on the first one. If one network fails, the ones
// already attached are detached again and the error names the network.
func (m *Manager) Attach(ctx context.Context, containerID, netnsPath string, nets []Attachment, ports []PortMapping) (_ []Result, retErr error) {
	if len(nets) == 0 {
		return nil, nil
	}
	defer func() {
		if retErr != nil {
			m.Detach(context.WithoutCancel(ctx), containerID)
		}
	}()
	var out []Result
	for i, a := range nets {
		n, list, err := m.get(a.Name)
		if err != nil {
			return nil, err
		}
		rt := &libcni.RuntimeConf{ContainerID: containerID, NetNS: netnsPath, IfName: "eth" + strconv.Itoa(i),
			CapabilityArgs: map[string]any{}}
		if ips := a.ips(); len(ips) > 0 {
			rt.CapabilityArgs["ips"] = ips
		}
		if a.MAC != nil {
			rt.CapabilityArgs["mac"] = a.MAC.String()
		}
		if i == 0 && len(ports) > 0 {
			if n.Internal {
				return nil, fmt.Errorf("network %s is internal: it cannot publish ports", n.Name)
			}
			if err := checkPortFamilies(n, ports); err != nil {
				return nil, err
			}
			var pm []map[string]any
			for _, p := range ports {
				e := map[string]any{"hostPort": int(p.HostPort), "containerPort": int(p.ContainerPort), "protocol": p.Protocol}
				if p.HostIP.IsValid() {
					e["hostIP"] = p.HostIP.String()
				}
				pm = append(pm, e)
			}
			rt.CapabilityArgs["portMappings"] = pm
		}
		if pm, _ := rt.CapabilityArgs["portMappings"].([]map[string]any); len(pm) == 0 {
			// Without ports, portmap would only cost an exec at ADD
			// and one at DEL (which uses the list cached at ADD).
			if list, err = withoutPlugin(list, "portmap"); err != nil {
				return nil, fmt.Errorf("attach to network %s: %w", n.Name, err)
			}
		}
		res, err := m.cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			// ADD may have done part of its work and cached nothing:
			// DEL with the same arguments undoes it.
			m.undoAdd(context.WithoutCancel(ctx), list, rt)
			return nil, fmt.Errorf("attach to network %s: %w", n.Name, err)
		}
		if err := m.ensureRules(n); err != nil {
			return nil, err
		}
		r, err := result(res, rt.IfName)
		if err != nil {
			return nil, fmt.Errorf("attach to network %s: %w", n.Name, err)
		}
		r.Network, r.NetworkID, r.Aliases = n.Name, n.ID, a.Aliases
		out = append(out, r)
	}
	return out, nil
}

// result reads a CNI ADD result: the address, gateway and MAC address of
// the container's interface ifName.
func result(res types.Result, ifName string) (Result, error) {
	if res == nil {
		return Result{}, errors.New("the plugins gave no result")
	}
	cur, err := types100.NewResultFromResult(res)
	if err != nil {
		return Result{}, fmt.Errorf("read CNI result: %w", err)
	}
	out := Result{IfName: ifName}
	for _, ifc := range cur.Interfaces {
		if ifc.Sandbox != "" && ifc.Name == ifName {
			out.MAC = ifc.Mac
		}
	}
	for _, ip := range cur.IPs {
		a, ok := netip.AddrFromSlice(ip.Address.IP)
		if !ok {
			continue
		}
		a = a.Unmap()
		ones, _ := ip.Address.Mask.Size()
		if a.Is6() && !out.Address6.IsValid() {
			out.Address6 = netip.PrefixFrom(a, ones)
			out.Gateway6, _ = netip.AddrFromSlice(ip.Gateway)
		}
		if !out.Address.IsValid() || (out.Address.Addr().Is6() && a.Is4()) {
			out.Address = netip.PrefixFrom(a, ones)
			out.Gateway, _ = netip.AddrFromSlice(ip.Gateway)
			out.Gateway = out.Gateway.Unmap()
		}
	}
	if !out.Address.IsValid() {
		return Result{}, errors.New("the IPAM plugin gave no address")
	}
	return out, nil
}

// Detach undoes Attach for the container: CNI DEL for every network
// libcni's cache says it was attached to, with the configuration, ports
// and result cached at ADD (so it works after a crash, and when the
// network's conflist changed or was removed since). A container that is
// not attached (any more) is not an error.
func (m *Manager) Detach(ctx context.Context, containerID string) error {
	atts, err := m.cni.GetCachedAttachments(containerID)
	if err != nil {
		return fmt.Errorf("container %s: read CNI cache: %w", containerID, err)
	}
	var errs []error
	for _, a := range atts {
		list, err := libcni.ConfListFromBytes(a.Config)
		if err != nil {
			errs = append(errs, fmt.Errorf("detach from network %s: cached config: %w", a.Network, err))
			continue
		}
		rt := &libcni.RuntimeConf{ContainerID: containerID, NetNS: a.NetNS, IfName: a.IfName, Args: a.CniArgs,
			CapabilityArgs: a.CapabilityArgs}
		if err := m.cni.DelNetworkList(ctx, list, rt); err != nil {
			errs = append(errs, fmt.Errorf("detach container %s from network %s: %w", containerID, a.Network, err))
		}
	}
	return errors.Join(errs...)
}

// withoutPlugin returns list without its plugins of type typ (list
// itself if it has none), with Bytes to match: libcni caches Bytes at ADD
// for DEL.
func withoutPlugin(list *libcni.NetworkConfigList, typ string) (*libcni.NetworkConfigList, error) {
	found := false
	for _, p := range list.Plugins {
		found = found || p.Network.Type == typ
	}
	if !found {
		return list, nil
	}
	var raw map[string]any
	if err := json.Unmarshal(list.Bytes, &raw); err != nil {
		return nil, fmt.Errorf("network config %s: %w", list.Name, err)
	}
	plugins, _ := raw["plugins"].([]any)
	var keep []any
	for _, p := range plugins {
		if m, ok := p.(map[string]any); ok && m["type"] == typ {
			continue
		}
		keep = append(keep, p)
	}
	raw["plugins"] = keep
	data, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	return libcni.ConfListFromBytes(data)
}

// undoAdd undoes what a failed ADD of list did: DEL of the list, and
// while that fails, DEL of the list without its last plugin. libcni's
// DEL stops at the first plugin that fails, last first: a plugin that
// fails (one that does not exist) after bridge would otherwise leave
// bridge's veth and host-local's lease. DEL of a plugin that added
// nothing does nothing.
func (m *Manager) undoAdd(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) {
	for m.cni.DelNetworkList(ctx, list, rt) != nil && len(list.Plugins) > 1 {
		shorter, err := firstPlugins(list, len(list.Plugins)-1)
		if err != nil {
			return
		}
		list = shorter
	}
}

// firstPlugins is list with only its first n plugins.
func firstPlugins(list *libcni.NetworkConfigList, n int) (*libcni.NetworkConfigList, error) {
	var raw map[string]any
	if err := json.Unmarshal(list.Bytes, &raw); err != nil {
		return nil, fmt.Errorf("network config %s: %w", list.Name, err)
	}
	plugins, _ := raw["plugins"].([]any)
	if n > len(plugins) {
		n = len(plugins)
	}
	raw["plugins"] = plugins[:n]
	data, err := json.Marshal(raw)
	if err != nil {
		return nil, err
	}
	return libcni.ConfListFromBytes(data)
}
