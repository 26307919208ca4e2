package network

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/berth-project/berth/internal/flock"

	"github.com/containernetworking/cni/libcni"
	"golang.org/x/sys/unix"
)

// DefaultPluginDirs is where CNI plugins are looked for: Debian's
// containernetworking-plugins, then the upstream location.
var DefaultPluginDirs = []string{"/usr/lib/cni", "/opt/cni/bin"}

// ErrNotFound is a network that does not exist.
var ErrNotFound = errors.New("network not found")

// ErrInUse is a network that containers still use.
var ErrInUse = errors.New("network is in use")

// Manager is berth's networks: their conflists in ConfigDir, and the
// run-time state (libcni's cache, host-local's leases) in RunDir.
type Manager struct {
	configDir string
	runDir    string
	plugins   []string
	cni       *libcni.CNIConfig
	// hostRoutes returns the routes a new subnet must not overlap;
	// tests replace it.
	hostRoutes func() ([]Route, error)
}

// New returns the manager of the networks whose conflists are in
// configDir (ROOT/networks), with run-time state in runDir (under the
// run root, a tmpfs) and plugins searched in pluginDirs (nil:
// DefaultPluginDirs).
func New(configDir, runDir string, pluginDirs []string) *Manager {
	if len(pluginDirs) == 0 {
		pluginDirs = DefaultPluginDirs
	}
	return &Manager{configDir: configDir, runDir: runDir, plugins: pluginDirs,
		cni:        libcni.NewCNIConfigWithCacheDir(pluginDirs, filepath.Join(runDir, "cache"), newPluginExec()),
		hostRoutes: HostRoutes}
}

// ipamDir is host-local's data directory (one subdirectory per network).
func (m *Manager) ipamDir() string { return filepath.Join(m.runDir, "ipam") }

func (m *Manager) path(name string) string { return filepath.Join(m.configDir, name+".conflist") }

// lock serializes changes to the set of networks across processes.
func (m *Manager) lock() (func(), error) {
	if err := os.MkdirAll(m.configDir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", m.configDir, err)
	}
	unlock, err := flock.Lock(filepath.Join(m.configDir, ".lock"), unix.LOCK_EX)
	if err != nil {
		return nil, fmt.Errorf("lock networks: %w", err)
	}
	return unlock, nil
}

// defaultNetwork is the default network's definition.
func (m *Manager) defaultNetwork() *Network {
	sum := sha256.Sum256([]byte("berth default network"))
	return &Network{Name: DefaultName, ID: hex.EncodeToString(sum[:]), Driver: "bridge", Bridge: DefaultBridge, GatewayOnHost: true,
		Subnets: []Subnet{{Subnet: netip.MustParsePrefix(DefaultSubnet), Gateway: netip.MustParseAddr("10.88.0.1")}},
		Created: time.Now().UTC()}
}

// ensureDefault writes the default network's conflist if it has none.
func (m *Manager) ensureDefault() error {
	if _, err := os.Stat(m.path(DefaultName)); err == nil {
		return nil
	}
	unlock, err := m.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Stat(m.path(DefaultName)); err == nil {
		return nil
	}
	return m.write(m.defaultNetwork())
}

func (m *Manager) write(n *Network) error {
	data, err := conflistBytes(n, m.ipamDir())
	if err != nil {
		return err
	}
	return writeFileAtomic(m.path(n.Name), append(data, '\n'), 0o644)
}

// CreateOptions are the options of Create.
type CreateOptions struct {
	Driver string // "" or "bridge"
	// Subnet and Gateway: none picks a free /24 in 10.89.0.0/16 and its
	// first address. They are one more entry of Subnets.
	Subnet  netip.Prefix
	Gateway netip.Addr
	// Subnets are the network's subnets, at most one per address family,
	// each with its gateway (invalid: the subnet's first address). With
	// IPv6 and no IPv6 subnet, a /64 of ULAPool is added (see ipv6.go).
	Subnets  []Subnet
	Internal bool
	IPv6     bool
	Labels   map[string]string
}

// Create creates the network name. Its subnet must not overlap another
// of berth's networks or one of the host's routes; the error names what
// it overlaps.
func (m *Manager) Create(name string, opts CreateOptions) (*Network, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if opts.Driver != "" && opts.Driver != "bridge" {
		return nil, fmt.Errorf("network %s: driver %q is not supported (berth has bridge)", name, opts.Driver)
	}
	if opts.Gateway.IsValid() && !opts.Subnet.IsValid() {
		return nil, fmt.Errorf("network %s: a gateway needs a subnet", name)
	}
	asked := opts.Subnets
	if opts.Subnet.IsValid() {
		asked = append([]Subnet{{Subnet: opts.Subnet, Gateway: opts.Gateway}}, asked...)
	}
	if err := validateSubnets(asked, opts.IPv6); err != nil {
		return nil, fmt.Errorf("network %s: %w", name, err)
	}
	if err := m.ensureDefault(); err != nil {
		return nil, err
	}
	unlock, err := m.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := os.Stat(m.path(name)); err == nil {
		return nil, fmt.Errorf("network with name %s already exists", name)
	}
	existing, err := m.list()
	if err != nil {
		return nil, err
	}
	routes, err := m.hostRoutes()
	if err != nil {
		return nil, err
	}
	subnets, err := planSubnets(asked, opts.IPv6, ULAPool(m.configDir), existing, routes)
	if err != nil {
		return nil, fmt.Errorf("network %s: %w", name, err)
	}
	id := make([]byte, 32)
	rand.Read(id)
	n := &Network{Name: name, ID: hex.EncodeToString(id), Driver: "bridge", GatewayOnHost: true, Internal: opts.Internal, IPv6: opts.IPv6,
		Labels: opts.Labels, Created: time.Now().UTC(), Subnets: subnets}
	n.Bridge = "br-" + n.ID[:12]
	if err := m.write(n); err != nil {
		return nil, err
	}
	n.Path = m.path(name)
	return n, nil
}

// checkOverlap returns an error naming the network or host route that
// subnet overlaps.
func checkOverlap(subnet netip.Prefix, networks []*Network, routes []Route) error {
	for _, n := range networks {
		for _, s := range n.Subnets {
			if s.Subnet.Overlaps(subnet) {
				return fmt.Errorf("subnet %s overlaps subnet %s of network %s", subnet, s.Subnet, n.Name)
			}
		}
	}
	for _, r := range routes {
		if r.Dst.Overlaps(subnet) {
			return fmt.Errorf("subnet %s overlaps the host's route %s", subnet, r)
		}
	}
	return nil
}

// freeSubnet picks the first /24 in 10.89.0.0/16 that overlaps nothing.
func freeSubnet(networks []*Network, routes []Route) (netip.Prefix, error) {
	for i := 0; i < 256; i++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 89, byte(i), 0}), 24)
		if checkOverlap(p, networks, routes) == nil {
			return p, nil
		}
	}
	return netip.Prefix{}, errors.New("no free subnet left in 10.89.0.0/16: give one with --subnet")
}

// List returns every network, the default one first, the others by name.
// A conflist that cannot be read is an error naming it.
func (m *Manager) List() ([]*Network, error) {
	if err := m.ensureDefault(); err != nil {
		return nil, err
	}
	return m.list()
}

func (m *Manager) list() ([]*Network, error) {
	files, err := filepath.Glob(filepath.Join(m.configDir, "*.conflist"))
	if err != nil {
		return nil, err
	}
	var out []*Network
	for _, f := range files {
		n, _, err := m.load(f)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool {
		if (out[i].Name == DefaultName) != (out[j].Name == DefaultName) {
			return out[i].Name == DefaultName
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

func (m *Manager) load(path string) (*Network, *libcni.NetworkConfigList, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read network config: %w", err)
	}
	n, list, err := parseConflist(path, data)
	if err != nil {
		return nil, nil, err
	}
	if want := strings.TrimSuffix(filepath.Base(path), ".conflist"); n.Name != want {
		return nil, nil, fmt.Errorf("network config %s: its name is %q, not %q", path, n.Name, want)
	}
	return n, list, nil
}

// Inspect returns the network ref: a name, "bridge" for the default
// network, or an ID or unique ID prefix.
func (m *Manager) Inspect(ref string) (*Network, error) {
	n, _, err := m.get(ref)
	return n, err
}

func (m *Manager) get(ref string) (*Network, *libcni.NetworkConfigList, error) {
	if err := m.ensureDefault(); err != nil {
		return nil, nil, err
	}
	if ref == "bridge" || ref == "default" {
		ref = DefaultName
	}
	if validName(ref) {
		if n, list, err := m.load(m.path(ref)); err == nil {
			return n, list, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, nil, err
		}
	}
	all, err := m.list()
	if err != nil {
		return nil, nil, err
	}
	var found *Network
	for _, n := range all {
		if ref != "" && strings.HasPrefix(n.ID, ref) {
			if found != nil {
				return nil, nil, fmt.Errorf("network %s is ambiguous: %s and %s", ref, found.Name, n.Name)
			}
			found = n
		}
	}
	if found == nil {
		return nil, nil, fmt.Errorf("network %s: %w", ref, ErrNotFound)
	}
	return m.load(found.Path)
}

// Remove removes the network ref. inUse returns the containers that use
// the network by name; if there are any, nothing is removed and the
// error names them. The default network cannot be removed.
func (m *Manager) Remove(ref string, inUse func(network string) []string) error {
	n, err := m.Inspect(ref)
	if err != nil {
		return err
	}
	if n.Name == DefaultName {
		return fmt.Errorf("%s is a pre-defined network and cannot be removed", n.Name)
	}
	unlock, err := m.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if inUse != nil {
		if users := inUse(n.Name); len(users) > 0 {
			return fmt.Errorf("network %s has active endpoints (%s): %w", n.Name, strings.Join(users, ", "), ErrInUse)
		}
	}
	m.stopDNS(n.Name)
	if err := os.Remove(n.Path); err != nil {
		return fmt.Errorf("remove network %s: %w", n.Name, err)
	}
	os.RemoveAll(filepath.Join(m.ipamDir(), n.Name))
	if err := m.forgetRules(n); err != nil {
		return fmt.Errorf("network %s removed, but not all its iptables rules: %w", n.Name, err)
	}
	if n.Bridge != "" {
		if err := deleteBridge(n.Bridge); err != nil {
			return fmt.Errorf("network %s removed, but its bridge stays: %w", n.Name, err)
		}
	}
	return nil
}

// Prune removes every network but the default one that no container
// uses, and returns their names.
func (m *Manager) Prune(inUse func(network string) []string) ([]string, error) {
	all, err := m.List()
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, n := range all {
		if n.Name == DefaultName || (inUse != nil && len(inUse(n.Name)) > 0) {
			continue
		}
		if err := m.Remove(n.Name, inUse); err != nil {
			if errors.Is(err, ErrInUse) {
				continue
			}
			return removed, err
		}
		removed = append(removed, n.Name)
	}
	return removed, nil
}

// deleteBridge takes the bridge interface name down and deletes it; a
// bridge that does not exist is not an error.
func deleteBridge(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		if errors.Is(err, unix.ENODEV) {
			return nil
		}
		return fmt.Errorf("bridge %s: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() &^ unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bridge %s down: %w", name, err)
	}
	if err := unix.IoctlSetString(fd, unix.SIOCBRDELBR, name); err != nil && !errors.Is(err, unix.ENXIO) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete bridge %s: %w", name, err)
	}
	return nil
}

// writeFileAtomic writes data to path through a synced temporary file in
// the same directory and a rename.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err == nil {
		if err = tmp.Chmod(perm); err == nil {
			err = tmp.Sync()
		}
	} else {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}
