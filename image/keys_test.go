package image

import (
	"crypto/ed25519"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestGenerateKey(t *testing.T) {
	name := filepath.Join(t.TempDir(), "signer")
	if err := GenerateKey(name); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(name + ".key")
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("private key mode: got %v, want 0600", got)
	}
	priv, err := LoadPrivateKey(name + ".key")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := LoadPublicKey(name + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(priv.Public()) {
		t.Error("public key file does not match the private key")
	}
	if err := GenerateKey(name); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second GenerateKey: got %v, want %v", err, fs.ErrExist)
	}
	if got, _ := LoadPrivateKey(name + ".key"); !priv.Equal(got) {
		t.Error("refused GenerateKey changed the existing key")
	}
}

func TestGenerateKeyLeavesNoHalfPair(t *testing.T) {
	name := filepath.Join(t.TempDir(), "signer")
	if err := os.WriteFile(name+".pub", []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := GenerateKey(name); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("got %v, want %v", err, fs.ErrExist)
	}
	if _, err := os.Stat(name + ".key"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("private key left behind: stat got %v", err)
	}
}

func TestLoadKeyErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	garbage := write("garbage", "not pem")
	pubAsPriv := "testdata/test-only.pub"
	privAsPub := "testdata/test-only.key"
	badDER := write("bad", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
	if _, err := LoadPrivateKey(garbage); !errors.Is(err, ErrBadKey) {
		t.Errorf("garbage private: got %v, want %v", err, ErrBadKey)
	}
	if _, err := LoadPrivateKey(pubAsPriv); !errors.Is(err, ErrBadKey) {
		t.Errorf("public as private: got %v, want %v", err, ErrBadKey)
	}
	if _, err := LoadPrivateKey(badDER); !errors.Is(err, ErrBadKey) {
		t.Errorf("bad DER: got %v, want %v", err, ErrBadKey)
	}
	if _, err := LoadPublicKey(privAsPub); !errors.Is(err, ErrBadKey) {
		t.Errorf("private as public: got %v, want %v", err, ErrBadKey)
	}
	if _, err := LoadPublicKey(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: got %v, want %v", err, fs.ErrNotExist)
	}
}

// TestOpenSSLReadsOurKeys checks the other direction of compatibility: the
// committed test keys came from OpenSSL, and OpenSSL must read ours.
func TestOpenSSLReadsOurKeys(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("openssl not installed")
		}
		t.Skip("openssl not installed")
	}
	name := filepath.Join(t.TempDir(), "k")
	if err := GenerateKey(name); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(openssl, "pkey", "-in", name+".key", "-pubout").Output()
	if err != nil {
		t.Fatalf("openssl pkey: %v", err)
	}
	want, err := os.ReadFile(name + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(want) {
		t.Errorf("openssl derived public key\n%s\nwant\n%s", out, want)
	}
	pub, err := LoadPublicKey(name + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	if len(pub) != ed25519.PublicKeySize {
		t.Errorf("got %d-byte public key", len(pub))
	}
}
