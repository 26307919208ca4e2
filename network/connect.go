package network

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/containernetworking/cni/libcni"
)

// AttachInterface connects the container in the network namespace
// netnsPath to one more network, as interface ifName (CNI ADD): network
// connect of a running container. It publishes no ports. On error
// nothing is left attached.
func (m *Manager) AttachInterface(ctx context.Context, containerID, netnsPath, ifName string, a Attachment) (Result, error) {
	n, list, err := m.get(a.Name)
	if err != nil {
		return Result{}, err
	}
	rt := &libcni.RuntimeConf{ContainerID: containerID, NetNS: netnsPath, IfName: ifName, CapabilityArgs: map[string]any{}}
	if ips := a.ips(); len(ips) > 0 {
		rt.CapabilityArgs["ips"] = ips
	}
	if a.MAC != nil {
		rt.CapabilityArgs["mac"] = a.MAC.String()
	}
	res, err := m.cni.AddNetworkList(ctx, list, rt)
	if err != nil {
		m.cni.DelNetworkList(context.WithoutCancel(ctx), list, rt)
		return Result{}, fmt.Errorf("attach to network %s: %w", n.Name, err)
	}
	r, err := result(res, ifName)
	if err != nil {
		m.cni.DelNetworkList(context.WithoutCancel(ctx), list, rt)
		return Result{}, fmt.Errorf("attach to network %s: %w", n.Name, err)
	}
	r.Network, r.NetworkID, r.Aliases = n.Name, n.ID, a.Aliases
	return r, nil
}

// DetachNetwork is Detach for the one network name: CNI DEL from
// libcni's cache. A container not attached to it is not an error.
func (m *Manager) DetachNetwork(ctx context.Context, containerID, name string) error {
	atts, err := m.cni.GetCachedAttachments(containerID)
	if err != nil {
		return fmt.Errorf("container %s: read CNI cache: %w", containerID, err)
	}
	var errs []error
	for _, a := range atts {
		if a.Network != name {
			continue
		}
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

// ips are a's fixed addresses, for the "ips" capability of CNI.
func (a Attachment) ips() []string {
	var out []string
	for _, ip := range []netip.Addr{a.IP, a.IP6} {
		if ip.IsValid() {
			out = append(out, ip.String())
		}
	}
	return out
}
