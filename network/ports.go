package network

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// CheckPorts returns an error naming the first host port of ports that
// another process has bound: the portmap plugin's rules would take its
// traffic silently. It binds each port for a moment.
func CheckPorts(ports []PortMapping) error {
	for _, p := range ports {
		ln, err := bindPort(p.Protocol, p.HostIP, p.HostPort)
		if err != nil {
			return fmt.Errorf("bind for %s failed: port is already allocated: %w", p, err)
		}
		ln.Close()
	}
	return nil
}

type closer interface{ Close() error }

func bindPort(proto string, ip netip.Addr, port uint16) (closer, error) {
	host := ""
	if ip.IsValid() {
		host = ip.String()
	}
	addr := net.JoinHostPort(host, strconv.Itoa(int(port)))
	switch proto {
	case "udp":
		return net.ListenPacket("udp", addr)
	case "sctp":
		return nopCloser{}, nil // Go cannot bind SCTP; portmap's rules still apply
	default:
		return net.Listen("tcp", addr)
	}
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// FreePort returns a host port that is free now for proto on ip (invalid:
// every address), for -P and -p without a host port.
func FreePort(proto string, ip netip.Addr) (uint16, error) {
	c, err := bindPort(proto, ip, 0)
	if err != nil {
		return 0, fmt.Errorf("find a free %s port: %w", proto, err)
	}
	defer c.Close()
	switch l := c.(type) {
	case net.Listener:
		return uint16(l.Addr().(*net.TCPAddr).Port), nil
	case net.PacketConn:
		return uint16(l.LocalAddr().(*net.UDPAddr).Port), nil
	}
	return 0, fmt.Errorf("find a free %s port: not supported", proto)
}
