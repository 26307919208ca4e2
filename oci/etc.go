package oci

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
)

// defaultHosts is the /etc/hosts of a container with its own network
// namespace, before the extra hosts.
const defaultHosts = `127.0.0.1	localhost
::1	localhost ip6-localhost ip6-loopback
fe00::	ip6-localnet
ff00::	ip6-mcastprefix
ff02::1	ip6-allnodes
ff02::2	ip6-allrouters
`

// Hosts returns the content of a container's /etc/hosts. With
// hostNetwork it starts from the host's file hostHosts, as docker does,
// else from docker's loopback entries. extra are docker's --add-host
// values, "host:ip" or "host=ip" (the IP may be IPv6); each becomes an
// "ip<TAB>host" line. The special IP "host-gateway" is not supported yet
// and is an error. hostname is not mapped to an address here: the
// container's address is the network's business, which adds its own line.
func Hosts(hostname string, extra []string, hostNetwork bool, hostHosts []byte) ([]byte, error) {
	var b bytes.Buffer
	if hostNetwork {
		b.Write(hostHosts)
		if b.Len() > 0 && !bytes.HasSuffix(hostHosts, []byte("\n")) {
			b.WriteByte('\n')
		}
	} else {
		b.WriteString(defaultHosts)
	}
	for _, e := range extra {
		host, ip, err := parseExtraHost(e)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%s\t%s\n", ip, host)
	}
	return b.Bytes(), nil
}

// parseExtraHost splits one --add-host value.
func parseExtraHost(e string) (host, ip string, err error) {
	host, ip, ok := strings.Cut(e, "=")
	if !ok {
		host, ip, ok = strings.Cut(e, ":")
	}
	if !ok || host == "" || ip == "" {
		return "", "", fmt.Errorf("invalid extra host %q: want host:ip or host=ip", e)
	}
	if strings.ContainsAny(host, " \t\n") {
		return "", "", fmt.Errorf("invalid extra host %q: bad host name %q", e, host)
	}
	if ip == "host-gateway" {
		return "", "", fmt.Errorf("extra host %q: host-gateway is not supported yet", e)
	}
	// docker accepts "[::1]" for IPv6.
	ip = strings.TrimSuffix(strings.TrimPrefix(ip, "["), "]")
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return "", "", fmt.Errorf("invalid extra host %q: bad IP address %q", e, ip)
	}
	return host, a.String(), nil
}

// Fallback name servers when the host has only loopback ones, as docker.
var defaultDNS = []string{"8.8.8.8", "8.8.4.4"}

// ResolvConf returns a container's /etc/resolv.conf made from the host's
// file host and docker's --dns, --dns-search and --dns-option values,
// each of which, when given, replaces the host's lines of that kind
// (a search of "." means no search domains). Loopback name servers of
// the host cannot be reached from a container's own network namespace and
// are dropped; if none is left, Google's public servers are used, as
// docker does. Other lines of the host's file (comments, sortlist...) are
// kept.
func ResolvConf(host []byte, dns, search, options []string) []byte {
	var other, nameservers, searches, opts []string
	for line := range strings.SplitSeq(string(host), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
			continue
		case f[0] == "nameserver" && len(f) > 1:
			nameservers = append(nameservers, f[1])
		case (f[0] == "search" || f[0] == "domain") && len(f) > 1:
			// The last search or domain line wins, as for the resolver.
			searches = f[1:]
		case f[0] == "options" && len(f) > 1:
			opts = append(opts, f[1:]...)
		default:
			other = append(other, strings.TrimSpace(line))
		}
	}
	if len(dns) > 0 {
		nameservers = dns
	} else {
		var kept []string
		for _, ns := range nameservers {
			if a, err := netip.ParseAddr(strings.Split(ns, "%")[0]); err == nil && a.IsLoopback() {
				continue
			}
			kept = append(kept, ns)
		}
		nameservers = kept
		if len(nameservers) == 0 {
			nameservers = defaultDNS
		}
	}
	if len(search) > 0 {
		searches = search
		if len(search) == 1 && search[0] == "." {
			searches = nil
		}
	}
	if len(options) > 0 {
		opts = options
	}

	var b strings.Builder
	for _, l := range other {
		b.WriteString(l + "\n")
	}
	for _, ns := range nameservers {
		b.WriteString("nameserver " + ns + "\n")
	}
	if len(searches) > 0 {
		b.WriteString("search " + strings.Join(searches, " ") + "\n")
	}
	if len(opts) > 0 {
		b.WriteString("options " + strings.Join(opts, " ") + "\n")
	}
	return []byte(b.String())
}
