package hosts

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newCA(t *testing.T, name string) *testCA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf certificate for a server (dnsNames, ips) or a client,
// and returns it with its PEM certificate and key.
func (ca *testCA) issue(t *testing.T, serial int64, client bool, dnsNames []string, ips []net.IP) (*x509.Certificate, []byte, []byte) {
	t.Helper()
	key := newKey(t)
	usage := x509.ExtKeyUsageServerAuth
	if client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "leaf"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return cert,
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCertsDirCAAndClientCert(t *testing.T) {
	ca := newCA(t, "berth test CA")
	leaf, _, _ := ca.issue(t, 2, false, []string{"registry.test"}, nil)
	client, clientPEM, clientKey := ca.issue(t, 3, true, nil, nil)

	// The host's files are spread over two roots, as certs.d allows.
	first, second := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(first, "registry.test:5000", "ca.crt"), ca.pem)
	writeFile(t, filepath.Join(second, "registry.test:5000", "client.cert"), clientPEM)
	writeFile(t, filepath.Join(second, "registry.test:5000", "client.key"), clientKey)
	writeFile(t, filepath.Join(second, "registry.test:5000", "README"), []byte("ignored"))
	c := &Config{CertsDirs: []string{filepath.Join(t.TempDir(), "missing"), first, second}}

	eps, err := c.Endpoints("registry.test:5000", "team/app", false)
	if err != nil {
		t.Fatal(err)
	}
	tc := eps[0].TLS
	if tc.RootCAs == nil {
		t.Fatal("no RootCAs from ca.crt")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: tc.RootCAs, DNSName: "registry.test"}); err != nil {
		t.Fatalf("leaf signed by the certs.d CA does not verify: %v", err)
	}
	if len(tc.Certificates) != 1 || !tc.Certificates[0].Leaf.Equal(client) {
		t.Fatalf("client certificates = %d, want the one from client.cert", len(tc.Certificates))
	}
	if tc.InsecureSkipVerify {
		t.Fatal("InsecureSkipVerify set for a secure host")
	}

	// Another host (and another port of the same name) does not get the CA.
	for _, host := range []string{"other.test:5000", "registry.test"} {
		eps, err := c.Endpoints(host, "team/app", false)
		if err != nil {
			t.Fatal(err)
		}
		if eps[0].TLS.RootCAs != nil || len(eps[0].TLS.Certificates) != 0 {
			t.Fatalf("%s got registry.test:5000's certificates", host)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: eps[0].TLS.RootCAs, DNSName: "registry.test"}); err == nil {
			t.Fatalf("%s: the test CA is trusted without certs.d", host)
		}
	}
}

func TestCertsDirHandshake(t *testing.T) {
	ca := newCA(t, "berth test CA")
	_, serverPEM, serverKey := ca.issue(t, 2, false, []string{"registry.test"}, nil)
	_, clientPEM, clientKey := ca.issue(t, 3, true, nil, nil)
	serverPair, err := tls.X509KeyPair(serverPEM, serverKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)

	// A server that demands a client certificate from the test CA.
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.PeerCertificates) == 0 {
			http.Error(w, "no client certificate", http.StatusForbidden)
			return
		}
		w.Write([]byte("hello " + r.TLS.PeerCertificates[0].Subject.CommonName))
	}))
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{serverPair},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake below
	srv.StartTLS()
	t.Cleanup(srv.Close)

	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// Reach the server by name, so that it is not loopback-insecure and the
	// certificate is really verified.
	host := "registry.test:" + port
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, host, "ca.crt"), ca.pem)
	writeFile(t, filepath.Join(dir, host, "me.cert"), clientPEM)
	writeFile(t, filepath.Join(dir, host, "me.key"), clientKey)
	c := &Config{CertsDirs: []string{dir}}
	eps, err := c.Endpoints(host, "x/y", false)
	if err != nil {
		t.Fatal(err)
	}
	if eps[0].Insecure {
		t.Fatalf("%s is insecure", host)
	}
	tr := &http.Transport{
		TLSClientConfig: eps[0].TLS,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, srv.Listener.Addr().String())
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr}).Get("https://" + host + "/")
	if err != nil {
		t.Fatalf("GET over certs.d TLS: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s", resp.Status)
	}

	// Without certs.d the server's certificate is not trusted.
	bare := (&Config{}).mustEndpoint(t, host)
	tr2 := tr.Clone()
	tr2.TLSClientConfig = bare.TLS
	t.Cleanup(tr2.CloseIdleConnections)
	if resp, err := (&http.Client{Transport: tr2}).Get("https://" + host + "/"); err == nil {
		resp.Body.Close()
		t.Fatal("GET without certs.d trusted the test CA")
	}
}

func (c *Config) mustEndpoint(t *testing.T, host string) Endpoint {
	t.Helper()
	eps, err := c.Endpoints(host, "x/y", false)
	if err != nil {
		t.Fatal(err)
	}
	return eps[0]
}

func TestCertsDirErrors(t *testing.T) {
	ca := newCA(t, "berth test CA")
	_, certPEM, keyPEM := ca.issue(t, 2, true, nil, nil)
	for _, tc := range []struct {
		name  string
		files map[string][]byte
		want  string // file named by the error
	}{
		{"cert without key", map[string][]byte{"client.cert": certPEM}, "client.cert"},
		{"key without cert", map[string][]byte{"client.key": keyPEM}, "client.key"},
		{"mismatched pair", map[string][]byte{"client.cert": certPEM, "client.key": pemKey(t)}, "client.cert"},
		{"garbage CA", map[string][]byte{"ca.crt": []byte("not a certificate")}, "ca.crt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for n, data := range tc.files {
				writeFile(t, filepath.Join(dir, "registry.test", n), data)
			}
			c := &Config{CertsDirs: []string{dir}}
			_, err := c.Endpoints("registry.test", "x/y", false)
			if err == nil {
				t.Fatal("Endpoints succeeded")
			}
			want := filepath.Join(dir, "registry.test", tc.want)
			if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "registry.test") {
				t.Fatalf("error %q does not name %s", err, want)
			}
		})
	}
}

func pemKey(t *testing.T) []byte {
	der, err := x509.MarshalECPrivateKey(newKey(t))
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func TestCertsDirDockerHub(t *testing.T) {
	ca := newCA(t, "hub CA")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "docker.io", "ca.crt"), ca.pem)
	c := &Config{CertsDirs: []string{dir}}
	ep := c.mustEndpoint(t, "docker.io")
	if ep.Host != "registry-1.docker.io" || ep.TLS.RootCAs == nil {
		t.Fatalf("docker.io: host %s, RootCAs %v; want certs.d/docker.io applied to registry-1.docker.io", ep.Host, ep.TLS.RootCAs)
	}
}
