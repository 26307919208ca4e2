package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// DefaultMaxManifestSize is the largest manifest accepted by default (the
// spec's suggested 4 MiB).
const DefaultMaxManifestSize = 4 << 20

// DefaultBodyIdleTimeout is how long a request body may send nothing
// before the server gives up on it (a slow or stalled client).
const DefaultBodyIdleTimeout = time.Minute

// DefaultUploadIdleRelease is the default Config.UploadIdleRelease.
const DefaultUploadIdleRelease = 5 * time.Minute

// Config configures a Server.
type Config struct {
	// Root is the storage directory.
	Root string
	// ReadOnly refuses every write (push, delete) with 405 UNSUPPORTED.
	ReadOnly bool
	// Sync makes every commit (blob, manifest, tag) durable across a
	// power loss (fsync) before the server answers. Without it a commit
	// is still verified and atomic and survives the server's death,
	// but a crash of the machine may lose the last ones: distribution's
	// behaviour, and zot's default. With it a push runs at the disk's
	// write speed.
	Sync bool
	// DeleteTags enables DELETE /v2/<name>/manifests/<tag>; deleting
	// manifests by digest is always enabled (unless ReadOnly).
	DeleteTags bool
	// MaxManifestSize caps manifests; DefaultMaxManifestSize when 0.
	MaxManifestSize int64
	// AllowMissingReferences accepts manifests whose blobs or child
	// manifests are not in the repository (artifacts that point to
	// content stored elsewhere).
	AllowMissingReferences bool
	// BodyIdleTimeout bounds the time a request body may stall;
	// DefaultBodyIdleTimeout when 0.
	BodyIdleTimeout time.Duration
	// UploadIdleRelease is how long an upload session may see no request
	// before the server releases its open file and lock (the bytes stay;
	// the next request reopens them); DefaultUploadIdleRelease when 0.
	UploadIdleRelease time.Duration
	// Authorizer, when set, is asked before every /v2/ endpoint.
	Authorizer Authorizer
	// TokenHandler, when set, is served at /token (the bearer-token
	// endpoint of docker's token specification).
	TokenHandler http.Handler
	// Mirror, when set, makes the server a read-only pull-through cache
	// of one upstream registry (see MirrorConfig).
	Mirror *MirrorConfig
	// Logger receives access logs and errors; slog.Default() when nil.
	Logger *slog.Logger
}

// Duration is a time.Duration read from a TOML string ("30s", "5m").
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// TLSConfig names the server's certificate and key files (PEM).
type TLSConfig struct {
	Cert string `toml:"cert"`
	Key  string `toml:"key"`
}

// FileConfig is the server's TOML config file.
//
//	addr = "127.0.0.1:5000"
//	root = "/var/lib/berth/registry"
//	read_only = false
//	sync = false             # fsync every commit before answering
//	delete_tags = true
//	max_manifest_size = 4194304
//	allow_missing_references = false
//	shutdown_timeout = "30s"
//	[tls]
//	cert = "server.crt"
//	key = "server.key"
//	[auth]
//	htpasswd = "/etc/berth/registry.htpasswd"
//	[mirror]                 # a pull-through cache of one upstream
//	upstream = "https://registry-1.docker.io"
//	ttl = "5m"
type FileConfig struct {
	Addr                   string           `toml:"addr"`
	Root                   string           `toml:"root"`
	TLS                    TLSConfig        `toml:"tls"`
	ReadOnly               bool             `toml:"read_only"`
	Sync                   bool             `toml:"sync"`
	DeleteTags             bool             `toml:"delete_tags"`
	MaxManifestSize        int64            `toml:"max_manifest_size"`
	AllowMissingReferences bool             `toml:"allow_missing_references"`
	BodyIdleTimeout        Duration         `toml:"body_idle_timeout"`
	ShutdownTimeout        Duration         `toml:"shutdown_timeout"`
	Auth                   AuthConfig       `toml:"auth"`
	Mirror                 MirrorFileConfig `toml:"mirror"`
}

// LoadConfigFile reads a TOML config file. Unknown keys are an error that
// names them, so a misspelt setting is not silently ignored.
func LoadConfigFile(path string) (FileConfig, error) {
	var fc FileConfig
	md, err := toml.DecodeFile(path, &fc)
	if err != nil {
		return fc, fmt.Errorf("registry config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return fc, fmt.Errorf("registry config %s: unknown keys %s", path, strings.Join(keys, ", "))
	}
	if (fc.TLS.Cert == "") != (fc.TLS.Key == "") {
		return fc, fmt.Errorf("registry config %s: tls needs both cert and key", path)
	}
	if err := fc.Mirror.validate(); err != nil {
		return fc, fmt.Errorf("registry config %s: %w", path, err)
	}
	if fc.MaxManifestSize < 0 {
		return fc, fmt.Errorf("registry config %s: negative max_manifest_size", path)
	}
	return fc, nil
}

// ServerConfig returns the Config of the file's settings (without an
// Authorizer: the caller builds it from fc.Auth).
func (fc FileConfig) ServerConfig() Config {
	return Config{
		Root:                   fc.Root,
		ReadOnly:               fc.ReadOnly,
		Sync:                   fc.Sync,
		DeleteTags:             fc.DeleteTags,
		MaxManifestSize:        fc.MaxManifestSize,
		AllowMissingReferences: fc.AllowMissingReferences,
		BodyIdleTimeout:        time.Duration(fc.BodyIdleTimeout),
		Mirror:                 fc.Mirror.serverConfig(),
	}
}
