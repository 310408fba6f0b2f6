// Package usm is the User-based Security Model of SNMPv3 on the wire:
// the RFC 3412 message envelope, key derivation and localisation (RFC
// 3414, with the SHA-2 family of RFC 7860), HMAC authentication, and
// privacy with DES-CBC (RFC 3414) and AES-CFB (RFC 3826, and the
// "Blumenthal" key extension net-snmp uses for AES-192/256).
//
// It knows nothing of users, engines or PDUs: agent/snmp decides who may
// do what, and gosnmp encodes the PDU inside. Parse never trusts what it
// parses: a Message is only data until Verify has checked its HMAC over
// the whole message with the key of the user it names.
//
// It must never log, print or return in an error a password or key, and
// never reuse an AES IV: every Salt is seeded at random and counts up.
package usm

import (
	"crypto"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	_ "crypto/md5"    // registers crypto.MD5
	_ "crypto/sha1"   // registers crypto.SHA1
	_ "crypto/sha256" // registers crypto.SHA224 and crypto.SHA256
	_ "crypto/sha512" // registers crypto.SHA384 and crypto.SHA512
)

var (
	// ErrMalformed reports a message that is not a well-formed SNMPv3
	// message with USM security parameters.
	ErrMalformed = errors.New("usm: malformed message")
	// ErrDecrypt reports an encrypted scoped PDU that cannot be decrypted
	// (wrong length or privacy parameters) or does not decrypt into a
	// scoped PDU (usually a wrong privacy key).
	ErrDecrypt = errors.New("usm: decryption error")
	// ErrBadKey reports a password or key that a protocol cannot use.
	ErrBadKey = errors.New("usm: bad key")
	// ErrUnknownProtocol reports an authentication or privacy protocol name
	// this package does not implement.
	ErrUnknownProtocol = errors.New("usm: unknown protocol")
)

// AuthProtocol is an authentication protocol. The values are ours, written
// out; they are never persisted.
type AuthProtocol int

// Authentication protocols. HMAC-MD5-96 and HMAC-SHA-96 are RFC 3414's;
// the others RFC 7860's HMAC-SHA-2 (HMAC-SHA-224-128 … HMAC-SHA-512-384).
const (
	NoAuth AuthProtocol = 1
	MD5    AuthProtocol = 2
	SHA    AuthProtocol = 3
	SHA224 AuthProtocol = 4
	SHA256 AuthProtocol = 5
	SHA384 AuthProtocol = 6
	SHA512 AuthProtocol = 7
)

// PrivProtocol is a privacy protocol.
type PrivProtocol int

// Privacy protocols. AES192 and AES256 use the key extension of
// draft-blumenthal-aes-usm-04, as net-snmp's "AES-192" and "AES-256" do.
const (
	NoPriv PrivProtocol = 1
	DES    PrivProtocol = 2
	AES    PrivProtocol = 3
	AES192 PrivProtocol = 4
	AES256 PrivProtocol = 5
)

// Level is a security level (RFC 3411 SnmpSecurityLevel), ordered.
type Level int

// Security levels.
const (
	NoAuthNoPriv Level = 1
	AuthNoPriv   Level = 2
	AuthPriv     Level = 3
)

// msgFlags bits (RFC 3412 section 6.4).
const (
	FlagAuth       byte = 0x01
	FlagPriv       byte = 0x02
	FlagReportable byte = 0x04
)

// FlagsLevel returns the security level msgFlags ask for; ok is false for
// privacy without authentication, which RFC 3412 forbids.
func FlagsLevel(flags byte) (Level, bool) {
	switch flags & (FlagAuth | FlagPriv) {
	case 0:
		return NoAuthNoPriv, true
	case FlagAuth:
		return AuthNoPriv, true
	case FlagAuth | FlagPriv:
		return AuthPriv, true
	}
	return 0, false
}

// Flags returns the msgFlags bits of a level.
func (l Level) Flags() byte {
	switch l {
	case AuthNoPriv:
		return FlagAuth
	case AuthPriv:
		return FlagAuth | FlagPriv
	}
	return 0
}

var levelNames = map[Level]string{NoAuthNoPriv: "noAuthNoPriv", AuthNoPriv: "authNoPriv", AuthPriv: "authPriv"}

func (l Level) String() string {
	if s, ok := levelNames[l]; ok {
		return s
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

// ParseLevel reads "noAuthNoPriv", "authNoPriv" or "authPriv" (any case).
func ParseLevel(s string) (Level, error) {
	for l, n := range levelNames {
		if strings.EqualFold(s, n) {
			return l, nil
		}
	}
	return 0, fmt.Errorf("usm: unknown security level %q (want noAuthNoPriv, authNoPriv or authPriv)", s)
}

type authInfo struct {
	name   string
	hash   crypto.Hash
	macLen int
}

var auths = map[AuthProtocol]authInfo{
	MD5:    {"MD5", crypto.MD5, 12},
	SHA:    {"SHA", crypto.SHA1, 12},
	SHA224: {"SHA-224", crypto.SHA224, 16},
	SHA256: {"SHA-256", crypto.SHA256, 24},
	SHA384: {"SHA-384", crypto.SHA384, 32},
	SHA512: {"SHA-512", crypto.SHA512, 48},
}

func (a AuthProtocol) String() string {
	if a == NoAuth {
		return "none"
	}
	if i, ok := auths[a]; ok {
		return i.name
	}
	return fmt.Sprintf("AuthProtocol(%d)", int(a))
}

// MACLen is the length of msgAuthenticationParameters for a, 0 for NoAuth.
func (a AuthProtocol) MACLen() int { return auths[a].macLen }

// KeyLen is the length of a localized authentication key for a.
func (a AuthProtocol) KeyLen() int {
	if i, ok := auths[a]; ok {
		return i.hash.Size()
	}
	return 0
}

// Valid reports whether a is a protocol this package implements
// (NoAuth included).
func (a AuthProtocol) Valid() bool { _, ok := auths[a]; return ok || a == NoAuth }

// ParseAuthProtocol reads a protocol name as net-snmp's tools spell it:
// MD5, SHA (or SHA-1, SHA1), SHA-224, SHA-256, SHA-384, SHA-512 (with or
// without the dash), or "none".
func ParseAuthProtocol(s string) (AuthProtocol, error) {
	u := strings.ToUpper(strings.ReplaceAll(s, "-", ""))
	switch u {
	case "NONE", "NOAUTH":
		return NoAuth, nil
	case "SHA1":
		return SHA, nil
	}
	for a, i := range auths {
		if u == strings.ReplaceAll(i.name, "-", "") {
			return a, nil
		}
	}
	return 0, fmt.Errorf("%w: authentication %q (want MD5, SHA, SHA-224, SHA-256, SHA-384 or SHA-512)", ErrUnknownProtocol, s)
}

var privNames = map[PrivProtocol]string{DES: "DES", AES: "AES", AES192: "AES-192", AES256: "AES-256"}

func (p PrivProtocol) String() string {
	if p == NoPriv {
		return "none"
	}
	if n, ok := privNames[p]; ok {
		return n
	}
	return fmt.Sprintf("PrivProtocol(%d)", int(p))
}

// KeyLen is the length of the localized privacy key p uses: DES takes 8
// key octets and 8 pre-IV octets.
func (p PrivProtocol) KeyLen() int {
	switch p {
	case DES, AES:
		return 16
	case AES192:
		return 24
	case AES256:
		return 32
	}
	return 0
}

// Valid reports whether p is a protocol this package implements (NoPriv
// included).
func (p PrivProtocol) Valid() bool { _, ok := privNames[p]; return ok || p == NoPriv }

// ParsePrivProtocol reads DES, AES (or AES-128, AES128), AES-192, AES-256
// (with or without the dash), or "none".
func ParsePrivProtocol(s string) (PrivProtocol, error) {
	u := strings.ToUpper(strings.ReplaceAll(s, "-", ""))
	switch u {
	case "NONE", "NOPRIV":
		return NoPriv, nil
	case "AES128":
		return AES, nil
	}
	for p, n := range privNames {
		if u == strings.ReplaceAll(n, "-", "") {
			return p, nil
		}
	}
	return 0, fmt.Errorf("%w: privacy %q (want DES, AES, AES-192 or AES-256)", ErrUnknownProtocol, s)
}

// Salt hands out privacy parameters that never repeat for one sender: a
// 64-bit counter seeded at random. Keep one per sending entity for its
// whole life; a fresh one per message would reuse AES IVs.
type Salt struct{ n atomic.Uint64 }

// NewSalt returns a Salt seeded from crypto/rand.
func NewSalt() (*Salt, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("usm: seeding salt: %w", err)
	}
	s := &Salt{}
	s.n.Store(binary.BigEndian.Uint64(b[:]))
	return s, nil
}

func (s *Salt) next() uint64 { return s.n.Add(1) }
