package cli

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	mobynet "github.com/moby/moby/api/types/network"
	"github.com/spf13/cobra"

	"github.com/berth-project/berth/containers"
	"github.com/berth-project/berth/network"
)

// addNetworkCommands adds docker's `network` command group: create, ls,
// inspect, rm and prune on berth's CNI networks.
func addNetworkCommands(root *cobra.Command, o *options) {
	cmd := &cobra.Command{Use: "network", Short: "Manage networks", Args: cobra.NoArgs}
	cmd.AddCommand(networkCreateCmd(o), networkLsCmd(o), networkInspectCmd(o), networkRmCmd(o), networkPruneCmd(o))
	addNetworkConnectCommands(cmd, o)
	root.AddCommand(cmd)
}

func networkCreateCmd(o *options) *cobra.Command {
	var subnets, gateways []string
	var driver string
	var labels []string
	var internal, ipv6 bool
	cmd := &cobra.Command{
		Use:   "create [OPTIONS] NETWORK",
		Short: "Create a network",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := network.CreateOptions{Driver: driver, Internal: internal, IPv6: ipv6}
			var err error
			if opts.Subnets, err = parseSubnets(subnets, gateways); err != nil {
				return err
			}
			if opts.Labels, err = parseKVList("label", labels); err != nil {
				return err
			}
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			n, err := s.Networks().Create(args[0], opts)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), n.ID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&driver, "driver", "d", "bridge", "driver to manage the network (bridge)")
	f.StringArrayVar(&subnets, "subnet", nil, "subnet in CIDR format (once per address family)")
	f.StringArrayVar(&gateways, "gateway", nil, "IPv4 or IPv6 gateway for the subnet of its family")
	f.BoolVar(&internal, "internal", false, "restrict external access to the network")
	f.BoolVar(&ipv6, "ipv6", false, "enable IPv6 networking")
	f.StringArrayVar(&labels, "label", nil, "set metadata on a network")
	return cmd
}

// parseSubnets reads network create's --subnet and --gateway values and
// pairs each gateway with the subnet of its family.
func parseSubnets(subnets, gateways []string) ([]network.Subnet, error) {
	var ps []netip.Prefix
	for _, v := range subnets {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return nil, fmt.Errorf("invalid --subnet %q: %w", v, err)
		}
		ps = append(ps, p)
	}
	var gws []netip.Addr
	for _, v := range gateways {
		a, err := netip.ParseAddr(v)
		if err != nil {
			return nil, fmt.Errorf("invalid --gateway %q: %w", v, err)
		}
		gws = append(gws, a)
	}
	return network.PairGateways(ps, gws)
}

// networkJSON is docker's shape of an inspected network, with berth's
// conflist path.
type networkJSON struct {
	Name       string
	ID         string `json:"Id"`
	Created    string
	Scope      string
	Driver     string
	EnableIPv6 bool
	IPAM       struct {
		Driver string
		Config []map[string]string
	}
	Internal   bool
	Options    map[string]string
	Labels     map[string]string
	Containers map[string]map[string]string
	ConfigFile string
}

func toNetworkJSON(n *network.Network, users []string) networkJSON {
	j := networkJSON{Name: n.Name, ID: n.ID, Created: n.Created.Local().Format(time.RFC3339Nano), Scope: "local",
		Driver: n.Driver, EnableIPv6: n.IPv6, Internal: n.Internal, Labels: n.Labels, ConfigFile: n.Path,
		Options: map[string]string{"com.docker.network.bridge.name": n.Bridge}, Containers: map[string]map[string]string{}}
	j.IPAM.Driver = "host-local"
	for _, s := range n.Subnets {
		j.IPAM.Config = append(j.IPAM.Config, map[string]string{"Subnet": s.Subnet.String(), "Gateway": s.Gateway.String()})
	}
	if j.Labels == nil {
		j.Labels = map[string]string{}
	}
	for _, u := range users {
		j.Containers[u] = map[string]string{"Name": u}
	}
	return j
}

func networkInspectCmd(o *options) *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "inspect [OPTIONS] NETWORK [NETWORK...]",
		Short: "Display detailed information on one or more networks",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var tmpl *templateT
			if format != "" && format != "json" {
				t, err := parseFormat(format)
				if err != nil {
					return err
				}
				tmpl = t
			}
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			mgr := s.Networks()
			out := []networkJSON{}
			var errs []error
			for _, ref := range args {
				n, err := mgr.Inspect(ref)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				users, _ := s.NetworkUsers(cmd.Context(), n.Name)
				out = append(out, toNetworkJSON(n, users))
			}
			if err := writeInspect(cmd.OutOrStdout(), tmpl, out); err != nil {
				return err
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().StringVarP(&format, "format", "f", "", "format the output using a Go template or json")
	return cmd
}

func networkLsCmd(o *options) *cobra.Command {
	var quiet, noTrunc bool
	cmd := &cobra.Command{
		Use:     "ls [OPTIONS]",
		Aliases: []string{"list"},
		Short:   "List networks",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			nets, err := s.Networks().List()
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
			if !quiet {
				fmt.Fprintln(tw, "NETWORK ID\tNAME\tDRIVER\tSCOPE\tSUBNET")
			}
			for _, n := range nets {
				id := n.ID
				if !noTrunc {
					id = id[:min(12, len(id))]
				}
				if quiet {
					fmt.Fprintln(tw, id)
					continue
				}
				var subnets []string
				for _, sn := range n.Subnets {
					subnets = append(subnets, sn.Subnet.String())
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\tlocal\t%s\n", id, n.Name, n.Driver, strings.Join(subnets, ","))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only display network IDs")
	cmd.Flags().BoolVar(&noTrunc, "no-trunc", false, "do not truncate the output")
	return cmd
}

func networkRmCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:     "rm NETWORK [NETWORK...]",
		Aliases: []string{"remove"},
		Short:   "Remove one or more networks",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			mgr := s.Networks()
			inUse := func(name string) []string {
				users, _ := s.NetworkUsers(cmd.Context(), name)
				return users
			}
			return forEach(cmd, args, func(ref string) (string, error) {
				return ref, mgr.Remove(ref, inUse)
			})
		},
	}
}

func networkPruneCmd(o *options) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "prune [OPTIONS]",
		Short: "Remove all unused networks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			removed, err := s.Networks().Prune(func(name string) []string {
				users, _ := s.NetworkUsers(cmd.Context(), name)
				return users
			})
			w := cmd.OutOrStdout()
			if len(removed) > 0 {
				fmt.Fprintln(w, "Deleted Networks:")
				for _, n := range removed {
					fmt.Fprintln(w, n)
				}
			}
			return err
		},
	}
	// Prune never asks: berth has no interactive confirmation; -f is
	// accepted for docker's scripts.
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not prompt for confirmation")
	return cmd
}

// publishedPorts are c's published ports as docker's port command lists
// them: "80/tcp -> 127.0.0.1:18080", sorted.
func publishedPorts(c *containers.Container) []string {
	if c.NetworkSettings == nil {
		return nil
	}
	var out []string
	for p, bs := range c.NetworkSettings.Ports {
		for _, b := range bs {
			out = append(out, p.String()+" -> "+hostAddr(b))
		}
	}
	sort.Strings(out)
	return out
}

// hostAddr is a binding's host address and port, 0.0.0.0 for every
// address.
func hostAddr(b mobynet.PortBinding) string {
	ip := "0.0.0.0"
	if b.HostIP.IsValid() {
		ip = b.HostIP.String()
	}
	return net.JoinHostPort(ip, b.HostPort)
}

// psPorts is ps's PORTS column: "127.0.0.1:18080->80/tcp, ...".
func psPorts(c *containers.Container) string {
	if c.NetworkSettings == nil {
		return ""
	}
	var out []string
	for p, bs := range c.NetworkSettings.Ports {
		for _, b := range bs {
			out = append(out, hostAddr(b)+"->"+p.String())
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// portLookup is `port CONTAINER PORT[/PROTO]`: the host addresses of one
// published port.
func portLookup(c *containers.Container, spec string) ([]string, error) {
	if !strings.Contains(spec, "/") {
		spec += "/tcp"
	}
	p, err := mobynet.ParsePort(spec)
	if err != nil {
		return nil, fmt.Errorf("invalid port %q: %w", spec, err)
	}
	var out []string
	if c.NetworkSettings != nil {
		for _, b := range c.NetworkSettings.Ports[p] {
			out = append(out, hostAddr(b))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no public port '%s' published for %s", spec, c.Name)
	}
	return out, nil
}

// psNetworks is ps's NETWORKS column: the networks c is attached to, or
// those its network mode names.
func psNetworks(c *containers.Container) string {
	if ns := c.NetworkSettings; ns != nil && len(ns.Networks) > 0 {
		var names []string
		for n := range ns.Networks {
			names = append(names, n)
		}
		sort.Strings(names)
		return strings.Join(names, ",")
	}
	switch mode := c.HostConfig.NetworkMode; mode {
	case "", "default", "bridge":
		return network.DefaultName
	default:
		return mode.NetworkName()
	}
}
