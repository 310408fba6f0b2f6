package usm

import (
	"crypto/hmac"
	"fmt"
)

// MinPasswordLen is the shortest pass phrase accepted, as in net-snmp
// (RFC 3414 section 11.2 recommends at least eight characters).
const MinPasswordLen = 8

// Keys are one user's keys localized to one authoritative engine. The zero
// value is noAuthNoPriv.
type Keys struct {
	Auth    AuthProtocol
	AuthKey []byte
	Priv    PrivProtocol
	PrivKey []byte
}

// Level is the highest security level k supports.
func (k *Keys) Level() Level {
	switch {
	case k.Auth > NoAuth && k.Priv > NoPriv:
		return AuthPriv
	case k.Auth > NoAuth:
		return AuthNoPriv
	}
	return NoAuthNoPriv
}

// String never shows a key.
func (k *Keys) String() string { return fmt.Sprintf("usm.Keys{auth %v, priv %v}", k.Auth, k.Priv) }

// Validate checks that the keys fit their protocols.
func (k *Keys) Validate() error {
	a, p := k.Auth, k.Priv
	if a == 0 {
		a = NoAuth
	}
	if p == 0 {
		p = NoPriv
	}
	switch {
	case !a.Valid():
		return fmt.Errorf("%w: %v", ErrUnknownProtocol, a)
	case !p.Valid():
		return fmt.Errorf("%w: %v", ErrUnknownProtocol, p)
	case a == NoAuth && p != NoPriv:
		return fmt.Errorf("%w: privacy needs authentication", ErrBadKey)
	case a != NoAuth && len(k.AuthKey) != a.KeyLen():
		return fmt.Errorf("%w: %v authentication key must be %d octets, got %d", ErrBadKey, a, a.KeyLen(), len(k.AuthKey))
	case p != NoPriv && len(k.PrivKey) < p.KeyLen():
		return fmt.Errorf("%w: %v privacy key must be at least %d octets, got %d", ErrBadKey, p, p.KeyLen(), len(k.PrivKey))
	}
	return nil
}

// PasswordToKey turns a pass phrase into the non-localized key Ku of RFC
// 3414 section A.2 (1 MiB of the repeated pass phrase, hashed).
func PasswordToKey(a AuthProtocol, password string) ([]byte, error) {
	info, ok := auths[a]
	if !ok {
		return nil, fmt.Errorf("%w: authentication %v", ErrUnknownProtocol, a)
	}
	if len(password) < MinPasswordLen {
		return nil, fmt.Errorf("%w: pass phrase shorter than %d characters", ErrBadKey, MinPasswordLen)
	}
	h := info.hash.New()
	const total = 1 << 20
	var chunk [64]byte
	pi := 0
	for n := 0; n < total; n += len(chunk) {
		for i := range chunk {
			chunk[i] = password[pi]
			if pi++; pi == len(password) {
				pi = 0
			}
		}
		h.Write(chunk[:])
	}
	return h.Sum(nil), nil
}

// Localize derives the localized key Kul = H(Ku || engineID || Ku) (RFC
// 3414 section 2.6).
func Localize(a AuthProtocol, ku, engineID []byte) ([]byte, error) {
	info, ok := auths[a]
	if !ok {
		return nil, fmt.Errorf("%w: authentication %v", ErrUnknownProtocol, a)
	}
	h := info.hash.New()
	h.Write(ku)
	h.Write(engineID)
	h.Write(ku)
	return h.Sum(nil), nil
}

// extendPrivKey lengthens a localized privacy key the way
// draft-blumenthal-aes-usm-04 section 3.1.2.1 and net-snmp do:
// Kul' = Kul || H(Kul), repeated until it is long enough.
func extendPrivKey(a AuthProtocol, kul []byte, need int) []byte {
	key := append([]byte(nil), kul...)
	for len(key) < need {
		h := auths[a].hash.New()
		h.Write(key)
		key = h.Sum(key)
	}
	return key[:need]
}

// LocalizePriv localizes a privacy master key (the Ku of the privacy pass
// phrase, hashed with the authentication protocol's hash) for p, extending
// it if the hash is shorter than p needs.
func LocalizePriv(a AuthProtocol, p PrivProtocol, ku, engineID []byte) ([]byte, error) {
	if p.KeyLen() == 0 {
		return nil, fmt.Errorf("%w: privacy %v", ErrUnknownProtocol, p)
	}
	kul, err := Localize(a, ku, engineID)
	if err != nil {
		return nil, err
	}
	if len(kul) < p.KeyLen() {
		return extendPrivKey(a, kul, p.KeyLen()), nil
	}
	return kul[:p.KeyLen()], nil
}

// Credentials are a user's protocols with their master keys Ku (from pass
// phrases or given as keys); they localize to any engine, which is what a
// notification originator needs for informs to engines it discovers.
type Credentials struct {
	Auth   AuthProtocol
	AuthKu []byte
	Priv   PrivProtocol
	PrivKu []byte
}

// CredentialsFromPasswords hashes the pass phrases once (it takes a few
// milliseconds per phrase). privPass is ignored when priv is NoPriv.
func CredentialsFromPasswords(auth AuthProtocol, authPass string, priv PrivProtocol, privPass string) (*Credentials, error) {
	c := &Credentials{Auth: auth, Priv: priv}
	if auth == NoAuth {
		if priv != NoPriv {
			return nil, fmt.Errorf("%w: privacy needs authentication", ErrBadKey)
		}
		return c, nil
	}
	var err error
	if c.AuthKu, err = PasswordToKey(auth, authPass); err != nil {
		return nil, fmt.Errorf("authentication pass phrase: %w", err)
	}
	if priv != NoPriv {
		if !priv.Valid() {
			return nil, fmt.Errorf("%w: privacy %v", ErrUnknownProtocol, priv)
		}
		if c.PrivKu, err = PasswordToKey(auth, privPass); err != nil {
			return nil, fmt.Errorf("privacy pass phrase: %w", err)
		}
	}
	return c, nil
}

// Localize derives the user's keys for engineID.
func (c *Credentials) Localize(engineID []byte) (*Keys, error) {
	k := &Keys{Auth: c.Auth, Priv: c.Priv}
	if k.Auth == 0 {
		k.Auth = NoAuth
	}
	if k.Priv == 0 {
		k.Priv = NoPriv
	}
	var err error
	if k.Auth != NoAuth {
		if k.AuthKey, err = Localize(c.Auth, c.AuthKu, engineID); err != nil {
			return nil, err
		}
	}
	if k.Priv != NoPriv {
		if k.PrivKey, err = LocalizePriv(c.Auth, c.Priv, c.PrivKu, engineID); err != nil {
			return nil, err
		}
	}
	return k, k.Validate()
}

// String never shows a key.
func (c *Credentials) String() string {
	return fmt.Sprintf("usm.Credentials{auth %v, priv %v}", c.Auth, c.Priv)
}

// mac computes the truncated HMAC of msg for k.
func (k *Keys) mac(msg []byte) []byte {
	info := auths[k.Auth]
	m := hmac.New(info.hash.New, k.AuthKey)
	m.Write(msg)
	return m.Sum(nil)[:info.macLen]
}
