package hosts

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// tlsConfig returns the cached base TLS configuration for host, reading
// the certs.d directories named after each of dirNames (host first) on
// first use. Callers clone it before changing it.
func (c *Config) tlsConfig(host string, dirNames []string) (*tls.Config, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tc, ok := c.tls[host]; ok {
		return tc, nil
	}
	tc, err := c.loadCerts(host, dirNames)
	if err != nil {
		return nil, err
	}
	if c.tls == nil {
		c.tls = make(map[string]*tls.Config)
	}
	c.tls[host] = tc
	return tc, nil
}

// loadCerts builds the TLS configuration for host from every
// CertsDirs/NAME directory.
func (c *Config) loadCerts(host string, dirNames []string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	for _, root := range c.CertsDirs {
		for _, name := range dirNames {
			if err := addCertsDir(tc, filepath.Join(root, name)); err != nil {
				return nil, fmt.Errorf("load certificates for %s: %w", host, err)
			}
		}
	}
	return tc, nil
}

// addCertsDir adds the CAs (*.crt) and client key pairs (*.cert, *.key) in
// dir to tc. A missing directory adds nothing.
func addCertsDir(tc *tls.Config, dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	names := make(map[string]bool, len(entries))
	for _, e := range entries {
		names[e.Name()] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)

	for _, n := range sorted {
		file := filepath.Join(dir, n)
		switch {
		case strings.HasSuffix(n, ".crt"):
			pem, err := os.ReadFile(file)
			if err != nil {
				return fmt.Errorf("read CA certificate: %w", err)
			}
			if tc.RootCAs == nil {
				pool, err := x509.SystemCertPool()
				if err != nil || pool == nil {
					pool = x509.NewCertPool()
				}
				tc.RootCAs = pool
			}
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("CA certificate %s: no PEM certificate found", file)
			}
		case strings.HasSuffix(n, ".cert"):
			keyName := strings.TrimSuffix(n, ".cert") + ".key"
			if !names[keyName] {
				return fmt.Errorf("client certificate %s: missing key %s", file, filepath.Join(dir, keyName))
			}
			pair, err := tls.LoadX509KeyPair(file, filepath.Join(dir, keyName))
			if err != nil {
				return fmt.Errorf("client certificate %s: %w", file, err)
			}
			tc.Certificates = append(tc.Certificates, pair)
		case strings.HasSuffix(n, ".key"):
			certName := strings.TrimSuffix(n, ".key") + ".cert"
			if !names[certName] {
				return fmt.Errorf("client key %s: missing certificate %s", file, filepath.Join(dir, certName))
			}
		}
	}
	return nil
}
