package image

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io/fs"
	"os"
)

// KeyID identifies a public key in image headers: the first 8 bytes of the
// SHA-256 of its 32 raw bytes. It lets a reader pick the key to verify with;
// it proves nothing by itself.
func KeyID(pub ed25519.PublicKey) [8]byte {
	sum := sha256.Sum256(pub)
	return [8]byte(sum[:8])
}

// Key files are PEM, PKCS#8 "PRIVATE KEY" and PKIX "PUBLIC KEY", the forms
// OpenSSL reads and writes (openssl genpkey -algorithm ed25519).
const (
	pemPrivate = "PRIVATE KEY"
	pemPublic  = "PUBLIC KEY"
)

// GenerateKey creates a new Ed25519 key pair and writes name+".key"
// (private, mode 0600) and name+".pub". It refuses to overwrite either file.
func GenerateKey(name string) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("image: generating key: %w", err)
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return fmt.Errorf("image: encoding private key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Errorf("image: encoding public key: %w", err)
	}
	keyPath, pubPath := name+".key", name+".pub"
	// Check both first so a refused pair leaves nothing behind.
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("image: %s: %w", p, fs.ErrExist)
		}
	}
	if err := writeNew(keyPath, pem.EncodeToMemory(&pem.Block{Type: pemPrivate, Bytes: privDER}), 0o600); err != nil {
		return err
	}
	if err := writeNew(pubPath, pem.EncodeToMemory(&pem.Block{Type: pemPublic, Bytes: pubDER}), 0o644); err != nil {
		os.Remove(keyPath)
		return err
	}
	return nil
}

// writeNew creates path exclusively, so a file that appeared since the
// check in GenerateKey is still not overwritten.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("image: writing %s: %w", path, err)
	}
	return nil
}

// LoadPrivateKey reads a PEM PKCS#8 Ed25519 private key.
func LoadPrivateKey(path string) (ed25519.PrivateKey, error) {
	der, err := readPEM(path, pemPrivate)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadKey, path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s: %T, want Ed25519", ErrBadKey, path, k)
	}
	return priv, nil
}

// LoadPublicKey reads a PEM PKIX Ed25519 public key.
func LoadPublicKey(path string) (ed25519.PublicKey, error) {
	der, err := readPEM(path, pemPublic)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadKey, path, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s: %T, want Ed25519", ErrBadKey, path, k)
	}
	return pub, nil
}

func readPEM(path, typ string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	b, _ := pem.Decode(data)
	switch {
	case b == nil:
		return nil, fmt.Errorf("%w: %s: no PEM block", ErrBadKey, path)
	case b.Type != typ:
		return nil, fmt.Errorf("%w: %s: PEM type %q, want %q", ErrBadKey, path, b.Type, typ)
	}
	return b.Bytes, nil
}
