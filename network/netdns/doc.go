// Package netdns is the name server of one of berth's user networks: it
// answers the A and AAAA queries of the network's containers for their
// names, aliases and short IDs, and forwards every other query to
// upstream name servers (the host's, or a container's own --dns ones).
//
// The names live in a records file ([Records], JSON) that berth rewrites
// atomically (temporary file and rename, under a lock, see [Update]) when
// a container joins or leaves the network; a [Server] stats the file
// before each query and reloads it when its inode, size or time changed,
// so it never answers from a stale view and needs no signal.
//
// berth is daemonless: package network starts one server process per
// network (the hidden `berth network dns NAME` command) with the first
// container, on the network's gateway address, port 53, and the process
// exits when the last container has left.
package netdns
