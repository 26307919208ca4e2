// Package network gives berth's containers their networks: bridge
// networks described by CNI configuration lists (one NAME.conflist per
// network under berth's root, readable and editable by an operator) and
// driven through libcni and the standard CNI plugins (bridge, host-local,
// portmap), and the network namespaces containers join.
//
// NAT to the outside, forwarding and the isolation between networks are
// berth's iptables rules per network (hostrules.go), installed once per
// bridge, not per container: the bridge plugin's ipMasq and the firewall
// plugin would add and delete about twenty rules (each an iptables
// execution) for every container. portmap runs only for containers that
// publish ports.
//
// A network has an IPv4 subnet, an IPv6 one (with --ipv6), or both, each
// with its gateway: host-local gets one range set per family, and a
// container one address of each (see ipv6.go for how subnets are chosen,
// the ULA pool of --ipv6 without a subnet, NAT66 and published ports on
// IPv6).
//
// A [Manager] creates, lists, inspects and removes networks; the default
// network "berth" (bridge berth0, 10.88.0.0/16, NAT to the outside) exists
// without being created: its file is written on first use. Attach runs
// CNI ADD for each network of a container in a network namespace made by
// [NewNS]; Detach runs CNI DEL from libcni's cache of what ADD did, so it
// works after a crash, when the network's file has changed or is gone,
// and a second time. IPAM leases (host-local) and libcni's cache live
// under the run root, so a reboot, which ends every container, also
// forgets their addresses.
//
// Containers on a user network find each other by name: [Manager.AddDNS]
// puts a container's names in the network's records and starts the
// network's name server (package netdns, run by berth's hidden `network
// dns NAME` command through [Manager.ServeDNS]) on the gateway address;
// [Manager.RemoveDNS] takes them out, and the server exits when the last
// container has left. The default network, like docker's default bridge,
// resolves no names. [Manager.AttachInterface] and
// [Manager.DetachNetwork] connect a running container to one more
// network and back (network connect, disconnect).
package network
