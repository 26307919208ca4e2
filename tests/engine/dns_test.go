package engine

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// dnsNetwork creates a user network for a DNS test (removed when the
// test ends, after its containers: cleanups run last-in first-out).
func dnsNetwork(t *testing.T, name, subnet string) {
	t.Helper()
	hostNet(t)
	berthCmd("network", "rm", name).Run()
	ok(t, "network", "create", "--subnet", subnet, name)
	t.Cleanup(func() {
		if out, err := berthCmd("network", "rm", name).CombinedOutput(); err != nil {
			t.Errorf("network rm %s: %v\n%s", name, err, out)
		}
	})
}

// runDetached starts a container that is removed when the test ends.
func runDetached(t *testing.T, name string, args ...string) {
	t.Helper()
	berthCmd("rm", "-f", name).Run()
	cleanupContainer(t, name)
	ok(t, append([]string{"run", "-d", "--name", name}, args...)...)
}

// execIn runs a command in a running container and returns its result.
func execIn(t *testing.T, ctr string, cmd ...string) result {
	t.Helper()
	return berth(t, append([]string{"exec", ctr}, cmd...)...)
}

// dnsServerPid is the pid of the name server process of network name, 0
// when none runs.
func dnsServerPid(t *testing.T, name string) int {
	t.Helper()
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range dirs {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if bytes.Contains(data, []byte("\x00network\x00dns\x00"+name+"\x00")) && bytes.Contains(data, []byte(storeDir)) {
			var pid int
			for _, c := range strings.TrimPrefix(strings.TrimSuffix(f, "/cmdline"), "/proc/") {
				pid = pid*10 + int(c-'0')
			}
			return pid
		}
	}
	return 0
}

const httpdCmd = "mkdir -p /srv && echo hello-$(hostname) > /srv/index.html && exec httpd -f -p 80 -h /srv"

func TestDNSNamesBetweenContainers(t *testing.T) {
	dnsNetwork(t, "dnst-a", "10.201.1.0/24")
	runDetached(t, "dnst-web", "--network", "dnst-a", "--network-alias", "dnst-webalias", "--hostname", "webhost",
		"busybox", "sh", "-c", httpdCmd)
	runDetached(t, "dnst-client", "--network", "dnst-a", "busybox", "sleep", "300")
	if dnsServerPid(t, "dnst-a") == 0 {
		t.Fatal("no name server process for dnst-a while containers are on it")
	}

	resolv := execIn(t, "dnst-client", "cat", "/etc/resolv.conf")
	if !strings.Contains(resolv.stdout, "nameserver 10.201.1.1\n") || !strings.Contains(resolv.stdout, "search dns.berth") {
		t.Errorf("client's resolv.conf:\n%s", resolv.stdout)
	}
	webIP, _ := field(inspect(t, "dnst-web"), "NetworkSettings", "Networks", "dnst-a", "IPAddress").(string)
	if !strings.HasPrefix(webIP, "10.201.1.") {
		t.Fatalf("dnst-web's address on dnst-a: %q", webIP)
	}
	doc := inspect(t, "dnst-web")
	if a := field(doc, "NetworkSettings", "Networks", "dnst-a", "Aliases"); a == nil || a.([]any)[0] != "dnst-webalias" {
		t.Errorf("Aliases in inspect: %v", a)
	}
	id := field(doc, "Id").(string)

	for _, name := range []string{"dnst-web", "dnst-webalias", "dnst-web.dns.berth", id[:12]} {
		if r := execIn(t, "dnst-client", "ping", "-c", "1", "-W", "3", name); r.code != 0 || !strings.Contains(r.stdout, webIP) {
			t.Errorf("ping %s from dnst-client: %v", name, r)
		}
	}
	for _, name := range []string{"dnst-web", "dnst-webalias"} {
		if r := execIn(t, "dnst-client", "timeout", "5", "wget", "-q", "-O", "-", "http://"+name+"/"); r.code != 0 || r.stdout != "hello-webhost\n" {
			t.Errorf("wget http://%s/ from dnst-client: %v", name, r)
		}
	}
	if r := execIn(t, "dnst-web", "ping", "-c", "1", "-W", "3", "dnst-client"); r.code != 0 {
		t.Errorf("ping dnst-client from dnst-web: %v", r)
	}
	if r := execIn(t, "dnst-client", "nslookup", "dnst-nosuch"); r.code == 0 {
		t.Errorf("nslookup of an unknown name succeeded: %v", r)
	}

	// A renamed container answers to its new name only.
	ok(t, "rename", "dnst-web", "dnst-web2")
	if r := execIn(t, "dnst-client", "ping", "-c", "1", "-W", "3", "dnst-web2"); r.code != 0 || !strings.Contains(r.stdout, webIP) {
		t.Errorf("ping the renamed container: %v", r)
	}
	if r := execIn(t, "dnst-client", "nslookup", "dnst-web"); r.code == 0 {
		t.Errorf("the old name still resolves after rename: %v", r)
	}
	ok(t, "rename", "dnst-web2", "dnst-web")

	// A removed container's name stops resolving.
	ok(t, "rm", "-f", "dnst-web")
	if r := execIn(t, "dnst-client", "nslookup", "dnst-web"); r.code == 0 || strings.Contains(r.stdout, webIP) {
		t.Errorf("nslookup dnst-web after its rm: %v", r)
	}
	if dnsServerPid(t, "dnst-a") == 0 {
		t.Fatal("the name server exited while dnst-client is still on the network")
	}
	// The last container leaves: the name server exits.
	ok(t, "rm", "-f", "dnst-client")
	eventually(t, 5*time.Second, "dnst-a's name server to exit", func() bool { return dnsServerPid(t, "dnst-a") == 0 })
}

// fakeUpstream runs a name server on 127.0.0.1 (a random port) that
// knows one name, and returns its address.
func fakeUpstream(t *testing.T, name, addr string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		switch {
		case q.Name != dns.Fqdn(name):
			m.SetRcode(r, dns.RcodeNameError)
		case q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
				A: net.ParseIP(addr)})
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

func TestDNSForwardsOtherNames(t *testing.T) {
	up := fakeUpstream(t, "fake.dnst.example", "192.0.2.55")
	// The name server berth starts forwards to the fake server instead
	// of the host's (the variable reaches it through berth run).
	t.Setenv("BERTH_DNS_UPSTREAMS", up)
	dnsNetwork(t, "dnst-f", "10.201.2.0/24")
	r := berth(t, "run", "--rm", "--network", "dnst-f", "busybox", "nslookup", "fake.dnst.example")
	if r.code != 0 || !strings.Contains(r.stdout, "192.0.2.55") {
		t.Fatalf("nslookup of a forwarded name: %v", r)
	}
	r = berth(t, "run", "--rm", "--network", "dnst-f", "busybox", "nslookup", "other.dnst.example")
	if r.code == 0 || strings.Contains(r.stdout, "192.0.2.55") {
		t.Fatalf("nslookup of a name the upstream does not know: %v", r)
	}
}

// Containers on an internal network find each other by name, as on
// docker's; the name server forwards nothing (they have no way out), and
// no route leads out of them.
func TestDNSInternalNetwork(t *testing.T) {
	up := fakeUpstream(t, "fake.dnst.example", "192.0.2.55")
	t.Setenv("BERTH_DNS_UPSTREAMS", up)
	hostNet(t)
	berthCmd("network", "rm", "dnst-in").Run()
	ok(t, "network", "create", "--internal", "--subnet", "10.201.6.0/24", "dnst-in")
	t.Cleanup(func() {
		if out, err := berthCmd("network", "rm", "dnst-in").CombinedOutput(); err != nil {
			t.Errorf("network rm dnst-in: %v\n%s", err, out)
		}
	})
	runDetached(t, "dnst-in-a", "--network", "dnst-in", "busybox", "sleep", "300")
	ip, _ := field(inspect(t, "dnst-in-a"), "NetworkSettings", "Networks", "dnst-in", "IPAddress").(string)
	if !strings.HasPrefix(ip, "10.201.6.") {
		t.Fatalf("dnst-in-a's address: %q", ip)
	}
	r := berth(t, "run", "--rm", "--network", "dnst-in", "busybox", "sh", "-c",
		"ping -c 1 -W 3 dnst-in-a && ! nslookup fake.dnst.example && ! ip route | grep -q default")
	if r.code != 0 || !strings.Contains(r.stdout, ip) {
		t.Fatalf("on the internal network (ping by name, no forwarding, no default route): %v", r)
	}
}

func TestDNSDefaultNetworkRules(t *testing.T) {
	hostNet(t)
	r := berth(t, "run", "--rm", "--network-alias", "dnst-x", "busybox", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "network-scoped alias is supported only for containers in user defined networks") {
		t.Errorf("--network-alias on the default network: %v", r)
	}
	r = berth(t, "run", "--rm", "--ip", "10.88.200.200", "busybox", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "user specified IP address is supported on user defined networks only") {
		t.Errorf("--ip on the default network: %v", r)
	}
	// The default network resolves no names: the container gets the
	// host's name servers, not a gateway.
	r = berth(t, "run", "--rm", "busybox", "cat", "/etc/resolv.conf")
	if r.code != 0 || strings.Contains(r.stdout, "10.88.0.1") || strings.Contains(r.stdout, "dns.berth") {
		t.Errorf("resolv.conf on the default network: %v", r)
	}
	berthCmd("rm", "-f", "dnst-mode").Run()
	cleanupContainer(t, "dnst-mode")
	ok(t, "create", "--name", "dnst-mode", "busybox", "true")
	if m := field(inspect(t, "dnst-mode"), "HostConfig", "NetworkMode"); m != "bridge" {
		t.Errorf("NetworkMode of a container without --network: %v", m)
	}
}

func TestDNSFixedAddresses(t *testing.T) {
	dnsNetwork(t, "dnst-i", "10.201.5.0/24")
	r := berth(t, "run", "--rm", "--network", "dnst-i", "--ip", "10.201.5.77", "--mac-address", "02:42:0a:c9:05:4d",
		"--dns-search", "dnst.example", "--dns-option", "ndots:2", "--dns", "192.0.2.53",
		"busybox", "sh", "-c", "ip addr show eth0; cat /etc/resolv.conf")
	if r.code != 0 {
		t.Fatalf("run: %v", r)
	}
	for _, want := range []string{"inet 10.201.5.77/24", "link/ether 02:42:0a:c9:05:4d", "nameserver 10.201.5.1",
		"search dns.berth dnst.example", "options ndots:2"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("container output lacks %q:\n%s", want, r.stdout)
		}
	}
	// --dns on a user network: the network's name server forwards to it
	// (network/netdns tests that), the container asks the network's.
	if strings.Contains(r.stdout, "192.0.2.53") {
		t.Errorf("resolv.conf names the --dns server itself:\n%s", r.stdout)
	}
	runDetached(t, "dnst-fixed", "--network", "dnst-i", "--ip", "10.201.5.78", "--mac-address", "02:42:0a:c9:05:4e",
		"--network-alias", "dnst-fixedalias", "--dns-search", "dnst.example", "--dns", "192.0.2.53", "busybox", "sleep", "300")
	doc := inspect(t, "dnst-fixed")
	ep := []string{"NetworkSettings", "Networks", "dnst-i"}
	if v := field(doc, append(ep, "IPAddress")...); v != "10.201.5.78" {
		t.Errorf("IPAddress: %v", v)
	}
	if v := field(doc, append(ep, "MacAddress")...); v != "02:42:0a:c9:05:4e" {
		t.Errorf("MacAddress: %v", v)
	}
	if v := field(doc, append(ep, "IPAMConfig", "IPv4Address")...); v != "10.201.5.78" {
		t.Errorf("IPAMConfig: %v", v)
	}
	if v, _ := field(doc, append(ep, "DNSNames")...).([]any); len(v) != 3 || v[0] != "dnst-fixed" || v[1] != "dnst-fixedalias" {
		t.Errorf("DNSNames: %v", v)
	}
	if v, _ := field(doc, "HostConfig", "DnsSearch").([]any); len(v) != 1 || v[0] != "dnst.example" {
		t.Errorf("HostConfig.DnsSearch: %v", field(doc, "HostConfig"))
	}
	if v, _ := field(doc, "HostConfig", "Dns").([]any); len(v) != 1 || v[0] != "192.0.2.53" {
		t.Errorf("HostConfig.Dns: %v", v)
	}
	// The network's records send the container's other names to its
	// --dns server.
	records, err := os.ReadFile(filepath.Join(runDir, "network", "dns", "dnst-i", "records.json"))
	if err != nil || !strings.Contains(string(records), `"192.0.2.53:53"`) || !strings.Contains(string(records), `"dnst-fixedalias"`) {
		t.Errorf("dnst-i's records (%v):\n%s", err, records)
	}
	r = berth(t, "run", "--rm", "--network", "dnst-i", "--ip", "10.201.6.5", "busybox", "true")
	if r.code != 125 || !strings.Contains(r.stderr, "no configured subnet or ip-range contain the IP address 10.201.6.5") {
		t.Errorf("--ip outside the subnet: %v", r)
	}
}

func TestDNSConnectDisconnect(t *testing.T) {
	dnsNetwork(t, "dnst-c1", "10.201.3.0/24")
	dnsNetwork(t, "dnst-c2", "10.201.4.0/24")
	runDetached(t, "dnst-cc", "--network", "dnst-c1", "busybox", "sleep", "300")
	runDetached(t, "dnst-srv", "--network", "dnst-c2", "busybox", "sleep", "300")
	if r := execIn(t, "dnst-srv", "nslookup", "dnst-cc"); r.code == 0 {
		t.Fatalf("dnst-cc resolves on dnst-c2 before connect: %v", r)
	}

	// A line the container adds to its /etc/hosts survives connect and
	// disconnect, which add and remove the container's own address.
	if r := execIn(t, "dnst-cc", "sh", "-c", "echo '192.0.2.9\tmine' >> /etc/hosts"); r.code != 0 {
		t.Fatalf("edit /etc/hosts: %v", r)
	}
	hostsLine := "10.201.4.40\t" + field(inspect(t, "dnst-cc"), "Id").(string)[:12]
	ok(t, "network", "connect", "--alias", "dnst-ccalias", "--ip", "10.201.4.40", "dnst-c2", "dnst-cc")
	if r := execIn(t, "dnst-cc", "ip", "addr", "show", "eth1"); r.code != 0 || !strings.Contains(r.stdout, "inet 10.201.4.40/24") {
		t.Fatalf("eth1 after connect: %v", r)
	}
	if r := execIn(t, "dnst-cc", "cat", "/etc/hosts"); !strings.Contains(r.stdout, hostsLine+"\n") || !strings.Contains(r.stdout, "192.0.2.9\tmine\n") {
		t.Errorf("/etc/hosts after connect lacks %q or the container's own line:\n%s", hostsLine, r.stdout)
	}
	for _, name := range []string{"dnst-cc", "dnst-ccalias"} {
		if r := execIn(t, "dnst-srv", "ping", "-c", "1", "-W", "3", name); r.code != 0 || !strings.Contains(r.stdout, "10.201.4.40") {
			t.Errorf("ping %s after connect: %v", name, r)
		}
	}
	if v := field(inspect(t, "dnst-cc"), "NetworkSettings", "Networks", "dnst-c2", "IPAddress"); v != "10.201.4.40" {
		t.Errorf("inspect after connect: %v", v)
	}
	if r := berth(t, "network", "connect", "dnst-c2", "dnst-cc"); r.code == 0 || !strings.Contains(r.stderr, "endpoint with name dnst-cc already exists in network dnst-c2") {
		t.Errorf("second connect: %v", r)
	}

	ok(t, "network", "disconnect", "dnst-c2", "dnst-cc")
	if r := execIn(t, "dnst-cc", "ip", "addr", "show", "eth1"); r.code == 0 {
		t.Errorf("eth1 after disconnect: %v", r)
	}
	if r := execIn(t, "dnst-cc", "cat", "/etc/hosts"); strings.Contains(r.stdout, "10.201.4.40") || !strings.Contains(r.stdout, "192.0.2.9\tmine\n") {
		t.Errorf("/etc/hosts after disconnect (the address must be gone, the container's line kept):\n%s", r.stdout)
	}
	if r := execIn(t, "dnst-srv", "nslookup", "dnst-ccalias"); r.code == 0 {
		t.Errorf("dnst-ccalias resolves after disconnect: %v", r)
	}
	if _, found := field(inspect(t, "dnst-cc"), "NetworkSettings", "Networks").(map[string]any)["dnst-c2"]; found {
		t.Error("inspect still shows dnst-c2 after disconnect")
	}
	if r := berth(t, "network", "disconnect", "dnst-c2", "dnst-cc"); r.code == 0 || !strings.Contains(r.stderr, "is not connected to network dnst-c2") {
		t.Errorf("second disconnect: %v", r)
	}

	// A created container joins the networks it was connected to when
	// it starts.
	berthCmd("rm", "-f", "dnst-later").Run()
	cleanupContainer(t, "dnst-later")
	ok(t, "create", "--name", "dnst-later", "--network", "dnst-c1", "busybox", "sleep", "300")
	ok(t, "network", "connect", "dnst-c2", "dnst-later")
	ok(t, "start", "dnst-later")
	if r := execIn(t, "dnst-later", "ip", "addr", "show", "eth1"); r.code != 0 || !strings.Contains(r.stdout, "inet 10.201.4.") {
		t.Errorf("eth1 of a container connected before start: %v", r)
	}
	if r := execIn(t, "dnst-srv", "ping", "-c", "1", "-W", "3", "dnst-later"); r.code != 0 {
		t.Errorf("ping dnst-later from dnst-c2: %v", r)
	}
	if r := berth(t, "network", "rm", "dnst-c2"); r.code == 0 {
		t.Errorf("network rm of a network a connected container uses: %v", r)
	}

	berthCmd("rm", "-f", "dnst-hostnet").Run()
	cleanupContainer(t, "dnst-hostnet")
	ok(t, "create", "--name", "dnst-hostnet", "--network", "host", "busybox", "true")
	if r := berth(t, "network", "connect", "dnst-c2", "dnst-hostnet"); r.code == 0 || !strings.Contains(r.stderr, "cannot be connected to any other network") {
		t.Errorf("connect of a --network host container: %v", r)
	}
}
