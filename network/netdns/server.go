package netdns

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sys/unix"
)

// DefaultTTL is the time to live of the answers for containers' names:
// short, since containers come and go.
const DefaultTTL = 10

// Server answers the queries of one network's containers from a records
// file and forwards the others. Its exported fields must be set before
// Serve and not changed after.
type Server struct {
	// Records is the records file's path.
	Records string
	// Domain is the network's own domain ("dns.berth"): NAME.Domain is
	// NAME, and an unknown name in it, like an unknown single label, is
	// answered NXDOMAIN at once instead of being forwarded. "" for none.
	Domain string
	// NoForward refuses every name that is not the network's (an
	// internal network's containers have no way out), also for
	// containers with name servers of their own.
	NoForward bool
	// Upstreams are the name servers ("host:port") other names are
	// forwarded to, in order, unless the asking container has its own.
	Upstreams []string
	// Timeout bounds one exchange with an upstream (0: 2 s).
	Timeout time.Duration
	// Clients, when not empty, are the addresses the server answers
	// (the network's subnets): it listens on an address of the host, and
	// must be neither another network's view of this one nor an open
	// resolver for whoever can route to it. Others are REFUSED.
	Clients []netip.Prefix
	// Log receives one line per failure (nil: none).
	Log io.Writer

	mu    sync.Mutex
	recs  *Records
	stamp stamp
}

// stamp identifies one version of the records file: it is always
// replaced by a rename, so a new version has a new inode.
type stamp struct {
	ino, size int64
	mtime     int64
	exists    bool
}

// Current returns the records, read again if the file changed since the
// last call.
func (s *Server) Current() (*Records, error) {
	var st stamp
	var fi unix.Stat_t
	err := unix.Stat(s.Records, &fi)
	switch {
	case err == nil:
		st = stamp{ino: int64(fi.Ino), size: fi.Size, mtime: fi.Mtim.Nano(), exists: true}
	case errors.Is(err, unix.ENOENT):
	default:
		return nil, fmt.Errorf("stat DNS records %s: %w", s.Records, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.recs != nil && st == s.stamp {
		return s.recs, nil
	}
	r, err := Read(s.Records)
	if err != nil {
		return nil, err
	}
	s.recs, s.stamp = r, st
	return r, nil
}

func (s *Server) logf(format string, args ...any) {
	if s.Log != nil {
		fmt.Fprintf(s.Log, time.Now().UTC().Format(time.RFC3339)+" "+format+"\n", args...)
	}
}

// ServeDNS answers one query (it makes Server a dns.Handler).
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) != 1 || req.Opcode != dns.OpcodeQuery {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
		w.WriteMsg(m)
		return
	}
	if !s.allowed(w.RemoteAddr()) {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeRefused)
		w.WriteMsg(m)
		return
	}
	recs, err := s.Current()
	if err != nil {
		s.logf("%v", err)
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeServerFailure)
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := strings.ToLower(strings.TrimSuffix(q.Name, "."))
	own := false
	if d := strings.ToLower(s.Domain); d != "" {
		if strings.HasSuffix(name, "."+d) {
			name, own = strings.TrimSuffix(name, "."+d), true
		} else if name == d {
			name, own = "", true
		}
	}
	if q.Qclass == dns.ClassINET {
		if m := s.answer(req, recs, name); m != nil {
			w.WriteMsg(m)
			return
		}
	}
	// An unknown name in the network's domain is not the upstreams'
	// business, nor is an unknown single label (a container's name that
	// is not, or no longer, there): answering them at once spares the
	// containers a wait for the upstreams (which may not even answer)
	// for every name their search list tries. The host's search domains
	// are in the containers' search list, so NAME.domain is still asked.
	if own || (name != "" && !strings.Contains(name, ".")) {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeNameError)
		m.Authoritative, m.RecursionAvailable = true, true
		w.WriteMsg(m)
		return
	}
	if s.NoForward {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeRefused)
		w.WriteMsg(m)
		return
	}
	s.forward(w, req, recs)
}

// allowed reports whether the server answers a query from addr.
func (s *Server) allowed(addr net.Addr) bool {
	if len(s.Clients) == 0 {
		return true
	}
	a := remoteIP(addr)
	for _, p := range s.Clients {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// remoteIP is the address of a UDP or TCP peer.
func remoteIP(addr net.Addr) netip.Addr {
	var a netip.Addr
	switch ra := addr.(type) {
	case *net.UDPAddr:
		a, _ = netip.AddrFromSlice(ra.IP)
	case *net.TCPAddr:
		a, _ = netip.AddrFromSlice(ra.IP)
	}
	return a.Unmap()
}

// answer answers req from recs for name (lower case, without the
// network's domain), or returns nil if recs do not know it.
func (s *Server) answer(req *dns.Msg, recs *Records, name string) *dns.Msg {
	q := req.Question[0]
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative, m.RecursionAvailable = true, true
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: DefaultTTL}
	}
	if q.Qtype == dns.TypePTR {
		a, ok := reverseAddr(name)
		if !ok {
			return nil
		}
		ep, ok := recs.byAddr(a)
		if !ok || len(ep.Names) == 0 {
			return nil
		}
		target := ep.Names[0]
		if s.Domain != "" {
			target += "." + s.Domain
		}
		m.Answer = append(m.Answer, &dns.PTR{Hdr: hdr(dns.TypePTR), Ptr: dns.Fqdn(target)})
		return m
	}
	// Containers' names are single labels.
	if name == "" || strings.Contains(name, ".") {
		return nil
	}
	eps := recs.lookup(name)
	if len(eps) == 0 {
		return nil
	}
	for _, ep := range eps {
		switch {
		case q.Qtype == dns.TypeA && ep.IPv4.IsValid():
			m.Answer = append(m.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: ep.IPv4.AsSlice()})
		case q.Qtype == dns.TypeAAAA && ep.IPv6.IsValid():
			m.Answer = append(m.Answer, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: ep.IPv6.AsSlice()})
		}
	}
	// A known name without an address of the type asked is an empty
	// answer (NODATA), not a question for the upstreams.
	return m
}

// reverseAddr reads the address of a PTR query's name (without the
// trailing dot).
func reverseAddr(name string) (netip.Addr, bool) {
	if rest, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		p := strings.Split(rest, ".")
		if len(p) != 4 {
			return netip.Addr{}, false
		}
		a, err := netip.ParseAddr(p[3] + "." + p[2] + "." + p[1] + "." + p[0])
		return a, err == nil
	}
	if rest, ok := strings.CutSuffix(name, ".ip6.arpa"); ok {
		p := strings.Split(rest, ".")
		if len(p) != 32 {
			return netip.Addr{}, false
		}
		var b strings.Builder
		for i := 31; i >= 0; i-- {
			b.WriteString(p[i])
			if i%4 == 0 && i > 0 {
				b.WriteByte(':')
			}
		}
		a, err := netip.ParseAddr(b.String())
		return a, err == nil
	}
	return netip.Addr{}, false
}

// forward sends req to the asking container's upstreams or the server's,
// the first that answers wins; over UDP a truncated answer is asked again
// over TCP. No answer at all is SERVFAIL.
func (s *Server) forward(w dns.ResponseWriter, req *dns.Msg, recs *Records) {
	ups := s.Upstreams
	proto := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		proto = "tcp"
	}
	if ep, ok := recs.byAddr(remoteIP(w.RemoteAddr())); ok && len(ep.Upstreams) > 0 {
		ups = ep.Upstreams
	}
	timeout := s.Timeout
	if timeout == 0 {
		timeout = 2 * time.Second
	}
	for _, u := range ups {
		c := &dns.Client{Net: proto, Timeout: timeout}
		resp, _, err := c.Exchange(req.Copy(), u)
		if err == nil && resp.Truncated && proto == "udp" {
			c.Net = "tcp"
			resp, _, err = c.Exchange(req.Copy(), u)
		}
		if err != nil {
			s.logf("forward %s to %s: %v", req.Question[0].Name, u, err)
			continue
		}
		resp.Id = req.Id
		if proto == "udp" {
			size := dns.MinMsgSize
			if opt := req.IsEdns0(); opt != nil {
				size = int(opt.UDPSize())
			}
			resp.Truncate(size)
		}
		w.WriteMsg(resp)
		return
	}
	m := new(dns.Msg)
	m.SetRcode(req, dns.RcodeServerFailure)
	m.RecursionAvailable = true
	w.WriteMsg(m)
}

// Listen binds UDP and TCP sockets on each address ("ip:port"). The
// sockets may bind an address that is not (yet) on an interface
// (IP_FREEBIND): a bridge gets its gateway address with its first
// container, and an IPv6 one is tentative for a while.
func Listen(addrs []string) (pcs []net.PacketConn, lns []net.Listener, retErr error) {
	defer func() {
		if retErr != nil {
			for _, pc := range pcs {
				pc.Close()
			}
			for _, l := range lns {
				l.Close()
			}
		}
	}()
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if strings.HasSuffix(network, "6") {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_FREEBIND, 1)
			} else {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1)
			}
		})
		return errors.Join(err, serr)
	}}
	ctx := context.Background()
	for _, a := range addrs {
		ap, err := netip.ParseAddrPort(a)
		if err != nil {
			return nil, nil, fmt.Errorf("DNS listen address %q: %w", a, err)
		}
		suffix := "4"
		if ap.Addr().Is6() {
			suffix = "6"
		}
		// Port 0 is a random port, the same for UDP and TCP: try again
		// when TCP's is taken.
		for try := 0; ; try++ {
			pc, err := lc.ListenPacket(ctx, "udp"+suffix, a)
			if err != nil {
				return nil, nil, fmt.Errorf("DNS server: %w", err)
			}
			tcpAddr := a
			if ap.Port() == 0 {
				tcpAddr = netip.AddrPortFrom(ap.Addr(), uint16(pc.LocalAddr().(*net.UDPAddr).Port)).String()
			}
			l, err := lc.Listen(ctx, "tcp"+suffix, tcpAddr)
			if err != nil {
				pc.Close()
				if ap.Port() == 0 && errors.Is(err, unix.EADDRINUSE) && try < 20 {
					continue
				}
				return nil, nil, fmt.Errorf("DNS server: %w", err)
			}
			pcs, lns = append(pcs, pc), append(lns, l)
			break
		}
	}
	return pcs, lns, nil
}

// Serve answers queries on the sockets Listen made until ctx ends, and
// closes them. It returns ctx's end as nil, or the first server's error.
func (s *Server) Serve(ctx context.Context, pcs []net.PacketConn, lns []net.Listener) error {
	var servers []*dns.Server
	for _, pc := range pcs {
		servers = append(servers, &dns.Server{PacketConn: pc, Handler: s})
	}
	for _, l := range lns {
		servers = append(servers, &dns.Server{Listener: l, Handler: s, ReadTimeout: 5 * time.Second})
	}
	errc := make(chan error, len(servers))
	for _, srv := range servers {
		go func() { errc <- srv.ActivateAndServe() }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	for _, srv := range servers {
		srv.Shutdown()
	}
	for _, pc := range pcs {
		pc.Close()
	}
	for _, l := range lns {
		l.Close()
	}
	return err
}

// HostUpstreams returns the name servers of the resolv.conf file at path
// as "host:port", without the addresses in skip (the server's own, which
// would loop).
func HostUpstreams(path string, skip []netip.Addr) ([]string, error) {
	cfg, err := dns.ClientConfigFromFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("read name servers: %w", err)
	}
	var out []string
	for _, ns := range cfg.Servers {
		a, err := netip.ParseAddr(strings.Split(ns, "%")[0])
		if err != nil {
			continue
		}
		own := false
		for _, s := range skip {
			own = own || s == a
		}
		if !own {
			out = append(out, net.JoinHostPort(ns, cfg.Port))
		}
	}
	return out, nil
}
