package cli

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/progress"
	"github.com/berth-project/berth/registry"
	"github.com/berth-project/berth/registry/credentials"
	"github.com/berth-project/berth/registry/hosts"
)

// remoteOptions are the flags of the commands that talk to registries.
type remoteOptions struct {
	authfile  string
	certsDir  string
	tlsVerify bool
	quiet     bool
}

func (ro *remoteOptions) addFlags(cmd *cobra.Command, quiet bool) {
	f := cmd.Flags()
	f.StringVar(&ro.authfile, "authfile", "", "registry logins file (default $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json or ~/.docker/config.json)")
	f.StringVar(&ro.certsDir, "cert-dir", "", "certs.d-style directory (HOST[:PORT]/ca.crt, client.cert, client.key) searched before /etc/{berth,containers,docker}/certs.d")
	f.BoolVar(&ro.tlsVerify, "tls-verify", true, "require HTTPS and verify certificates (false allows plain HTTP and unverified TLS for every registry)")
	if quiet {
		f.BoolVarP(&ro.quiet, "quiet", "q", false, "suppress progress output")
	}
}

func (ro *remoteOptions) credentials() *credentials.Store {
	path := ro.authfile
	if path == "" {
		path = credentials.DefaultPath()
	}
	return credentials.Open(path)
}

// hostsConfig reads the registries configuration, with --cert-dir first
// among the certificate directories.
func (ro *remoteOptions) hostsConfig() (*hosts.Config, error) {
	cfg, err := hosts.Load(hosts.DefaultConfigPath())
	if err != nil {
		return nil, err
	}
	if ro.certsDir != "" {
		if _, err := os.Stat(ro.certsDir); err != nil {
			return nil, fmt.Errorf("--cert-dir: %w", err)
		}
		cfg.CertsDirs = append([]string{ro.certsDir}, cfg.CertsDirs...)
	}
	return cfg, nil
}

// endpoints returns where a registry is reached: the registries
// configuration's answer, made insecure by --tls-verify=false.
func (ro *remoteOptions) endpoints(cfg *hosts.Config) func(domain, path string, push bool) ([]registry.Endpoint, error) {
	return func(domain, path string, push bool) ([]registry.Endpoint, error) {
		eps, err := cfg.Endpoints(domain, path, push)
		if err != nil || ro.tlsVerify {
			return eps, err
		}
		for i := range eps {
			eps[i].Insecure = true
			if eps[i].TLS != nil {
				eps[i].TLS = eps[i].TLS.Clone()
			} else {
				eps[i].TLS = &tls.Config{}
			}
			eps[i].TLS.InsecureSkipVerify = true
		}
		return eps, nil
	}
}

// client returns a registry client configured from the registries
// configuration, the logins and the flags; retries are reported to sink.
func (ro *remoteOptions) client(cfg *hosts.Config, sink progress.Sink) *registry.Client {
	store := ro.credentials()
	return registry.NewClient(registry.Options{
		Endpoints: ro.endpoints(cfg),
		Credentials: func(ctx context.Context, host string) (registry.Credential, error) {
			return store.Get(ctx, host)
		},
		UserAgent: "berth",
		OnRetry: func(what string, attempt int, wait time.Duration, err error) {
			sink.Event(progress.Event{Status: fmt.Sprintf("%s failed (%v); %s", what, err, progress.RetryingIn(wait))})
		},
	})
}

// renderer returns where a transfer's progress goes: nowhere with -q,
// bars when w is a terminal, plain lines otherwise.
func (ro *remoteOptions) renderer(w io.Writer) progress.Renderer {
	if ro.quiet {
		return nopRenderer{}
	}
	if f, ok := w.(*os.File); ok {
		return progress.Auto(f)
	}
	return progress.Lines(w)
}

type nopRenderer struct{}

func (nopRenderer) Event(progress.Event) {}
func (nopRenderer) Close() error         { return nil }
