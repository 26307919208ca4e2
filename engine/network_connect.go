package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/container"
	eventtypes "github.com/moby/moby/api/types/events"
	mobynet "github.com/moby/moby/api/types/network"

	"github.com/berth-project/berth/containers"
	"github.com/berth-project/berth/network"
)

// ConnectOptions are network connect's settings for the new endpoint.
type ConnectOptions struct {
	Aliases []string
	IPv4    netip.Addr // --ip
	IPv6    netip.Addr // --ip6
}

// errSharedNetwork is docker's error for connecting or disconnecting a
// container that has no network namespace of berth's.
var errSharedNetwork = errors.New("container sharing network namespace with another container or host cannot be connected to any other network")

// ConnectNetwork connects the container ctrRef to the network netRef
// (docker's network connect). A running container gets a new interface
// (the first free ethN) through CNI ADD in its network namespace and its
// names on the network at once; a created or stopped one joins the
// network when it starts.
func (s *Store) ConnectNetwork(ctx context.Context, netRef, ctrRef string, opts ConnectOptions) error {
	c, unlock, err := s.lockedContainer(ctx, ctrRef)
	if err != nil {
		return err
	}
	defer unlock()
	mgr := s.Networks()
	n, err := mgr.Inspect(netRef)
	if err != nil {
		return err
	}
	if err := checkOwnNetNS(c.HostConfig.NetworkMode); err != nil {
		return err
	}
	if endpointConfigs(c)[n.Name] != nil {
		return fmt.Errorf("endpoint with name %s already exists in network %s: %w", c.Name, n.Name, ErrConflict)
	}
	cfg := &mobynet.EndpointSettings{Aliases: opts.Aliases}
	if opts.IPv4.IsValid() || opts.IPv6.IsValid() {
		cfg.IPAMConfig = &mobynet.EndpointIPAMConfig{IPv4Address: opts.IPv4, IPv6Address: opts.IPv6}
	}
	if err := checkEndpoint(n, cfg); err != nil {
		return err
	}
	var ep *mobynet.EndpointSettings
	if running(c) && c.NetworkSettings != nil && c.NetworkSettings.SandboxKey != "" {
		ifName := nextIfName(c.NetworkSettings)
		r, err := mgr.AttachInterface(ctx, c.ID, c.NetworkSettings.SandboxKey, ifName, attachment(n.Name, cfg))
		if err != nil {
			return err
		}
		ep = endpointSettings(c, r, cfg)
		if err := s.addNames(mgr, c, n.Name, ep); err != nil {
			mgr.DetachNetwork(context.WithoutCancel(ctx), c.ID, n.Name)
			mgr.RemoveDNS(c.ID, n.Name)
			return err
		}
	}
	after, err := s.db.UpdateContainer(ctx, c.ID, func(rec *containers.Container) error {
		eps := maps.Clone(endpointConfigs(rec))
		eps[n.Name] = cfg
		rec.Endpoints = eps
		if ep != nil && rec.NetworkSettings != nil {
			if rec.NetworkSettings.Networks == nil {
				rec.NetworkSettings.Networks = map[string]*mobynet.EndpointSettings{}
			}
			rec.NetworkSettings.Networks[n.Name] = ep
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.networkEvent(ctx, c, n, "connect")
	if ep != nil {
		return s.updateHosts(c, after)
	}
	return nil
}

// updateHosts brings a running container's /etc/hosts up to date after
// a network connect or disconnect, as docker does: the lines naming the
// container at its addresses on networks it left go, those for networks
// it joined are added, and every other line (the container's own edits
// included) stays.
func (s *Store) updateHosts(before, after *containers.Container) error {
	hostname := containerHostname(after)
	lines := func(b []byte) []string { return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") }
	old, cur := lines(hostsEntries(before, hostname)), lines(hostsEntries(after, hostname))
	path := filepath.Join(s.containerDir(after.ID), "hosts")
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("container %s: update /etc/hosts: %w", after.ID, err)
	}
	var out []string
	for _, l := range lines(data) {
		if l == "" || !slices.Contains(old, l) || slices.Contains(cur, l) {
			out = append(out, l)
		}
	}
	for _, l := range cur {
		if l != "" && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	if err := writeInPlace(path, []byte(strings.Join(out, "\n")+"\n")); err != nil {
		return fmt.Errorf("container %s: update /etc/hosts: %w", after.ID, err)
	}
	return nil
}

// DisconnectNetwork disconnects the container ctrRef from the network
// netRef (docker's network disconnect): a running container loses its
// interface (CNI DEL) and its names there; a created or stopped one will
// not join the network when it starts. With force, a network that no
// longer exists is disconnected by name and CNI's errors are ignored.
func (s *Store) DisconnectNetwork(ctx context.Context, netRef, ctrRef string, force bool) error {
	c, unlock, err := s.lockedContainer(ctx, ctrRef)
	if err != nil {
		return err
	}
	defer unlock()
	mgr := s.Networks()
	name := netRef
	n, err := mgr.Inspect(netRef)
	switch {
	case err == nil:
		name = n.Name
	case !force || !errors.Is(err, network.ErrNotFound):
		return err
	}
	if mode := c.HostConfig.NetworkMode; mode.IsHost() {
		return errors.New("container cannot be disconnected from host network or connected to host network")
	}
	if endpointConfigs(c)[name] == nil {
		return fmt.Errorf("container %s is not connected to network %s: %w", c.ID, name, ErrNotFound)
	}
	if running(c) {
		if err := mgr.DetachNetwork(ctx, c.ID, name); err != nil && !force {
			return err
		}
		if err := mgr.RemoveDNS(c.ID, name); err != nil && !force {
			return err
		}
	}
	after, err := s.db.UpdateContainer(ctx, c.ID, func(rec *containers.Container) error {
		eps := maps.Clone(endpointConfigs(rec))
		delete(eps, name)
		rec.Endpoints = eps
		if rec.NetworkSettings != nil {
			delete(rec.NetworkSettings.Networks, name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if n != nil {
		s.networkEvent(ctx, c, n, "disconnect")
	}
	if running(c) {
		return s.updateHosts(c, after)
	}
	return nil
}

// checkOwnNetNS refuses network connect for a container whose network
// namespace is not berth's own for it.
func checkOwnNetNS(mode container.NetworkMode) error {
	switch {
	case mode.IsHost(), mode.IsContainer():
		return errSharedNetwork
	case mode.IsNone():
		return errors.New("container cannot be connected to multiple networks with one of the networks in private (none) mode")
	}
	return nil
}

func running(c *containers.Container) bool {
	return c.State.Status == containers.Running || c.State.Status == containers.Paused
}

// networkEvent records a network event, as docker's connect and
// disconnect: the network's ID, the container's ID, the network's name
// and driver.
func (s *Store) networkEvent(ctx context.Context, c *containers.Container, n *network.Network, action string) {
	s.event(ctx, eventtypes.NetworkEventType, action, n.ID, map[string]string{"container": c.ID, "name": n.Name, "type": n.Driver})
}
