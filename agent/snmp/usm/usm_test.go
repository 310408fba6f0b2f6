package usm

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	"github.com/gosnmp/gosnmp"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKeyVectors checks password-to-key and localisation against RFC 3414
// appendix A.3.
func TestKeyVectors(t *testing.T) {
	engine := unhex(t, "000000000000000000000002")
	for _, tt := range []struct {
		auth    AuthProtocol
		ku, kul string
	}{
		{MD5, "9faf3283884e92834ebc9847d8edd963", "526f5eed9fcce26f8964c2930787d82b"},
		{SHA, "9fb5cc0381497b3793528939ff788d5d79145211", "6695febc9288e36282235fc7151f128497b38f3f"},
	} {
		t.Run(tt.auth.String(), func(t *testing.T) {
			ku, err := PasswordToKey(tt.auth, "maplesyrup")
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(ku); got != tt.ku {
				t.Errorf("Ku: got %s, want %s", got, tt.ku)
			}
			kul, err := Localize(tt.auth, ku, engine)
			if err != nil {
				t.Fatal(err)
			}
			if got := hex.EncodeToString(kul); got != tt.kul {
				t.Errorf("Kul: got %s, want %s", got, tt.kul)
			}
		})
	}
}

var (
	allAuth = []AuthProtocol{MD5, SHA, SHA224, SHA256, SHA384, SHA512}
	allPriv = []PrivProtocol{DES, AES, AES192, AES256}
)

var gosnmpAuth = map[AuthProtocol]gosnmp.SnmpV3AuthProtocol{NoAuth: gosnmp.NoAuth, MD5: gosnmp.MD5, SHA: gosnmp.SHA,
	SHA224: gosnmp.SHA224, SHA256: gosnmp.SHA256, SHA384: gosnmp.SHA384, SHA512: gosnmp.SHA512}
var gosnmpPriv = map[PrivProtocol]gosnmp.SnmpV3PrivProtocol{NoPriv: gosnmp.NoPriv, DES: gosnmp.DES, AES: gosnmp.AES,
	AES192: gosnmp.AES192, AES256: gosnmp.AES256}

// TestKeysMatchGosnmp derives every protocol pair's localized keys with
// gosnmp's independent implementation and compares.
func TestKeysMatchGosnmp(t *testing.T) {
	engine := unhex(t, "80007ed9050102030405060708")
	for _, a := range allAuth {
		for _, p := range allPriv {
			t.Run(a.String()+"/"+p.String(), func(t *testing.T) {
				c, err := CredentialsFromPasswords(a, "auth-pass-phrase", p, "priv-pass-phrase")
				if err != nil {
					t.Fatal(err)
				}
				k, err := c.Localize(engine)
				if err != nil {
					t.Fatal(err)
				}
				g := &gosnmp.UsmSecurityParameters{
					AuthoritativeEngineID: string(engine), AuthenticationProtocol: gosnmpAuth[a], PrivacyProtocol: gosnmpPriv[p],
					AuthenticationPassphrase: "auth-pass-phrase", PrivacyPassphrase: "priv-pass-phrase",
				}
				if err := g.InitSecurityKeys(); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(k.AuthKey, g.SecretKey) {
					t.Errorf("auth key: got %x, gosnmp %x", k.AuthKey, g.SecretKey)
				}
				want := g.PrivacyKey
				if p == DES {
					want = want[:16] // gosnmp keeps the whole Kul
				}
				if !bytes.Equal(k.PrivKey, want) {
					t.Errorf("priv key: got %x, gosnmp %x", k.PrivKey, want)
				}
			})
		}
	}
}

func TestParseProtocols(t *testing.T) {
	for _, tt := range []struct {
		in   string
		auth AuthProtocol
	}{{"md5", MD5}, {"SHA", SHA}, {"sha-1", SHA}, {"SHA-224", SHA224}, {"sha256", SHA256}, {"SHA-384", SHA384}, {"SHA-512", SHA512}, {"none", NoAuth}} {
		if got, err := ParseAuthProtocol(tt.in); err != nil || got != tt.auth {
			t.Errorf("ParseAuthProtocol(%q): got %v, %v, want %v", tt.in, got, err, tt.auth)
		}
	}
	for _, tt := range []struct {
		in   string
		priv PrivProtocol
	}{{"des", DES}, {"AES", AES}, {"AES-128", AES}, {"aes192", AES192}, {"AES-256", AES256}, {"none", NoPriv}} {
		if got, err := ParsePrivProtocol(tt.in); err != nil || got != tt.priv {
			t.Errorf("ParsePrivProtocol(%q): got %v, %v, want %v", tt.in, got, err, tt.priv)
		}
	}
	for _, bad := range []string{"", "SHA-1024", "3DES"} {
		if _, err := ParseAuthProtocol(bad); !errors.Is(err, ErrUnknownProtocol) {
			t.Errorf("ParseAuthProtocol(%q): got %v, want ErrUnknownProtocol", bad, err)
		}
		if _, err := ParsePrivProtocol(bad); !errors.Is(err, ErrUnknownProtocol) {
			t.Errorf("ParsePrivProtocol(%q): got %v, want ErrUnknownProtocol", bad, err)
		}
	}
	if _, err := PasswordToKey(SHA, "short"); !errors.Is(err, ErrBadKey) {
		t.Errorf("short pass phrase: got %v, want ErrBadKey", err)
	}
}

// getRequestPDU is a GetRequest for sysUpTime.0, request-id 1234.
func getRequestPDU(t testing.TB) []byte {
	t.Helper()
	p := &gosnmp.SnmpPacket{Version: gosnmp.Version2c, PDUType: gosnmp.GetRequest, RequestID: 1234,
		Variables: []gosnmp.SnmpPDU{{Name: ".1.3.6.1.2.1.1.3.0", Type: gosnmp.Null}}}
	msg, err := p.MarshalMsg()
	if err != nil {
		t.Fatal(err)
	}
	// 30 len 02 01 01 04 00 <pdu>
	return msg[len(msg)-(len(msg)-7):][0:] // the v2c header is 7 octets for a short message
}

func TestBuildParseRoundTrip(t *testing.T) {
	engine := unhex(t, "80007ed9050102030405060708")
	salt, err := NewSalt()
	if err != nil {
		t.Fatal(err)
	}
	pdu := getRequestPDU(t)
	scoped := ScopedPDU{ContextEngineID: engine, PDU: pdu}.Append(nil)
	type combo struct {
		a AuthProtocol
		p PrivProtocol
	}
	combos := []combo{{NoAuth, NoPriv}}
	for _, a := range allAuth {
		combos = append(combos, combo{a, NoPriv})
		for _, p := range allPriv {
			combos = append(combos, combo{a, p})
		}
	}
	for _, c := range combos {
		t.Run(fmt.Sprintf("%v/%v", c.a, c.p), func(t *testing.T) {
			cred, err := CredentialsFromPasswords(c.a, "auth-pass-phrase", c.p, "priv-pass-phrase")
			if err != nil {
				t.Fatal(err)
			}
			k, err := cred.Localize(engine)
			if err != nil {
				t.Fatal(err)
			}
			h := Header{MsgID: 77, MaxSize: 1472, Level: k.Level(), Reportable: true, EngineID: engine, Boots: 3, Time: 1000, UserName: []byte("alice")}
			msg, err := Build(h, k, salt, scoped)
			if err != nil {
				t.Fatal(err)
			}
			m, err := Parse(msg)
			if err != nil {
				t.Fatalf("parse our own message: %v", err)
			}
			if m.MsgID != 77 || m.MaxSize != 1472 || m.Boots != 3 || m.Time != 1000 || string(m.UserName) != "alice" || !bytes.Equal(m.EngineID, engine) || m.Level() != k.Level() || !m.Reportable() {
				t.Fatalf("header: got %+v", m)
			}
			if k.Level() >= AuthNoPriv {
				if !m.Verify(k) {
					t.Fatal("Verify: our own message is not authentic")
				}
				// Any flipped bit must fail verification.
				for _, i := range []int{0, len(msg) / 2, len(msg) - 1} {
					bad := append([]byte(nil), msg...)
					bad[i] ^= 0x01
					if bm, err := Parse(bad); err == nil && bm.Verify(k) {
						t.Errorf("Verify accepted a message with octet %d flipped", i)
					}
				}
				wrong, _ := CredentialsFromPasswords(c.a, "wrong-pass-phrase", c.p, "priv-pass-phrase")
				wk, _ := wrong.Localize(engine)
				if m.Verify(wk) {
					t.Error("Verify accepted the wrong key")
				}
			}
			plain, err := m.Decrypt(k)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(plain, scoped) {
				t.Fatalf("scoped PDU: got %x, want %x", plain, scoped)
			}
			s, err := ParseScoped(plain)
			if err != nil || !bytes.Equal(s.PDU, pdu) || !bytes.Equal(s.ContextEngineID, engine) {
				t.Fatalf("ParseScoped: %+v, %v", s, err)
			}
			// gosnmp, configured with the same user, decodes it too.
			g := &gosnmp.GoSNMP{Version: gosnmp.Version3, SecurityModel: gosnmp.UserSecurityModel, MsgFlags: gosnmp.SnmpV3MsgFlags(k.Level().Flags()),
				SecurityParameters: &gosnmp.UsmSecurityParameters{UserName: "alice", AuthenticationProtocol: gosnmpAuth[c.a], PrivacyProtocol: gosnmpPriv[c.p],
					AuthenticationPassphrase: "auth-pass-phrase", PrivacyPassphrase: "priv-pass-phrase"}, Logger: gosnmp.NewLogger(nil)}
			gp, err := g.SnmpDecodePacket(append([]byte(nil), msg...))
			if err != nil {
				t.Fatalf("gosnmp decode: %v", err)
			}
			if gp.RequestID != 1234 || len(gp.Variables) != 1 || gp.Variables[0].Name != ".1.3.6.1.2.1.1.3.0" {
				t.Fatalf("gosnmp decoded %+v", gp)
			}
		})
	}
}

func TestSaltNeverRepeats(t *testing.T) {
	s, err := NewSalt()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for range 1000 {
		n := s.next()
		if seen[n] {
			t.Fatalf("salt %d repeated", n)
		}
		seen[n] = true
	}
}

func TestParseRejects(t *testing.T) {
	engine := unhex(t, "80007ed9050102030405060708")
	good, err := Build(Header{MsgID: 1, EngineID: engine, UserName: []byte("u")}, nil, nil, ScopedPDU{PDU: getRequestPDU(t)}.Append(nil))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(good); err != nil {
		t.Fatalf("good message: %v", err)
	}
	for name, b := range map[string][]byte{
		"empty":      {},
		"truncated":  good[:len(good)-1],
		"trailing":   append(append([]byte(nil), good...), 0),
		"v2c":        {0x30, 0x03, 0x02, 0x01, 0x01},
		"indefinite": {0x30, 0x80, 0x02, 0x01, 0x03, 0x00, 0x00},
	} {
		if _, err := Parse(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}
