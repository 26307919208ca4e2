package netdns

import (
	"context"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// serve runs a Server on 127.0.0.1 (a random port) for the test.
func serve(t *testing.T, s *Server) string {
	t.Helper()
	pcs, lns, err := Listen([]string{"127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, pcs, lns) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return pcs[0].LocalAddr().String()
}

// upstream runs a fake upstream name server: fake.example. is 192.0.2.7,
// big.example. is a TXT answer too big for 512 bytes of UDP, anything
// else NXDOMAIN.
func upstream(t *testing.T) string {
	t.Helper()
	pcs, lns, err := Listen([]string{"127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	pc, l := pcs[0], lns[0]
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		q := r.Question[0]
		switch q.Name {
		case "fake.example.":
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5},
				A: net.IPv4(192, 0, 2, 7)})
		case "big.example.":
			for i := 0; i < 20; i++ {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 5},
					Txt: []string{strings.Repeat("x", 100)}})
			}
			if w.RemoteAddr().Network() == "udp" {
				m.Truncate(dns.MinMsgSize)
			}
		default:
			m.SetRcode(r, dns.RcodeNameError)
		}
		w.WriteMsg(m)
	})
	us, ut := &dns.Server{PacketConn: pc, Handler: h}, &dns.Server{Listener: l, Handler: h}
	go us.ActivateAndServe()
	go ut.ActivateAndServe()
	t.Cleanup(func() {
		us.Shutdown()
		ut.Shutdown()
	})
	return pc.LocalAddr().String()
}

func query(t *testing.T, server, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: "udp", Timeout: 3 * time.Second}
	resp, _, err := c.Exchange(m, server)
	if err != nil {
		t.Fatalf("query %s: %v", name, err)
	}
	return resp
}

func addrs(resp *dns.Msg) []string {
	var out []string
	for _, rr := range resp.Answer {
		switch r := rr.(type) {
		case *dns.A:
			out = append(out, r.A.String())
		case *dns.AAAA:
			out = append(out, r.AAAA.String())
		case *dns.PTR:
			out = append(out, r.Ptr)
		}
	}
	return out
}

func TestServerAnswersNames(t *testing.T) {
	path := filepath.Join(t.TempDir(), "records.json")
	if _, err := Update(path, func(r *Records) error {
		r.Put(Endpoint{ContainerID: "aaa", Names: []string{"web", "www", "aaa123456789"},
			IPv4: netip.MustParseAddr("10.201.0.2"), IPv6: netip.MustParseAddr("fd00::2")})
		r.Put(Endpoint{ContainerID: "bbb", Names: []string{"db", "www"}, IPv4: netip.MustParseAddr("10.201.0.3")})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	up := upstream(t)
	srv := serve(t, &Server{Records: path, Domain: "dns.berth", Upstreams: []string{up}})

	for _, tc := range []struct {
		name  string
		qtype uint16
		rcode int
		want  string
	}{
		{"web", dns.TypeA, dns.RcodeSuccess, "10.201.0.2"},
		{"WEB.", dns.TypeA, dns.RcodeSuccess, "10.201.0.2"},
		{"web.dns.berth", dns.TypeA, dns.RcodeSuccess, "10.201.0.2"},
		{"aaa123456789", dns.TypeA, dns.RcodeSuccess, "10.201.0.2"},
		{"web", dns.TypeAAAA, dns.RcodeSuccess, "fd00::2"},
		{"db", dns.TypeAAAA, dns.RcodeSuccess, ""}, // known, no IPv6: NODATA
		{"db", dns.TypeMX, dns.RcodeSuccess, ""},
		{"www", dns.TypeA, dns.RcodeSuccess, "10.201.0.2 10.201.0.3"},
		{"nothere.dns.berth", dns.TypeA, dns.RcodeNameError, ""},
		{"2.0.201.10.in-addr.arpa", dns.TypePTR, dns.RcodeSuccess, "web.dns.berth."},
		{"fake.example", dns.TypeA, dns.RcodeSuccess, "192.0.2.7"}, // forwarded
		{"nothere.example", dns.TypeA, dns.RcodeNameError, ""},     // forwarded: the upstream says NXDOMAIN
	} {
		resp := query(t, srv, tc.name, tc.qtype)
		got := addrs(resp)
		if resp.Rcode != tc.rcode || strings.Join(got, " ") != tc.want {
			t.Errorf("%s %s: rcode %s, answer %q; want %s, %q", tc.name, dns.TypeToString[tc.qtype],
				dns.RcodeToString[resp.Rcode], got, dns.RcodeToString[tc.rcode], tc.want)
		}
	}
}

func TestServerAnswersUnknownLabelsItself(t *testing.T) {
	path := filepath.Join(t.TempDir(), "records.json")
	// No upstream answers: a forwarded query would be SERVFAIL.
	dead, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dead.Close() })
	srv := serve(t, &Server{Records: path, Domain: "dns.berth", Upstreams: []string{dead.LocalAddr().String()}, Timeout: time.Second})
	for _, name := range []string{"nothere", "nothere.dns.berth", "a.b.dns.berth"} {
		start := time.Now()
		resp := query(t, srv, name, dns.TypeA)
		if resp.Rcode != dns.RcodeNameError || !resp.Authoritative {
			t.Errorf("%s: %s (authoritative %v), want an authoritative NXDOMAIN", name, dns.RcodeToString[resp.Rcode], resp.Authoritative)
		}
		if d := time.Since(start); d > 500*time.Millisecond {
			t.Errorf("%s: answered in %v: it was forwarded", name, d)
		}
	}
	if resp := query(t, srv, "nothere.example", dns.TypeA); resp.Rcode != dns.RcodeServerFailure {
		t.Errorf("nothere.example: %s, want SERVFAIL (forwarded to a dead upstream)", dns.RcodeToString[resp.Rcode])
	}
}

func TestServerRefusesOtherClients(t *testing.T) {
	path := filepath.Join(t.TempDir(), "records.json")
	if _, err := Update(path, func(r *Records) error {
		r.Put(Endpoint{ContainerID: "aaa", Names: []string{"web"}, IPv4: netip.MustParseAddr("10.201.0.2")})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	srv := serve(t, &Server{Records: path, Clients: []netip.Prefix{netip.MustParsePrefix("10.201.0.0/24")}})
	if resp := query(t, srv, "web", dns.TypeA); resp.Rcode != dns.RcodeRefused || len(resp.Answer) != 0 {
		t.Errorf("query from 127.0.0.1, outside the clients: %s %v", dns.RcodeToString[resp.Rcode], addrs(resp))
	}
	srv = serve(t, &Server{Records: path, Clients: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if got := addrs(query(t, srv, "web", dns.TypeA)); len(got) != 1 || got[0] != "10.201.0.2" {
		t.Errorf("query from a client: %v", got)
	}
}

func TestServerReloadsRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "records.json")
	srv := serve(t, &Server{Records: path, Domain: "dns.berth"})
	if resp := query(t, srv, "web.dns.berth", dns.TypeA); resp.Rcode != dns.RcodeNameError {
		t.Fatalf("before the records exist: %s", dns.RcodeToString[resp.Rcode])
	}
	put := func(ip string) {
		if _, err := Update(path, func(r *Records) error {
			r.Put(Endpoint{ContainerID: "aaa", Names: []string{"web"}, IPv4: netip.MustParseAddr(ip)})
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	put("10.201.0.2")
	if got := addrs(query(t, srv, "web", dns.TypeA)); len(got) != 1 || got[0] != "10.201.0.2" {
		t.Fatalf("after add: %v", got)
	}
	put("10.201.0.9") // same size: only the inode tells the change
	if got := addrs(query(t, srv, "web", dns.TypeA)); len(got) != 1 || got[0] != "10.201.0.9" {
		t.Fatalf("after change: %v", got)
	}
	if _, err := Update(path, func(r *Records) error {
		if !r.Remove("aaa") {
			t.Error("Remove found no endpoint")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if resp := query(t, srv, "web.dns.berth", dns.TypeA); resp.Rcode != dns.RcodeNameError {
		t.Fatalf("after remove: %s %v", dns.RcodeToString[resp.Rcode], addrs(resp))
	}
}

func TestServerForwardsTruncatedOverTCP(t *testing.T) {
	path := filepath.Join(t.TempDir(), "records.json")
	up := upstream(t)
	// The first upstream does not answer: the second one is asked.
	dead, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dead.Close() })
	srv := serve(t, &Server{Records: path, Upstreams: []string{dead.LocalAddr().String(), up}, Timeout: 300 * time.Millisecond})

	m := new(dns.Msg)
	m.SetQuestion("big.example.", dns.TypeTXT)
	c := &dns.Client{Net: "tcp", Timeout: 5 * time.Second}
	resp, _, err := c.Exchange(m, srv)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Answer) != 20 || resp.Truncated {
		t.Fatalf("over TCP: %d answers, truncated %v; want 20, false", len(resp.Answer), resp.Truncated)
	}
	// Over UDP the client gets a truncated answer and asks again over
	// TCP itself; the responder got the whole answer over TCP from the
	// upstream.
	udp := query(t, srv, "big.example", dns.TypeTXT)
	if !udp.Truncated || len(udp.Answer) >= 20 {
		t.Fatalf("over UDP: truncated %v, %d answers; want a truncated answer", udp.Truncated, len(udp.Answer))
	}
}

func TestServerUsesContainerUpstreams(t *testing.T) {
	up := upstream(t)
	// The querying "container" is 127.0.0.1: its own upstream answers,
	// the server's default one (nothing listens there) is not used.
	path := webAtLoopback(t, up)
	dead, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dead.Close() })
	srv := serve(t, &Server{Records: path, Upstreams: []string{dead.LocalAddr().String()}, Timeout: 300 * time.Millisecond})
	if got := addrs(query(t, srv, "fake.example", dns.TypeA)); len(got) != 1 || got[0] != "192.0.2.7" {
		t.Fatalf("fake.example via the container's upstream: %v", got)
	}
	if _, err := Update(path, func(r *Records) error { r.Endpoints = nil; return nil }); err != nil {
		t.Fatal(err)
	}
	if resp := query(t, srv, "fake.example", dns.TypeA); resp.Rcode != dns.RcodeServerFailure {
		t.Fatalf("without the container's upstream: %s %v, want SERVFAIL", dns.RcodeToString[resp.Rcode], addrs(resp))
	}
}

// An internal network's server (NoForward) answers its own names and
// refuses the rest, even for a container with name servers of its own.
func TestServerNoForward(t *testing.T) {
	up := upstream(t)
	path := webAtLoopback(t, up)
	srv := serve(t, &Server{Records: path, Domain: "dns.berth", Upstreams: []string{up}, NoForward: true})
	if got := addrs(query(t, srv, "web", dns.TypeA)); len(got) != 1 || got[0] != "127.0.0.1" {
		t.Errorf("web: %v", got)
	}
	if resp := query(t, srv, "fake.example", dns.TypeA); resp.Rcode != dns.RcodeRefused || len(resp.Answer) != 0 {
		t.Errorf("fake.example: %s %v, want REFUSED", dns.RcodeToString[resp.Rcode], addrs(resp))
	}
}

func TestHostUpstreams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "resolv.conf")
	writeAtomic(path, []byte("search example.com\nnameserver 10.0.0.1\nnameserver 10.201.0.1\nnameserver fd00::53\n"))
	got, err := HostUpstreams(path, []netip.Addr{netip.MustParseAddr("10.201.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "10.0.0.1:53 [fd00::53]:53" {
		t.Fatalf("got %q", got)
	}
}

// webAtLoopback writes a records file with one container, "web" at
// 127.0.0.1 (the address the tests query from), whose name server is up.
func webAtLoopback(t *testing.T, up string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "records.json")
	if _, err := Update(path, func(r *Records) error {
		r.Put(Endpoint{ContainerID: "aaa", Names: []string{"web"}, IPv4: netip.MustParseAddr("127.0.0.1"), Upstreams: []string{up}})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return path
}
