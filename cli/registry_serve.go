package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-project/berth/engine"
	"github.com/berth-project/berth/registry/server"
	"github.com/berth-project/berth/registry/server/auth"
)

// addRegistryCommands adds the `registry` command group: berth's own
// registry server.
func addRegistryCommands(root *cobra.Command, o *options) {
	cmd := &cobra.Command{Use: "registry", Short: "Run berth's registry server", Args: cobra.NoArgs}
	cmd.AddCommand(registryServeCmd(o), registryGCCmd())
	root.AddCommand(cmd)
}

// serveFlags are the flags of `registry serve`, which override the config
// file's settings when given.
type serveFlags struct {
	config     string
	addr       string
	root       string
	tlsCert    string
	tlsKey     string
	readOnly   bool
	sync       bool
	deleteTags bool
	logFormat  string
	logLevel   string
	mirror     string
}

// defaultRegistryAddr is where the server listens without --addr or addr:
// loopback, since it asks for no credentials by default.
const defaultRegistryAddr = "127.0.0.1:5000"

func registryServeCmd(o *options) *cobra.Command {
	sf := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve [OPTIONS]",
		Short: "Serve an OCI distribution (v1.1) registry",
		Long: `Serve an OCI distribution specification v1.1 registry (docker registry v2
compatible) from a directory in berth's content-store format.

Settings come from the TOML file given with --config, and flags override
them. The server stops on SIGINT or SIGTERM after letting requests in
flight (uploads among them) finish; unfinished uploads stay resumable.

With --mirror URL (or a [mirror] section) the registry is a pull-through
cache of that upstream: manifests and blobs it does not hold are fetched
from the upstream, verified, stored and served; tags are trusted for the
section's ttl (5m) and then revalidated. Pushes and deletes are refused;
tags/list and the catalog show what is cached.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fc, err := sf.resolve(cmd, o)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runRegistry(ctx, fc, sf, cmd)
		},
	}
	f := cmd.Flags()
	f.StringVar(&sf.config, "config", "", "TOML config file (flags override its settings)")
	f.StringVar(&sf.addr, "addr", defaultRegistryAddr, "address to listen on")
	f.StringVar(&sf.root, "root", "", "storage directory (default "+filepath.Join(engine.DefaultRoot, "registry")+")")
	f.StringVar(&sf.tlsCert, "tls-cert", "", "TLS certificate file (PEM); with --tls-key, serve HTTPS")
	f.StringVar(&sf.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	f.BoolVar(&sf.readOnly, "read-only", false, "refuse pushes and deletes")
	f.BoolVar(&sf.sync, "sync", false, "fsync every commit before answering (durable across a power loss; pushes run at the disk's speed)")
	f.BoolVar(&sf.deleteTags, "delete-tags", false, "allow deleting manifests by tag")
	f.StringVar(&sf.logFormat, "log-format", "text", "access log format: text or json (on stderr)")
	f.StringVar(&sf.logLevel, "log-level", "info", "log level: debug, info (access logs), warn or error")
	f.StringVar(&sf.mirror, "mirror", "", "serve as a read-only pull-through cache of the registry at this URL (https://registry-1.docker.io)")
	return cmd
}

// resolve reads the config file (if any) and applies the flags given on
// the command line over it.
func (sf *serveFlags) resolve(cmd *cobra.Command, o *options) (server.FileConfig, error) {
	var fc server.FileConfig
	if sf.config != "" {
		var err error
		if fc, err = server.LoadConfigFile(sf.config); err != nil {
			return fc, err
		}
	}
	f := cmd.Flags()
	if f.Changed("addr") || fc.Addr == "" {
		fc.Addr = sf.addr
	}
	if f.Changed("root") {
		fc.Root = sf.root
	}
	if fc.Root == "" {
		fc.Root = filepath.Join(o.root, "registry")
	}
	if f.Changed("tls-cert") {
		fc.TLS.Cert = sf.tlsCert
	}
	if f.Changed("tls-key") {
		fc.TLS.Key = sf.tlsKey
	}
	if (fc.TLS.Cert == "") != (fc.TLS.Key == "") {
		return fc, errors.New("--tls-cert and --tls-key go together")
	}
	if f.Changed("read-only") {
		fc.ReadOnly = sf.readOnly
	}
	if f.Changed("sync") {
		fc.Sync = sf.sync
	}
	if f.Changed("mirror") {
		fc.Mirror.Upstream = sf.mirror
	}
	if f.Changed("delete-tags") {
		fc.DeleteTags = sf.deleteTags
	}
	switch sf.logFormat {
	case "text", "json":
	default:
		return fc, fmt.Errorf("--log-format %q: want text or json", sf.logFormat)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(sf.logLevel)); err != nil {
		return fc, fmt.Errorf("--log-level %q: want debug, info, warn or error", sf.logLevel)
	}
	return fc, nil
}

// buildAuth returns the Authorizer and token endpoint of the auth section.
//
// buildAuth makes the Authorizer (and, in token mode, the token
// endpoint) of the config's auth section; with no section the registry
// asks for no credentials.
func buildAuth(cfg server.AuthConfig, log *slog.Logger) (server.Authorizer, http.Handler, error) {
	if cfg.Htpasswd == "" && cfg.Token == nil && len(cfg.Access) == 0 {
		return nil, nil, nil
	}
	a, err := auth.New(cfg, auth.WithLogger(log))
	if err != nil {
		return nil, nil, fmt.Errorf("registry config: auth: %w", err)
	}
	if th := a.TokenHandler(); th != nil {
		return a, th, nil
	}
	return a, nil, nil
}

// runRegistry serves the registry until ctx is cancelled.
func runRegistry(ctx context.Context, fc server.FileConfig, sf *serveFlags, cmd *cobra.Command) error {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(sf.logLevel)) // checked by resolve
	var h slog.Handler
	if sf.logFormat == "json" {
		h = slog.NewJSONHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: lvl})
	} else {
		h = slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: lvl})
	}
	log := slog.New(h)
	cfg := fc.ServerConfig()
	cfg.Logger = log
	var err error
	if cfg.Authorizer, cfg.TokenHandler, err = buildAuth(fc.Auth, log); err != nil {
		return err
	}
	s, err := server.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", fc.Addr)
	if err != nil {
		s.Close()
		return fmt.Errorf("registry: listen on %s: %w", fc.Addr, err)
	}
	scheme := "http"
	if fc.TLS.Cert != "" {
		scheme = "https"
	}
	log.Info("registry serving", "url", scheme+"://"+ln.Addr().String(), "root", cfg.Root,
		"read_only", cfg.ReadOnly, "sync", cfg.Sync, "delete_tags", cfg.DeleteTags, "auth", cfg.Authorizer != nil, "mirror", fc.Mirror.Upstream)
	if scheme == "http" && cfg.Authorizer == nil {
		if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() {
			log.Warn("serving plain HTTP without authentication on a non-loopback address", "addr", ln.Addr().String())
		}
	}
	err = server.Serve(ctx, s, ln, server.ServeOptions{
		TLSCert: fc.TLS.Cert, TLSKey: fc.TLS.Key, ShutdownTimeout: time.Duration(fc.ShutdownTimeout),
	})
	log.Info("registry stopped")
	return err
}
