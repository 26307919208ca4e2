package network

import (
	"context"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-project/berth/network/netdns"
)

func TestHasDNS(t *testing.T) {
	m := testManager(t)
	n, err := m.Create("dnst-u", CreateOptions{Subnet: netip.MustParsePrefix("10.201.10.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	in, err := m.Create("dnst-in", CreateOptions{Subnet: netip.MustParsePrefix("10.201.11.0/24"), Internal: true})
	if err != nil {
		t.Fatal(err)
	}
	def, err := m.Inspect("bridge")
	if err != nil {
		t.Fatal(err)
	}
	if !HasDNS(n) || !HasDNS(in) || HasDNS(def) {
		t.Errorf("HasDNS: user %v, internal %v, default %v; want true, true, false", HasDNS(n), HasDNS(in), HasDNS(def))
	}
	// An internal network made before its bridge held the gateway
	// address has nowhere to serve names.
	data, err := os.ReadFile(in.Path)
	if err != nil {
		t.Fatal(err)
	}
	old := strings.Replace(string(data), `"isGateway": true`, `"isGateway": false`, 1)
	if old == string(data) {
		t.Fatalf("no isGateway in %s", data)
	}
	if err := os.WriteFile(in.Path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	if in, err = m.Inspect("dnst-in"); err != nil || in.GatewayOnHost || HasDNS(in) {
		t.Errorf("old internal network: %+v, %v; HasDNS %v", in, err, HasDNS(in))
	}
	if got := DNSServers(n); len(got) != 1 || got[0] != netip.MustParseAddr("10.201.10.1") {
		t.Errorf("DNSServers: %v", got)
	}
	// The default network keeps no records and starts no server.
	if err := m.AddDNS(def, netdns.Endpoint{ContainerID: "c1", Names: []string{"a"}}, []string{"/bin/false"}); err != nil {
		t.Errorf("AddDNS on the default network: %v", err)
	}
	if _, err := os.Stat(m.dnsRecords(DefaultName)); !os.IsNotExist(err) {
		t.Errorf("records of the default network: %v", err)
	}
}

func TestAddDNSServerThatDoesNotStart(t *testing.T) {
	m := testManager(t)
	n, err := m.Create("dnst-u", CreateOptions{Subnet: netip.MustParsePrefix("10.201.10.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	err = m.AddDNS(n, netdns.Endpoint{ContainerID: "c1", Names: []string{"a"}}, []string{"/bin/sh", "-c", "echo cannot bind >&2; exit 1"})
	if err == nil || !strings.Contains(err.Error(), "cannot bind") {
		t.Fatalf("AddDNS with a server that exits: %v", err)
	}
}

// TestServeDNSExitsWhenEmpty runs a network's name server in the test's
// process (it binds the gateway address without it being on an
// interface) and checks that it leaves when the last container has.
func TestServeDNSExitsWhenEmpty(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("needs root: the name server binds port 53")
	}
	t.Setenv(UpstreamsEnv, "127.0.0.1:1")
	m := testManager(t)
	n, err := m.Create("dnst-u", CreateOptions{Subnet: netip.MustParsePrefix("10.201.12.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := netdns.Update(m.dnsRecords(n.Name), func(r *netdns.Records) error {
		r.Put(netdns.Endpoint{ContainerID: "c1", Names: []string{"a"}, IPv4: netip.MustParseAddr("10.201.12.2")})
		r.Put(netdns.Endpoint{ContainerID: "c2", Names: []string{"b"}, IPv4: netip.MustParseAddr("10.201.12.3")})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.ServeDNS(ctx, n.Name, nil) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	pidFile := m.dnsPidFile(n.Name)
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, err := os.ReadFile(pidFile)
		if err == nil && strings.TrimSpace(string(data)) == strconv.Itoa(os.Getpid()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid file %s: %v", pidFile, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := m.RemoveDNS("c1"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Fatalf("the server left with a container still on the network: %v", err)
	case <-time.After(3 * dnsPoll):
	}
	if err := m.RemoveDNS("c2", n.Name); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		done <- err // for the cleanup
		if err != nil {
			t.Fatalf("ServeDNS: %v", err)
		}
	case <-time.After(10 * dnsPoll):
		t.Fatal("the server still runs with no container on the network")
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("pid file after exit: %v", err)
	}
}
