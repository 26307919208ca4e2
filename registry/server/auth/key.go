package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// signer is the key tokens are signed with.
type signer struct {
	key    crypto.Signer
	method jwt.SigningMethod
	kid    string
}

// loadKey reads the PEM private key at path (ECDSA P-256, P-384 or
// P-521, or RSA of 2048 bits or more; PKCS#8, SEC 1 or PKCS#1),
// generating an ECDSA P-256 key there when the file does not exist. An
// empty path means a key generated for this process only.
func loadKey(path string) (*signer, error) {
	if path == "" {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate token key: %w", err)
		}
		return newSigner(k, "a generated key")
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		data, err = generateKey(path)
	}
	if err != nil {
		return nil, fmt.Errorf("token key: %w", err)
	}
	key, err := parseKey(data)
	if err != nil {
		return nil, fmt.Errorf("token key %s: %w", path, err)
	}
	return newSigner(key, path)
}

func parseKey(data []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("no PEM block")
	}
	var key any
	var err error
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("a PEM %q block, not a private key", block.Type)
	}
	if err != nil {
		return nil, err
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported key type %T", key)
	}
	return s, nil
}

func newSigner(key crypto.Signer, name string) (*signer, error) {
	s := &signer{key: key}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			s.method = jwt.SigningMethodES256
		case elliptic.P384():
			s.method = jwt.SigningMethodES384
		case elliptic.P521():
			s.method = jwt.SigningMethodES512
		default:
			return nil, fmt.Errorf("token key %s: unsupported elliptic curve %s", name, k.Curve.Params().Name)
		}
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("token key %s: RSA key of %d bits; at least 2048 are needed", name, k.N.BitLen())
		}
		s.method = jwt.SigningMethodRS256
	default:
		return nil, fmt.Errorf("token key %s: unsupported key type %T (ECDSA or RSA)", name, key)
	}
	kid, err := keyID(key.Public())
	if err != nil {
		return nil, fmt.Errorf("token key %s: %w", name, err)
	}
	s.kid = kid
	return s, nil
}

// keyID is the key ID of pub in libtrust's form, which docker's
// distribution uses in the "kid" header of tokens: the SHA-256 of the
// DER public key, truncated to 240 bits, in base32, in 12 groups of 4
// separated by colons.
func keyID(pub crypto.PublicKey) (string, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	enc := base32.StdEncoding.EncodeToString(sum[:30])
	groups := make([]string, 0, 12)
	for i := 0; i < len(enc); i += 4 {
		groups = append(groups, enc[i:i+4])
	}
	return strings.Join(groups, ":"), nil
}

// generateKey writes a new ECDSA P-256 key to path (PKCS#8 PEM, mode
// 0600), atomically and without replacing a file another process
// created meanwhile, and returns the file's content.
func generateKey(path string) ([]byte, error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate %s: %w", path, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("generate %s: %w", path, err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("generate %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("generate %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("generate %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, fmt.Errorf("generate %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("generate %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("generate %s: %w", path, err)
	}
	// A link, unlike a rename, fails when the file exists: a server
	// started at the same time keeps the key it wrote first.
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return os.ReadFile(path)
		}
		return nil, fmt.Errorf("generate %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return data, nil
}
