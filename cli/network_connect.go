package cli

import (
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/engine"
)

// addNetworkConnectCommands adds network connect and disconnect, and the
// hidden network dns that serves a network's names.
func addNetworkConnectCommands(cmd *cobra.Command, o *options) {
	cmd.AddCommand(networkConnectCmd(o), networkDisconnectCmd(o), networkDNSCmd(o))
}

func networkConnectCmd(o *options) *cobra.Command {
	var aliases []string
	var ip, ip6 string
	cmd := &cobra.Command{
		Use:   "connect [OPTIONS] NETWORK CONTAINER",
		Short: "Connect a container to a network",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := engine.ConnectOptions{Aliases: aliases}
			var err error
			if ip != "" {
				if opts.IPv4, err = netip.ParseAddr(ip); err != nil || !opts.IPv4.Is4() {
					return fmt.Errorf("invalid argument %q for \"--ip\" flag: not an IPv4 address", ip)
				}
			}
			if ip6 != "" {
				if opts.IPv6, err = netip.ParseAddr(ip6); err != nil || !opts.IPv6.Is6() {
					return fmt.Errorf("invalid argument %q for \"--ip6\" flag: not an IPv6 address", ip6)
				}
			}
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			return s.ConnectNetwork(cmd.Context(), args[0], args[1], opts)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&aliases, "alias", nil, "add network-scoped alias for the container")
	f.StringVar(&ip, "ip", "", "IPv4 address (e.g., 172.30.100.104)")
	f.StringVar(&ip6, "ip6", "", "IPv6 address (e.g., 2001:db8::33)")
	return cmd
}

func networkDisconnectCmd(o *options) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "disconnect [OPTIONS] NETWORK CONTAINER",
		Short: "Disconnect a container from a network",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.open()
			if err != nil {
				return err
			}
			defer s.Close()
			return s.DisconnectNetwork(cmd.Context(), args[0], args[1], force)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "force the container to disconnect from a network")
	return cmd
}

// networkDNSCmd is the name server of one network, started detached by
// the first container that joins it; it exits when the last one has
// left, or on SIGTERM (network rm).
func networkDNSCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:    "dns NETWORK",
		Short:  "Serve a network's container names (started by berth)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := o.open()
			if err != nil {
				return err
			}
			mgr := s.Networks()
			// The store is not needed while serving: do not hold it.
			s.Close()
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			return mgr.ServeDNS(ctx, args[0], os.Stderr)
		},
	}
}
