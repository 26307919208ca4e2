package netdns

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-project/berth/internal/flock"

	"golang.org/x/sys/unix"
)

// Records are the names of one network's containers.
type Records struct {
	Network   string     `json:"network"`
	Endpoints []Endpoint `json:"endpoints"`
}

// Endpoint is one container on the network.
type Endpoint struct {
	ContainerID string `json:"containerID"`
	// Names are what resolve to the addresses: the container's name,
	// its aliases on the network and its short ID.
	Names []string   `json:"names"`
	IPv4  netip.Addr `json:"ipv4,omitzero"`
	IPv6  netip.Addr `json:"ipv6,omitzero"`
	// Upstreams are the container's own name servers (--dns,
	// "host:port"): its queries for other names go to them instead of
	// the server's default upstreams.
	Upstreams []string `json:"upstreams,omitempty"`
}

// Read reads the records file at path. A missing file is empty records.
func Read(path string) (*Records, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &Records{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read DNS records: %w", err)
	}
	var r Records
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("DNS records %s: %w", path, err)
	}
	return &r, nil
}

// Lock takes the exclusive lock of the records file at path (the file
// path+".lock") and returns its release.
func Lock(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("lock DNS records: %w", err)
	}
	unlock, err := flock.Lock(path+".lock", unix.LOCK_EX)
	if err != nil {
		return nil, fmt.Errorf("lock DNS records: %w", err)
	}
	return unlock, nil
}

// Update changes the records file at path with fn under its lock and
// writes it back atomically (a synced temporary file in the same
// directory, renamed over it). It returns the records as written.
func Update(path string, fn func(*Records) error) (*Records, error) {
	unlock, err := Lock(path)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return UpdateLocked(path, fn)
}

// UpdateLocked is Update for a caller that holds the lock (see Lock).
func UpdateLocked(path string, fn func(*Records) error) (*Records, error) {
	r, err := Read(path)
	if err != nil {
		return nil, err
	}
	if err := fn(r); err != nil {
		return nil, err
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeAtomic(path, append(data, '\n')); err != nil {
		return nil, fmt.Errorf("write DNS records %s: %w", path, err)
	}
	return r, nil
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Put adds ep, replacing the endpoint of the same container.
func (r *Records) Put(ep Endpoint) {
	r.Remove(ep.ContainerID)
	r.Endpoints = append(r.Endpoints, ep)
}

// Remove removes the endpoint of container id and reports whether there
// was one.
func (r *Records) Remove(id string) bool {
	kept := r.Endpoints[:0]
	found := false
	for _, ep := range r.Endpoints {
		if ep.ContainerID == id {
			found = true
			continue
		}
		kept = append(kept, ep)
	}
	r.Endpoints = kept
	return found
}

// lookup returns the endpoints name (lower case, no trailing dot) names.
func (r *Records) lookup(name string) []Endpoint {
	var out []Endpoint
	for _, ep := range r.Endpoints {
		for _, n := range ep.Names {
			if strings.EqualFold(n, name) {
				out = append(out, ep)
				break
			}
		}
	}
	return out
}

// byAddr returns the endpoint with address a.
func (r *Records) byAddr(a netip.Addr) (Endpoint, bool) {
	a = a.Unmap()
	for _, ep := range r.Endpoints {
		if (ep.IPv4.IsValid() && ep.IPv4 == a) || (ep.IPv6.IsValid() && ep.IPv6 == a) {
			return ep, true
		}
	}
	return Endpoint{}, false
}
