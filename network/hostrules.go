package network

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/berth-project/berth/internal/flock"

	"golang.org/x/sys/unix"
)

// berth's iptables chains: the rules of every network, installed once per
// bridge instead of per container (the bridge plugin's ipMasq and the
// firewall plugin cost about 20 iptables executions per container, ADD
// and DEL, most of a run's time).
//
//	nat    POSTROUTING        -j BERTH-POSTROUTING
//	       BERTH-POSTROUTING  -s SUBNET ! -o BRIDGE -j MASQUERADE      (NAT to the outside)
//	filter FORWARD            -j BERTH-ISOLATION-1, -j BERTH-FORWARD  (first)
//	       BERTH-ISOLATION-1  -i BRIDGE ! -o BRIDGE -m conntrack ! --ctstate DNAT -j BERTH-ISOLATION-2
//	       BERTH-ISOLATION-2  -o BRIDGE -j DROP                       (no traffic between networks)
//	       BERTH-FORWARD      -o BRIDGE ctstate RELATED,ESTABLISHED|DNAT ACCEPT, -i BRIDGE ACCEPT
//
// as docker does with its bridges: a container reaches the outside and
// the host, other containers of its network and published ports, but no
// container of another network (its traffic to them is dropped when it
// leaves its bridge for theirs). An internal network's traffic does not
// leave its bridge.
const (
	chainPost  = "BERTH-POSTROUTING"
	chainFwd   = "BERTH-FORWARD"
	chainIso1  = "BERTH-ISOLATION-1"
	chainIso2  = "BERTH-ISOLATION-2"
	ruleMarker = "berth network "
)

// rule is one iptables rule: a table, a chain and its match and target.
type rule struct {
	table, chain string
	spec         []string
	insert       bool // at the chain's head, not its end
}

// networkRules are n's rules for one address family (v6: ip6tables).
func networkRules(n *Network, v6 bool) []rule {
	b := n.Bridge
	comment := []string{"-m", "comment", "--comment", ruleMarker + n.Name}
	r := func(table, chain string, spec ...string) rule {
		return rule{table: table, chain: chain, spec: append(spec, comment...)}
	}
	var out []rule
	out = append(out,
		r("filter", chainIso1, "-i", b, "!", "-o", b, "-m", "conntrack", "!", "--ctstate", "DNAT", "-j", chainIso2),
		r("filter", chainIso2, "-o", b, "-j", "DROP"))
	if n.Internal {
		out = append(out,
			r("filter", chainFwd, "-i", b, "!", "-o", b, "-j", "DROP"),
			r("filter", chainFwd, "-o", b, "!", "-i", b, "-j", "DROP"),
			r("filter", chainFwd, "-i", b, "-o", b, "-j", "ACCEPT"))
		return out
	}
	out = append(out,
		r("filter", chainFwd, "-o", b, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-j", "ACCEPT"),
		r("filter", chainFwd, "-i", b, "-j", "ACCEPT"))
	for _, s := range n.Subnets {
		if s.Subnet.Addr().Is6() != v6 {
			continue
		}
		spec := []string{"-s", s.Subnet.String(), "!", "-o", b}
		if !v6 {
			spec = append(spec, "!", "-d", "224.0.0.0/4")
		}
		out = append(out, r("nat", chainPost, append(spec, "-j", "MASQUERADE")...))
	}
	return out
}

// jumps are the rules that lead from the built-in chains into berth's.
func jumps() []rule {
	return []rule{
		{table: "nat", chain: "POSTROUTING", spec: []string{"-j", chainPost}},
		// Inserted in this order, isolation ends up first.
		{table: "filter", chain: "FORWARD", spec: []string{"-j", chainFwd}, insert: true},
		{table: "filter", chain: "FORWARD", spec: []string{"-j", chainIso1}, insert: true},
	}
}

// iptables runs the iptables (or ip6tables) command with args and
// returns its error output in the error.
func iptables(v6 bool, args ...string) error {
	name := "iptables"
	if v6 {
		name = "ip6tables"
	}
	cmd := exec.Command(name, append([]string{"--wait"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// ensureRule adds r unless it is there.
func ensureRule(v6 bool, r rule) error {
	if iptables(v6, append([]string{"-t", r.table, "-C", r.chain}, r.spec...)...) == nil {
		return nil
	}
	op := "-A"
	if r.insert {
		op = "-I"
	}
	return iptables(v6, append([]string{"-t", r.table, op, r.chain}, r.spec...)...)
}

// families are the address families of n's subnets: false for IPv4,
// true for IPv6.
func families(n *Network) []bool {
	var v4, v6 bool
	for _, s := range n.Subnets {
		if s.Subnet.Addr().Is6() {
			v6 = true
		} else {
			v4 = true
		}
	}
	var out []bool
	if v4 || !v6 {
		out = append(out, false)
	}
	if v6 {
		out = append(out, true)
	}
	return out
}

// installRules adds berth's chains, their jumps and n's rules where they
// are missing.
func installRules(n *Network) error {
	for _, v6 := range families(n) {
		for _, c := range []struct{ table, chain string }{{"nat", chainPost}, {"filter", chainFwd}, {"filter", chainIso1}, {"filter", chainIso2}} {
			if iptables(v6, "-t", c.table, "-S", c.chain, "1") != nil {
				if err := iptables(v6, "-t", c.table, "-N", c.chain); err != nil && iptables(v6, "-t", c.table, "-S", c.chain, "1") != nil {
					return err
				}
			}
		}
		for _, r := range append(jumps(), networkRules(n, v6)...) {
			if err := ensureRule(v6, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeRules deletes n's rules (not the shared chains, which other
// networks use); rules that are not there are not an error.
func removeRules(n *Network) error {
	var errs []error
	for _, v6 := range families(n) {
		for _, r := range networkRules(n, v6) {
			check := append([]string{"-t", r.table, "-C", r.chain}, r.spec...)
			for iptables(v6, check...) == nil {
				if err := iptables(v6, append([]string{"-t", r.table, "-D", r.chain}, r.spec...)...); err != nil {
					errs = append(errs, err)
					break
				}
			}
		}
	}
	return errors.Join(errs...)
}

// rulesDir holds one marker per network: the index of the bridge
// interface its rules were installed for.
func (m *Manager) rulesDir() string { return filepath.Join(m.runDir, "rules") }

// ensureRules installs n's host rules once per bridge: after the bridge
// plugin made the bridge, a marker under the run dir remembers its
// interface index and network namespace. A new bridge (after a reboot,
// network rm or an operator's ip link del) has a new index, a new
// namespace (berth run from another one with the same run root) counts
// its interfaces from 1 again, and the rules are checked and added again;
// a run on an existing bridge costs no iptables call.
func (m *Manager) ensureRules(n *Network) error {
	if n.Bridge == "" {
		return nil
	}
	ifc, err := net.InterfaceByName(n.Bridge)
	if err != nil {
		return fmt.Errorf("network %s: bridge %s: %w", n.Name, n.Bridge, err)
	}
	marker := filepath.Join(m.rulesDir(), n.Name)
	want := strconv.Itoa(ifc.Index) + " " + netnsID() + " " + n.ID + "\n"
	if b, err := os.ReadFile(marker); err == nil && string(b) == want {
		return nil
	}
	unlock, err := lockFile(filepath.Join(m.rulesDir(), ".lock"))
	if err != nil {
		return err
	}
	defer unlock()
	if b, err := os.ReadFile(marker); err == nil && string(b) == want {
		return nil
	}
	if err := installRules(n); err != nil {
		return fmt.Errorf("network %s: host rules: %w", n.Name, err)
	}
	if err := writeFileAtomic(marker, []byte(want), 0o644); err != nil {
		return fmt.Errorf("network %s: %w", n.Name, err)
	}
	return nil
}

// forgetRules removes n's host rules and its marker.
func (m *Manager) forgetRules(n *Network) error {
	os.Remove(filepath.Join(m.rulesDir(), n.Name))
	if n.Bridge == "" {
		return nil
	}
	return removeRules(n)
}

// lockFile takes an exclusive flock on path (created if missing) and
// returns its release.
func lockFile(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return flock.Lock(path, unix.LOCK_EX)
}

// netnsID identifies the calling thread's network namespace: its cookie
// (unique for the boot, never reused; Linux 5.14), or else its inode and
// device (unique while it exists).
func netnsID() string {
	if fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err == nil {
		cookie, err := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
		unix.Close(fd)
		if err == nil {
			return "cookie:" + strconv.FormatUint(cookie, 10)
		}
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return "unknown"
	}
	return "ino:" + strconv.FormatUint(st.Ino, 10) + ":" + strconv.FormatUint(st.Dev, 10)
}
