package credentials

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Environment variables that choose the file, in order of precedence.
const (
	AuthFileEnv     = "REGISTRY_AUTH_FILE"
	DockerConfigEnv = "DOCKER_CONFIG"
)

// Docker Hub's names: the one users write, and the key docker stores its
// login under.
const (
	dockerHubDomain = "docker.io"
	dockerHubKey    = "https://index.docker.io/v1/"
)

// dockerHubAliases are the other auths keys docker and other tools have
// used for Docker Hub, tried in this order after "docker.io".
var dockerHubAliases = []string{dockerHubKey, "index.docker.io", "registry-1.docker.io"}

// ErrNotLoggedIn is wrapped by Erase's error when there is no login to
// erase.
var ErrNotLoggedIn = errors.New("not logged in")

// Credential is a login for one registry. The zero Credential means
// anonymous access.
type Credential struct {
	// Username and Password are used for basic authentication, or to
	// fetch a bearer token.
	Username string
	Password string
	// IdentityToken is an OAuth2 refresh token (docker's
	// "identitytoken"), used instead of the password when set.
	IdentityToken string
}

// IsZero reports whether c is anonymous.
func (c Credential) IsZero() bool { return c == Credential{} }

// Store is a docker config.json and the credential helpers it names.
// It holds no state besides the path: every call reads the file afresh.
type Store struct {
	path string
}

// Open returns the store kept in the file at path. The file need not
// exist.
func Open(path string) *Store { return &Store{path: path} }

// Path returns the file the store reads and writes.
func (s *Store) Path() string { return s.path }

// DefaultPath returns $REGISTRY_AUTH_FILE if set, else
// $DOCKER_CONFIG/config.json if DOCKER_CONFIG is set, else
// $HOME/.docker/config.json.
func DefaultPath() string {
	if p := os.Getenv(AuthFileEnv); p != "" {
		return p
	}
	if d := os.Getenv(DockerConfigEnv); d != "" {
		return filepath.Join(d, "config.json")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		home = "/"
	}
	return filepath.Join(home, ".docker", "config.json")
}

// authEntry is one value of "auths".
type authEntry struct {
	Auth          string `json:"auth,omitempty"`
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
}

// config is the file, with every top-level field kept raw so that writing
// it back changes only "auths".
type config struct {
	raw         map[string]json.RawMessage
	auths       map[string]json.RawMessage
	credsStore  string
	credHelpers map[string]string
}

// load reads the file; a missing or empty file is an empty config.
func (s *Store) load() (*config, error) {
	c := &config{raw: map[string]json.RawMessage{}, auths: map[string]json.RawMessage{}}
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return c, nil
	}
	if err := json.Unmarshal(data, &c.raw); err != nil {
		return nil, fmt.Errorf("parse %s: %w", s.path, err)
	}
	if c.raw == nil { // the file says null
		c.raw = map[string]json.RawMessage{}
	}
	for _, f := range []struct {
		key string
		dst any
	}{{"auths", &c.auths}, {"credsStore", &c.credsStore}, {"credHelpers", &c.credHelpers}} {
		if v, ok := c.raw[f.key]; ok {
			if err := json.Unmarshal(v, f.dst); err != nil {
				return nil, fmt.Errorf("parse %s: %q: %w", s.path, f.key, err)
			}
		}
	}
	if c.auths == nil {
		c.auths = map[string]json.RawMessage{}
	}
	return c, nil
}

// NormalizeHost returns the registry host named by s: any scheme, trailing
// "/", "/v1/" or "/v2/" is dropped, and Docker Hub's names become
// "docker.io".
func NormalizeHost(s string) string {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "https://"), "http://")
	s = strings.TrimRight(s, "/")
	s = strings.TrimSuffix(strings.TrimSuffix(s, "/v1"), "/v2")
	s = strings.TrimRight(s, "/")
	switch s {
	case "index.docker.io", "registry-1.docker.io":
		return dockerHubDomain
	}
	return s
}

// serverURL is what a helper is told and what the file's key is for host.
func serverURL(host string) string {
	if host == dockerHubDomain {
		return dockerHubKey
	}
	return host
}

// matchingKeys returns the keys of m that name host, best first: host
// itself, Docker Hub's aliases, then the other spellings in sorted order.
func matchingKeys[V any](m map[string]V, host string) []string {
	var keys []string
	seen := map[string]bool{}
	add := func(k string) {
		if _, ok := m[k]; ok && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	add(host)
	if host == dockerHubDomain {
		for _, a := range dockerHubAliases {
			add(a)
		}
	}
	rest := make([]string, 0, len(m))
	for k := range m {
		if !seen[k] && NormalizeHost(k) == host {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		add(k)
	}
	return keys
}

// helper returns the credential helper responsible for host, or "".
func (c *config) helper(host string) string {
	if keys := matchingKeys(c.credHelpers, host); len(keys) > 0 {
		return c.credHelpers[keys[0]]
	}
	return c.credsStore
}

// Get returns the login for the registry host as the user names it
// ("docker.io", "localhost:5000"). Without one it returns the zero
// Credential and a nil error.
func (s *Store) Get(ctx context.Context, host string) (Credential, error) {
	host = NormalizeHost(host)
	c, err := s.load()
	if err != nil {
		return Credential{}, err
	}
	if name := c.helper(host); name != "" {
		return helperGet(ctx, name, host)
	}
	keys := matchingKeys(c.auths, host)
	if len(keys) == 0 {
		return Credential{}, nil
	}
	key := keys[0]
	var e authEntry
	if err := json.Unmarshal(c.auths[key], &e); err != nil {
		return Credential{}, fmt.Errorf("parse %s: auths %q: %w", s.path, key, err)
	}
	cred := Credential{Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken}
	if e.Auth != "" {
		user, pass, err := decodeAuth(e.Auth)
		if err != nil {
			return Credential{}, fmt.Errorf("parse %s: auths %q: %w", s.path, key, err)
		}
		cred.Username, cred.Password = user, pass
	}
	return cred, nil
}

// decodeAuth splits docker's base64 "user:password".
func decodeAuth(s string) (string, string, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		var err2 error
		if b, err2 = base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "=")); err2 != nil {
			return "", "", fmt.Errorf("auth is not base64: %w", err)
		}
	}
	user, pass, ok := strings.Cut(string(b), ":")
	if !ok {
		return "", "", errors.New("auth is not base64 of user:password")
	}
	return user, pass, nil
}

// Put stores cred as the login for host: through the credential helper
// responsible for it if there is one, else in the file's auths under the
// host (docker's "https://index.docker.io/v1/" for Docker Hub), replacing
// any other spelling of the same host.
func (s *Store) Put(ctx context.Context, host string, cred Credential) error {
	host = NormalizeHost(host)
	if host == "" {
		return errors.New("store credentials: empty registry host")
	}
	if cred.Username == "" && cred.Password == "" && cred.IdentityToken == "" {
		return fmt.Errorf("store credentials for %s: empty credential", host)
	}
	c, err := s.load()
	if err != nil {
		return err
	}
	if name := c.helper(host); name != "" {
		return helperStore(ctx, name, host, cred)
	}

	for _, k := range matchingKeys(c.auths, host) {
		delete(c.auths, k)
	}
	e := authEntry{IdentityToken: cred.IdentityToken}
	if cred.Username != "" || cred.Password != "" {
		e.Auth = base64.StdEncoding.EncodeToString([]byte(cred.Username + ":" + cred.Password))
	}
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	c.auths[serverURL(host)] = v
	return s.save(c)
}

// Erase removes the login for host, through its credential helper or from
// the file (every spelling of the host). Without a login it returns an
// error wrapping ErrNotLoggedIn.
func (s *Store) Erase(ctx context.Context, host string) error {
	host = NormalizeHost(host)
	c, err := s.load()
	if err != nil {
		return err
	}
	if name := c.helper(host); name != "" {
		return helperErase(ctx, name, host)
	}
	keys := matchingKeys(c.auths, host)
	if len(keys) == 0 {
		return fmt.Errorf("erase credentials for %s: %w", host, ErrNotLoggedIn)
	}
	for _, k := range keys {
		delete(c.auths, k)
	}
	return s.save(c)
}

// save writes c atomically: a temporary file in the same directory,
// fsynced and renamed over the file (or over a symlink's target), mode
// 0600 and the previous file's owner. The directory is created 0700.
func (s *Store) save(c *config) error {
	auths, err := json.Marshal(c.auths)
	if err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	c.raw["auths"] = auths
	data, err := json.MarshalIndent(c.raw, "", "\t")
	if err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	data = append(data, '\n')

	target := s.path
	if t, err := filepath.EvalSymlinks(s.path); err == nil {
		target = t
	}
	dir := filepath.Dir(target)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(target)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	if fi, err := os.Stat(target); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
			// Keep the user's ownership when root writes their file.
			if err := tmp.Chown(int(st.Uid), int(st.Gid)); err != nil {
				return fmt.Errorf("write %s: keep owner: %w", s.path, err)
			}
		}
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	done = true
	if d, err := os.Open(dir); err == nil {
		err = d.Sync()
		d.Close()
		if err != nil {
			return fmt.Errorf("write %s: sync directory: %w", s.path, err)
		}
	}
	return nil
}
