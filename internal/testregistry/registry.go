package testregistry

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Binary is where Debian's docker-registry package installs distribution.
const Binary = "/usr/bin/docker-registry"

// DefaultTokenTTL is the lifetime of tokens when Options.TokenTTL is zero.
const DefaultTokenTTL = 60 * time.Second

// startTimeout bounds how long Start waits for /v2/ to answer.
const startTimeout = 20 * time.Second

// Options choose how a registry started by Start serves and
// authenticates. The zero value is a plain-HTTP registry open to anyone.
type Options struct {
	// TLS serves HTTPS with a certificate for 127.0.0.1 and localhost,
	// signed by a CA made for this registry (ECDSA P-256).
	TLS bool
	// Basic requires htpasswd basic auth as Registry.Username with
	// Registry.Password. It cannot be combined with Token.
	Basic bool
	// Token requires bearer tokens from a token endpoint this package
	// serves, which grants pull and push to Registry.Username with
	// Registry.Password.
	Token bool
	// AnonymousPull, with Token, makes the token endpoint answer requests
	// without credentials with a pull-only token instead of 401.
	AnonymousPull bool
	// TokenTTL is the lifetime of issued tokens (exp - iat, and the
	// answer's expires_in); zero means DefaultTokenTTL. It is whole
	// seconds on the wire.
	TokenTTL time.Duration
}

// Registry is a running docker-registry.
type Registry struct {
	// Host is "127.0.0.1:PORT", the registry's host in references.
	Host string
	// Username and Password are the credentials the registry (Basic) or
	// its token endpoint (Token) accepts; empty without auth.
	Username, Password string
	// CAFile is the PEM file of the CA that signed the registry's
	// certificate when TLS is set, else "".
	CAFile string
	// CertsDir is a docker certs.d-style directory holding
	// CertsDir/Host/ca.crt (and the same under localhost:PORT) when TLS
	// is set, else "".
	CertsDir string
	// Dir is the registry's storage root.
	Dir string
	// LogFile holds the registry's output; Start prints its tail when the
	// test fails.
	LogFile string
	// TokenRequests returns what the token endpoint was asked so far, in
	// order; it returns nil when Token is not set.
	TokenRequests func() []TokenRequest

	opts Options
}

// URL returns the registry's base URL, https:// when TLS is set.
func (r *Registry) URL() string {
	if r.opts.TLS {
		return "https://" + r.Host
	}
	return "http://" + r.Host
}

// Start starts a registry configured by opts, waits until its /v2/
// answers (200 or 401) and registers its shutdown and removal with
// t.Cleanup. It fails t when docker-registry is not installed or does not
// come up.
func Start(t testing.TB, opts Options) *Registry {
	t.Helper()
	if opts.Basic && opts.Token {
		t.Fatal("testregistry: Options.Basic and Options.Token are exclusive (distribution serves one auth scheme)")
	}
	if opts.AnonymousPull && !opts.Token {
		t.Fatal("testregistry: Options.AnonymousPull needs Options.Token")
	}
	if _, err := os.Stat(Binary); err != nil {
		t.Fatalf("testregistry: %s is missing; install Debian's docker-registry (apt-get install docker-registry): %v", Binary, err)
	}
	if opts.TokenTTL == 0 {
		opts.TokenTTL = DefaultTokenTTL
	}
	if opts.TokenTTL < time.Second {
		t.Fatalf("testregistry: Options.TokenTTL %v: tokens live whole seconds, at least 1s", opts.TokenTTL)
	}
	dir := t.TempDir()
	r := &Registry{
		Dir:           filepath.Join(dir, "storage"),
		LogFile:       filepath.Join(dir, "registry.log"),
		TokenRequests: func() []TokenRequest { return nil },
		opts:          opts,
	}
	if err := os.Mkdir(r.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := config{storage: r.Dir}

	if opts.Basic || opts.Token {
		r.Username, r.Password = "berth", randomHex(12)
	}
	if opts.Basic {
		hash, err := bcrypt.GenerateFromPassword([]byte(r.Password), bcrypt.MinCost)
		if err != nil {
			t.Fatalf("testregistry: bcrypt: %v", err)
		}
		cfg.htpasswd = filepath.Join(dir, "htpasswd")
		if err := writeFile(cfg.htpasswd, fmt.Appendf(nil, "%s:%s\n", r.Username, hash), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	var ca *authority
	var serving *leaf
	if opts.TLS || opts.Token {
		var err error
		if ca, err = newAuthority(); err != nil {
			t.Fatal(err)
		}
	}
	if opts.TLS {
		var err error
		if serving, err = ca.issue("127.0.0.1", true); err != nil {
			t.Fatal(err)
		}
		r.CAFile = filepath.Join(dir, "ca.pem")
		cfg.cert, cfg.key = filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
		for path, data := range map[string][]byte{r.CAFile: ca.pem, cfg.cert: serving.certPEM, cfg.key: serving.keyPEM} {
			if err := writeFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	if opts.Token {
		signer, err := ca.issue("berth testregistry token signer", false)
		if err != nil {
			t.Fatal(err)
		}
		cfg.rootCerts = filepath.Join(dir, "token-ca.pem")
		if err := writeFile(cfg.rootCerts, ca.pem, 0o600); err != nil {
			t.Fatal(err)
		}
		ts := startTokenServer(signer, serving, r.Username, r.Password, opts.TokenTTL, opts.AnonymousPull)
		t.Cleanup(ts.close)
		cfg.realm = ts.realm()
		r.TokenRequests = ts.log
	}

	logf, err := os.Create(r.LogFile)
	if err != nil {
		t.Fatalf("testregistry: %v", err)
	}
	t.Cleanup(func() {
		logf.Close()
		if t.Failed() {
			t.Logf("testregistry: tail of %s (registry %s):\n%s", r.LogFile, r.Host, tail(r.LogFile, 40))
		}
	})

	client := &http.Client{Timeout: 2 * time.Second}
	if ca != nil {
		client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool()}}
	}
	// The free port can be taken between picking and binding it; try a
	// few before giving up.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("testregistry: %v", err)
		}
		r.Host = "127.0.0.1:" + strconv.Itoa(port)
		cfg.addr = r.Host
		cfgPath := filepath.Join(dir, "config.yml")
		if err := writeFile(cfgPath, cfg.render(), 0o600); err != nil {
			t.Fatal(err)
		}
		proc, err := r.launch(cfgPath, logf)
		if err != nil {
			t.Fatalf("testregistry: %v", err)
		}
		lastErr = r.waitReady(client, proc)
		if lastErr == nil {
			t.Cleanup(proc.stop)
			break
		}
		proc.stop()
		if !strings.Contains(tail(r.LogFile, 5), "address already in use") {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("testregistry: %v\nconfig:\n%s\nlog %s:\n%s", lastErr, cfg.render(), r.LogFile, tail(r.LogFile, 40))
	}

	if opts.TLS {
		r.CertsDir = filepath.Join(dir, "certs.d")
		for _, host := range []string{r.Host, strings.Replace(r.Host, "127.0.0.1", "localhost", 1)} {
			hostDir := filepath.Join(r.CertsDir, host)
			if err := os.MkdirAll(hostDir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := writeFile(filepath.Join(hostDir, "ca.crt"), ca.pem, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	return r
}

// process is a started docker-registry; exited is closed once it ends.
type process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	err    error
}

func (r *Registry) launch(cfgPath string, logf *os.File) (*process, error) {
	cmd := exec.Command(Binary, "serve", cfgPath)
	cmd.Dir = filepath.Dir(cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	// distribution overrides its config with REGISTRY_* variables; keep
	// the caller's out.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	// Do not outlive a test binary that dies without running cleanups.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", Binary, err)
	}
	p := &process{cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// stop kills the registry and waits for it.
func (p *process) stop() {
	p.cmd.Process.Kill()
	<-p.exited
}

// waitReady polls /v2/ until it answers 200 or 401, the process exits or
// startTimeout passes.
func (r *Registry) waitReady(client *http.Client, p *process) error {
	deadline := time.Now().Add(startTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("docker-registry for %s exited during start: %v", r.Host, p.err)
		default:
		}
		resp, err := client.Get(r.URL() + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			err = fmt.Errorf("GET %s/v2/: %s", r.URL(), resp.Status)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("docker-registry at %s not ready after %v: %v", r.Host, startTimeout, last)
}

// config is what config.yml says.
type config struct {
	addr, storage    string
	cert, key        string // TLS
	htpasswd         string // Basic
	realm, rootCerts string // Token
}

// render writes distribution 2.8's configuration (version 0.1).
func (c config) render() []byte {
	q := strconv.Quote
	var b bytes.Buffer
	fmt.Fprintf(&b, "version: 0.1\n")
	fmt.Fprintf(&b, "log:\n  level: info\n  accesslog:\n    disabled: true\n")
	fmt.Fprintf(&b, "storage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\n", q(c.storage))
	fmt.Fprintf(&b, "  maintenance:\n    uploadpurging:\n      enabled: false\n")
	fmt.Fprintf(&b, "http:\n  addr: %s\n  secret: %s\n", q(c.addr), q(randomHex(16)))
	if c.cert != "" {
		fmt.Fprintf(&b, "  tls:\n    certificate: %s\n    key: %s\n", q(c.cert), q(c.key))
	}
	switch {
	case c.htpasswd != "":
		fmt.Fprintf(&b, "auth:\n  htpasswd:\n    realm: %s\n    path: %s\n", q("berth-testregistry"), q(c.htpasswd))
	case c.realm != "":
		fmt.Fprintf(&b, "auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n    rootcertbundle: %s\n",
			q(c.realm), q(tokenService), q(tokenIssuer), q(c.rootCerts))
	}
	return b.Bytes()
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last n lines of the file at path, or why it could not.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

var errNoSkopeo = errors.New("skopeo is missing; install Debian's skopeo")
