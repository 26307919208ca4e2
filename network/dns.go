package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-project/berth/network/netdns"
)

// DNSDomain is the domain of containers' names on a user network:
// NAME.dns.berth is NAME, and containers have it first in their search
// list, so that a bare name is answered by the network's name server
// without a trip to the host's.
const DNSDomain = "dns.berth"

// UpstreamsEnv names the environment variable that, when set (a comma
// separated list of "host:port"), replaces the host's /etc/resolv.conf
// name servers as the upstreams of the name servers berth starts.
const UpstreamsEnv = "BERTH_DNS_UPSTREAMS"

// dnsPoll is how often a name server checks whether its network still
// has containers.
const dnsPoll = 500 * time.Millisecond

// HasDNS reports whether n's containers find each other by name: user
// networks do (internal ones too, without forwarding other names: they
// have no way out); the default network, like docker's default bridge,
// does not, nor does a network whose bridge holds no gateway address to
// serve on (internal networks made by an older berth).
func HasDNS(n *Network) bool {
	return n.Name != DefaultName && n.GatewayOnHost && len(DNSServers(n)) > 0
}

// DNSServers are the addresses n's name server answers on: the gateway
// of each subnet (IPv6 ones only when n has IPv6).
func DNSServers(n *Network) []netip.Addr {
	var out []netip.Addr
	for _, s := range n.Subnets {
		if s.Gateway.IsValid() && (s.Gateway.Is4() || n.IPv6) {
			out = append(out, s.Gateway)
		}
	}
	return out
}

func (m *Manager) dnsDir(name string) string { return filepath.Join(m.runDir, "dns", name) }
func (m *Manager) dnsRecords(name string) string {
	return filepath.Join(m.dnsDir(name), "records.json")
}
func (m *Manager) dnsPidFile(name string) string { return filepath.Join(m.dnsDir(name), "pid") }

// AddDNS records ep's names on network n and starts n's name server if
// it does not run: start is its command line (berth's hidden `network
// dns NAME`), run detached in a session of its own. It returns when the
// server listens. Networks without name resolution (see HasDNS) are left
// alone.
func (m *Manager) AddDNS(n *Network, ep netdns.Endpoint, start []string) error {
	if !HasDNS(n) {
		return nil
	}
	path := m.dnsRecords(n.Name)
	unlock, err := netdns.Lock(path)
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := netdns.UpdateLocked(path, func(r *netdns.Records) error {
		r.Network = n.Name
		r.Put(ep)
		return nil
	}); err != nil {
		return err
	}
	if _, ok := m.dnsRunning(n.Name); ok {
		return nil
	}
	return m.startDNS(n.Name, start)
}

// RemoveDNS removes container id's names from every network's records
// (a network's name server exits by itself when the last is gone). With
// networks, only those networks' records are changed.
func (m *Manager) RemoveDNS(id string, networks ...string) error {
	if len(networks) == 0 {
		dirs, err := os.ReadDir(filepath.Join(m.runDir, "dns"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("DNS records: %w", err)
		}
		for _, d := range dirs {
			networks = append(networks, d.Name())
		}
	}
	var errs []error
	for _, name := range networks {
		path := m.dnsRecords(name)
		if _, err := os.Stat(path); err != nil {
			continue
		}
		unlock, err := netdns.Lock(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		recs, err := netdns.Read(path)
		if err == nil {
			if found := recs.Remove(id); found {
				_, err = netdns.UpdateLocked(path, func(r *netdns.Records) error { r.Remove(id); return nil })
			}
		}
		unlock()
		if err != nil {
			errs = append(errs, fmt.Errorf("network %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// DNSPid returns the pid of network name's name server, if it runs.
func (m *Manager) DNSPid(name string) (int, bool) { return m.dnsRunning(name) }

// dnsRunning reads network name's name server's pid file and checks
// that the process is still that server.
func (m *Manager) dnsRunning(name string) (int, bool) {
	data, err := os.ReadFile(m.dnsPidFile(name))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return 0, false
	}
	args := strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	for i := 0; i+2 < len(args); i++ {
		if args[i] == "network" && args[i+1] == "dns" && args[len(args)-1] == name {
			return pid, true
		}
	}
	return 0, false
}

// startDNS starts network name's name server with the command start and
// waits until it has written its pid file (it listens then), or exited.
// The caller holds the records' lock.
func (m *Manager) startDNS(name string, start []string) error {
	if len(start) == 0 {
		return fmt.Errorf("network %s: no command to start its name server", name)
	}
	dir := m.dnsDir(name)
	os.Remove(m.dnsPidFile(name))
	logPath := filepath.Join(dir, "log")
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("network %s: name server log: %w", name, err)
	}
	defer logf.Close()
	cmd := exec.Command(start[0], start[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("network %s: start name server: %w", name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.After(10 * time.Second)
	for {
		if pid, ok := m.dnsRunning(name); ok && pid == cmd.Process.Pid {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("network %s: its name server exited: %s", name, lastLine(logPath))
		case <-deadline:
			cmd.Process.Kill()
			return fmt.Errorf("network %s: its name server did not start in 10 s (log %s)", name, logPath)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// lastLine is the last line of the file at path, for an error.
func lastLine(path string) string {
	data, _ := os.ReadFile(path)
	lines := bytes.Split(bytes.TrimSpace(data), []byte("\n"))
	return string(lines[len(lines)-1])
}

// stopDNS stops network name's name server (network rm) and removes its
// records.
func (m *Manager) stopDNS(name string) {
	if pid, ok := m.dnsRunning(name); ok {
		syscall.Kill(pid, syscall.SIGTERM)
		for i := 0; i < 200; i++ {
			if _, ok := m.dnsRunning(name); !ok {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	os.RemoveAll(m.dnsDir(name))
}

// ServeDNS is the name server of network name: it answers on the
// network's gateway addresses, port 53, from the records AddDNS and
// RemoveDNS keep, forwarding other names to the host's name servers (or
// those of UpstreamsEnv). It returns when ctx ends or when the network
// has no container left; log receives its failures.
func (m *Manager) ServeDNS(ctx context.Context, name string, log io.Writer) error {
	n, err := m.Inspect(name)
	if err != nil {
		return err
	}
	if !HasDNS(n) {
		return fmt.Errorf("network %s has no name resolution", n.Name)
	}
	gws := DNSServers(n)
	var addrs []string
	for _, gw := range gws {
		addrs = append(addrs, netip.AddrPortFrom(gw, 53).String())
	}
	var ups []string
	switch {
	case n.Internal: // answers its own names only
	case os.Getenv(UpstreamsEnv) != "":
		ups = strings.Split(os.Getenv(UpstreamsEnv), ",")
	default:
		if ups, err = netdns.HostUpstreams("/etc/resolv.conf", gws); err != nil {
			return err
		}
	}
	pcs, lns, err := netdns.Listen(addrs)
	if err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	path := m.dnsRecords(n.Name)
	if log != nil {
		log = &capWriter{w: log, left: maxDNSLog}
	}
	srv := &netdns.Server{Records: path, Domain: DNSDomain, Upstreams: ups, NoForward: n.Internal, Log: log}
	for _, sn := range n.Subnets {
		srv.Clients = append(srv.Clients, sn.Subnet)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, pcs, lns) }()
	pidFile := m.dnsPidFile(n.Name)
	if err := writeFileAtomic(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		cancel()
		<-done
		return fmt.Errorf("network %s: name server pid file: %w", n.Name, err)
	}
	tick := time.NewTicker(dnsPoll)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			os.Remove(pidFile)
			return err
		case <-tick.C:
		}
		if recs, err := srv.Current(); err != nil || len(recs.Endpoints) > 0 {
			continue
		}
		// No container left: exit, unless one joins meanwhile. Under
		// the records' lock, a starter either sees this server still
		// running (and its container in the records, which keeps it),
		// or sees it gone and starts another.
		unlock, err := netdns.Lock(path)
		if err != nil {
			continue
		}
		if recs, err := netdns.Read(path); err != nil || len(recs.Endpoints) > 0 {
			unlock()
			continue
		}
		cancel()
		err = <-done
		os.Remove(pidFile)
		unlock()
		return err
	}
}

// maxDNSLog bounds what a name server logs (its log is on the run root, a
// tmpfs, and an unreachable upstream fails every forwarded query).
const maxDNSLog = 1 << 20

// capWriter writes to w until left bytes are written, then drops.
type capWriter struct {
	w    io.Writer
	left int
}

func (c *capWriter) Write(p []byte) (int, error) {
	if len(p) > c.left {
		return len(p), nil
	}
	c.left -= len(p)
	return c.w.Write(p)
}
