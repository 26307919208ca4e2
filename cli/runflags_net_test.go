package cli

import (
	"net/netip"
	"strings"
	"testing"
)

func TestRunFlagsEndpoint(t *testing.T) {
	r := mustRunParse(t, "--network", "web", "--network-alias", "a1", "--net-alias", "a2", "--ip", "10.201.0.9",
		"--ip6", "fd00::9", "--mac-address", "02:42:ac:11:00:09", "busybox")
	ep := r.f.options().Endpoint
	if ep == nil {
		t.Fatal("no endpoint settings")
	}
	if strings.Join(ep.Aliases, ",") != "a1,a2" {
		t.Errorf("aliases %q", ep.Aliases)
	}
	if ep.IPAMConfig == nil || ep.IPAMConfig.IPv4Address != netip.MustParseAddr("10.201.0.9") ||
		ep.IPAMConfig.IPv6Address != netip.MustParseAddr("fd00::9") {
		t.Errorf("IPAMConfig %+v", ep.IPAMConfig)
	}
	if ep.MacAddress.String() != "02:42:ac:11:00:09" {
		t.Errorf("MAC %s", ep.MacAddress)
	}
	if r := mustRunParse(t, "busybox"); r.f.options().Endpoint != nil {
		t.Errorf("endpoint settings without the flags: %+v", r.f.options().Endpoint)
	}
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"--ip", "fd00::1"}, `invalid argument "fd00::1" for "--ip" flag`},
		{[]string{"--ip", "10.0.0"}, `invalid argument "10.0.0" for "--ip" flag`},
		{[]string{"--ip6", "10.0.0.1"}, `invalid argument "10.0.0.1" for "--ip6" flag`},
		{[]string{"--mac-address", "02:42:ac"}, "02:42:ac is not a valid mac address"},
	} {
		_, err := runParse(append(tc.argv, "busybox"), nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.argv, err, tc.want)
		}
	}
}
