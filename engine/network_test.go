package engine

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"
	mobynet "github.com/moby/moby/api/types/network"

	"github.com/berth-project/berth/containers"
)

func TestNetworkName(t *testing.T) {
	for mode, want := range map[container.NetworkMode]string{
		"": "berth", "default": "berth", "bridge": "berth", "mynet": "mynet",
		"host": "", "none": "", "container:abc": "",
	} {
		if got := networkName(mode); got != want {
			t.Errorf("networkName(%q) = %q, want %q", mode, got, want)
		}
	}
}

func TestHostsEntries(t *testing.T) {
	c := &containers.Container{NetworkSettings: &container.NetworkSettings{Networks: map[string]*mobynet.EndpointSettings{
		"b": {IPAddress: netip.MustParseAddr("10.1.0.2")},
		"a": {GlobalIPv6Address: netip.MustParseAddr("fd00::2")},
	}}}
	if got, want := string(hostsEntries(c, "box")), "fd00::2\tbox\n10.1.0.2\tbox\n"; got != want {
		t.Errorf("hostsEntries = %q, want %q", got, want)
	}
	if got := hostsEntries(&containers.Container{}, "box"); len(got) != 0 {
		t.Errorf("no network: %q", got)
	}
}

// TestPortMappings resolves -p and -P: fixed ports, a free port for a
// missing host port and for -P, the first free port of a range, and a
// clear error for a port a process holds.
func TestPortMappings(t *testing.T) {
	s := openStore(t, t.TempDir())
	ctx := context.Background()
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	hp := held.Addr().(*net.TCPAddr).Port
	lo := netip.MustParseAddr("127.0.0.1")
	rangeSpec := mobynet.MustParsePortRange(strings.Join([]string{itoa(hp), itoa(hp + 1)}, "-")).String()
	c := &containers.Container{ID: strings.Repeat("a", 64), Name: "pm",
		Config: &container.Config{ExposedPorts: mobynet.PortSet{mobynet.MustParsePort("8080/tcp"): {}}},
		HostConfig: &container.HostConfig{PublishAllPorts: true, PortBindings: mobynet.PortMap{
			mobynet.MustParsePort("53/udp"): {{HostIP: lo}},
			mobynet.MustParsePort("80/tcp"): {{HostIP: lo, HostPort: rangeSpec}},
		}}}
	got, err := s.portMappings(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("mappings %+v, want 3", got)
	}
	byPort := map[uint16]uint16{}
	for _, m := range got {
		if m.HostPort == 0 {
			t.Errorf("mapping %+v without a host port", m)
		}
		byPort[m.ContainerPort] = m.HostPort
	}
	if byPort[80] != uint16(hp+1) {
		t.Errorf("80/tcp in range %s got %d, want %d (the first is held)", rangeSpec, byPort[80], hp+1)
	}
	if byPort[8080] == 0 || byPort[53] == 0 {
		t.Errorf("-P or -p without host port got no port: %v", byPort)
	}

	c.HostConfig = &container.HostConfig{PortBindings: mobynet.PortMap{
		mobynet.MustParsePort("80/tcp"): {{HostIP: lo, HostPort: itoa(hp)}}}}
	_, err = s.portMappings(ctx, c)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1:"+itoa(hp)+"/tcp") || !strings.Contains(err.Error(), "already allocated") {
		t.Errorf("held port: %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
