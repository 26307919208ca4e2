package network

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// Route is one of the host's routes: a destination reached through an
// interface.
type Route struct {
	Dst    netip.Prefix
	Device string
}

func (r Route) String() string { return r.Dst.String() + " dev " + r.Device }

// HostRoutes reads the host's IPv4 and IPv6 routes from /proc/net/route
// and /proc/net/ipv6_route, without the default routes (which every
// subnet is inside of).
func HostRoutes() ([]Route, error) {
	v4, err := readRoutes("/proc/net/route", parseRoute4)
	if err != nil {
		return nil, err
	}
	v6, err := readRoutes("/proc/net/ipv6_route", parseRoute6)
	if err != nil {
		return nil, err
	}
	return append(v4, v6...), nil
}

func readRoutes(path string, parse func([]string) (Route, bool, error)) ([]Route, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil // no IPv6
	}
	if err != nil {
		return nil, fmt.Errorf("read host routes: %w", err)
	}
	defer f.Close()
	var out []Route
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		r, ok, err := parse(strings.Fields(sc.Text()))
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, line, err)
		}
		if ok && r.Dst.Bits() > 0 {
			out = append(out, r)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return out, nil
}

// parseRoute4 reads a /proc/net/route line: Iface Destination Gateway
// Flags RefCnt Use Metric Mask ..., addresses in host byte order hex.
func parseRoute4(f []string) (Route, bool, error) {
	if len(f) < 8 || f[0] == "Iface" {
		return Route{}, false, nil
	}
	dst, err := strconv.ParseUint(f[1], 16, 32)
	if err != nil {
		return Route{}, false, fmt.Errorf("destination %q: %w", f[1], err)
	}
	mask, err := strconv.ParseUint(f[7], 16, 32)
	if err != nil {
		return Route{}, false, fmt.Errorf("mask %q: %w", f[7], err)
	}
	var a, m [4]byte
	binary.LittleEndian.PutUint32(a[:], uint32(dst))
	binary.LittleEndian.PutUint32(m[:], uint32(mask))
	ones := bits.OnesCount32(binary.BigEndian.Uint32(m[:]))
	return Route{Dst: netip.PrefixFrom(netip.AddrFrom4(a), ones).Masked(), Device: f[0]}, true, nil
}

// parseRoute6 reads a /proc/net/ipv6_route line: dst dstlen src srclen
// nexthop metric refcnt use flags iface.
func parseRoute6(f []string) (Route, bool, error) {
	if len(f) < 10 {
		return Route{}, false, nil
	}
	b, err := hex.DecodeString(f[0])
	if err != nil || len(b) != 16 {
		return Route{}, false, fmt.Errorf("destination %q", f[0])
	}
	n, err := strconv.ParseUint(f[1], 16, 8)
	if err != nil || n > 128 {
		return Route{}, false, fmt.Errorf("prefix length %q", f[1])
	}
	a := netip.AddrFrom16([16]byte(b))
	if f[9] == "lo" || a.IsLinkLocalUnicast() || a.IsMulticast() {
		return Route{}, false, nil // local and link-local routes every host has
	}
	return Route{Dst: netip.PrefixFrom(a, int(n)).Masked(), Device: f[9]}, true, nil
}
