package usm

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des" //nolint:gosec // DES is an SNMPv3 privacy protocol; it is off unless a user is configured with it
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
)

// Version3 is msgVersion of an SNMPv3 message.
const Version3 = 3

// SecurityModelUSM is msgSecurityModel for USM.
const SecurityModelUSM = 3

// MinMaxSize is the smallest msgMaxSize RFC 3412 allows.
const MinMaxSize = 484

var (
	// ErrSecurityModel reports a message for a security model other than
	// USM; only its header fields are filled in.
	ErrSecurityModel = errors.New("usm: unknown security model")
	// ErrInvalidFlags reports msgFlags that ask for privacy without
	// authentication, or that do not match an encrypted or plaintext
	// scoped PDU (RFC 3412 snmpInvalidMsgs).
	ErrInvalidFlags = errors.New("usm: invalid msgFlags")
)

// Message is a parsed SNMPv3 message. Nothing in it is authenticated until
// Verify says so; nothing is decrypted until Decrypt.
type Message struct {
	MsgID         uint32
	MaxSize       uint32
	Flags         byte
	SecurityModel uint32

	EngineID   []byte
	Boots      uint32
	Time       uint32
	UserName   []byte
	AuthParams []byte
	PrivParams []byte

	// Data is the scoped PDU: a whole SEQUENCE TLV when the message is in
	// plaintext, the ciphertext when Encrypted.
	Data      []byte
	Encrypted bool

	raw     []byte
	authOff int // offset of AuthParams' content in raw
}

// Parse decodes the envelope of an SNMPv3 message. It does not copy b:
// the Message aliases it, so keep b unchanged while the Message is used.
func Parse(b []byte) (*Message, error) {
	top := reader{b: b}
	body, off, err := top.expect(tagSequence, "message")
	if err != nil {
		return nil, err
	}
	if err := top.done("message"); err != nil {
		return nil, err
	}
	r := reader{b: body, off: off}
	m := &Message{raw: b}
	v, err := r.uint31("msgVersion")
	if err != nil {
		return nil, err
	}
	if v != Version3 {
		return nil, fmt.Errorf("%w: msgVersion %d, want 3", ErrMalformed, v)
	}
	gd, gdOff, err := r.expect(tagSequence, "msgGlobalData")
	if err != nil {
		return nil, err
	}
	g := reader{b: gd, off: gdOff}
	if m.MsgID, err = g.uint31("msgID"); err != nil {
		return nil, err
	}
	if m.MaxSize, err = g.uint31("msgMaxSize"); err != nil {
		return nil, err
	}
	if m.MaxSize < MinMaxSize {
		return nil, fmt.Errorf("%w: msgMaxSize %d below %d", ErrMalformed, m.MaxSize, MinMaxSize)
	}
	flags, _, err := g.expect(tagOctets, "msgFlags")
	if err != nil {
		return nil, err
	}
	if len(flags) != 1 {
		return nil, fmt.Errorf("%w: msgFlags of %d octets", ErrMalformed, len(flags))
	}
	m.Flags = flags[0]
	if m.SecurityModel, err = g.uint31("msgSecurityModel"); err != nil {
		return nil, err
	}
	if err := g.done("msgGlobalData"); err != nil {
		return nil, err
	}
	sp, spOff, err := r.expect(tagOctets, "msgSecurityParameters")
	if err != nil {
		return nil, err
	}
	// msgData: a plaintext ScopedPDU or an encrypted one.
	dataStart := r.off
	tag, data, _, err := r.next()
	if err != nil {
		return nil, err
	}
	if err := r.done("msgData"); err != nil {
		return nil, err
	}
	switch tag {
	case tagSequence:
		m.Data = b[dataStart:r.off]
	case tagOctets:
		m.Data, m.Encrypted = data, true
	default:
		return nil, fmt.Errorf("%w: msgData has tag 0x%02x", ErrMalformed, tag)
	}
	if m.SecurityModel != SecurityModelUSM {
		return m, fmt.Errorf("%w: %d", ErrSecurityModel, m.SecurityModel)
	}
	if err := m.parseUSM(sp, spOff); err != nil {
		return nil, err
	}
	if _, ok := FlagsLevel(m.Flags); !ok {
		return nil, fmt.Errorf("%w: 0x%02x ask for privacy without authentication", ErrInvalidFlags, m.Flags)
	}
	if m.Encrypted != (m.Flags&FlagPriv != 0) {
		return nil, fmt.Errorf("%w: 0x%02x do not match the %s scoped PDU", ErrInvalidFlags, m.Flags, map[bool]string{true: "encrypted", false: "plaintext"}[m.Encrypted])
	}
	return m, nil
}

func (m *Message) parseUSM(sp []byte, spOff int) error {
	outer := reader{b: sp, off: spOff}
	seq, seqOff, err := outer.expect(tagSequence, "UsmSecurityParameters")
	if err != nil {
		return err
	}
	if err := outer.done("UsmSecurityParameters"); err != nil {
		return err
	}
	r := reader{b: seq, off: seqOff}
	if m.EngineID, _, err = r.expect(tagOctets, "msgAuthoritativeEngineID"); err != nil {
		return err
	}
	if len(m.EngineID) > 32 {
		return fmt.Errorf("%w: engine ID of %d octets", ErrMalformed, len(m.EngineID))
	}
	if m.Boots, err = r.uint31("msgAuthoritativeEngineBoots"); err != nil {
		return err
	}
	if m.Time, err = r.uint31("msgAuthoritativeEngineTime"); err != nil {
		return err
	}
	if m.UserName, _, err = r.expect(tagOctets, "msgUserName"); err != nil {
		return err
	}
	if len(m.UserName) > 32 {
		return fmt.Errorf("%w: user name of %d octets", ErrMalformed, len(m.UserName))
	}
	if m.AuthParams, m.authOff, err = r.expect(tagOctets, "msgAuthenticationParameters"); err != nil {
		return err
	}
	if m.PrivParams, _, err = r.expect(tagOctets, "msgPrivacyParameters"); err != nil {
		return err
	}
	return r.done("UsmSecurityParameters")
}

// Level is the security level the message's flags claim.
func (m *Message) Level() Level {
	l, _ := FlagsLevel(m.Flags)
	return l
}

// Reportable reports whether the sender asked for a Report on errors.
func (m *Message) Reportable() bool { return m.Flags&FlagReportable != 0 }

// Verify checks msgAuthenticationParameters: the HMAC of the whole
// message with that field zeroed, compared in constant time. It is false
// for a message without authentication or keys without it.
func (m *Message) Verify(k *Keys) bool {
	if m.Flags&FlagAuth == 0 || k == nil || k.Auth <= NoAuth || len(k.AuthKey) == 0 {
		return false
	}
	n := k.Auth.MACLen()
	if len(m.AuthParams) != n {
		return false
	}
	buf := append([]byte(nil), m.raw...)
	clear(buf[m.authOff : m.authOff+n])
	return hmac.Equal(k.mac(buf), m.AuthParams)
}

// Decrypt returns the plaintext scoped PDU (one SEQUENCE TLV; padding is
// cut off). It fails with ErrDecrypt when the privacy parameters are not
// 8 octets, the ciphertext has a length DES cannot have, or the plaintext
// is not a SEQUENCE, which is what a wrong privacy key produces. Call it
// only after Verify.
func (m *Message) Decrypt(k *Keys) ([]byte, error) {
	if !m.Encrypted {
		return m.Data, nil
	}
	if k == nil || k.Priv <= NoPriv || len(k.PrivKey) < k.Priv.KeyLen() {
		return nil, fmt.Errorf("%w: no privacy key", ErrDecrypt)
	}
	if len(m.PrivParams) != 8 {
		return nil, fmt.Errorf("%w: privacy parameters of %d octets, want 8", ErrDecrypt, len(m.PrivParams))
	}
	plain := make([]byte, len(m.Data))
	switch k.Priv {
	case DES:
		if len(m.Data) == 0 || len(m.Data)%des.BlockSize != 0 {
			return nil, fmt.Errorf("%w: DES ciphertext of %d octets", ErrDecrypt, len(m.Data))
		}
		block, err := des.NewCipher(k.PrivKey[:8]) //nolint:gosec // see import
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
		}
		cipher.NewCBCDecrypter(block, desIV(k.PrivKey, m.PrivParams)).CryptBlocks(plain, m.Data)
	default:
		block, err := aes.NewCipher(k.PrivKey[:k.Priv.KeyLen()])
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrDecrypt, err)
		}
		//nolint:staticcheck // RFC 3826 section 3.1.1 specifies CFB-128
		cipher.NewCFBDecrypter(block, aesIV(m.Boots, m.Time, m.PrivParams)).XORKeyStream(plain, m.Data)
	}
	if len(plain) == 0 || plain[0] != tagSequence {
		return nil, fmt.Errorf("%w: plaintext is not a scoped PDU", ErrDecrypt)
	}
	n, err := TLVLen(plain)
	if err != nil {
		return nil, fmt.Errorf("%w: plaintext is not a scoped PDU", ErrDecrypt)
	}
	return plain[:n], nil
}

func desIV(key, salt []byte) []byte {
	iv := make([]byte, 8)
	for i := range iv {
		iv[i] = key[8+i] ^ salt[i]
	}
	return iv
}

func aesIV(boots, time uint32, salt []byte) []byte {
	iv := make([]byte, 16)
	binary.BigEndian.PutUint32(iv, boots)
	binary.BigEndian.PutUint32(iv[4:], time)
	copy(iv[8:], salt)
	return iv
}

// ScopedPDU is the plaintext payload of an SNMPv3 message.
type ScopedPDU struct {
	ContextEngineID []byte
	ContextName     []byte
	// PDU is the whole PDU TLV (GetRequest, Response, Report…), for
	// gosnmp to decode.
	PDU []byte
}

// ParseScoped decodes a scoped PDU (one SEQUENCE TLV, as Decrypt or
// Message.Data returns it).
func ParseScoped(b []byte) (ScopedPDU, error) {
	top := reader{b: b}
	body, _, err := top.expect(tagSequence, "ScopedPDU")
	if err != nil {
		return ScopedPDU{}, err
	}
	if err := top.done("ScopedPDU"); err != nil {
		return ScopedPDU{}, err
	}
	r := reader{b: body}
	var s ScopedPDU
	if s.ContextEngineID, _, err = r.expect(tagOctets, "contextEngineID"); err != nil {
		return ScopedPDU{}, err
	}
	if s.ContextName, _, err = r.expect(tagOctets, "contextName"); err != nil {
		return ScopedPDU{}, err
	}
	n, err := TLVLen(r.b)
	if err != nil {
		return ScopedPDU{}, err
	}
	if n != len(r.b) {
		return ScopedPDU{}, fmt.Errorf("%w: %d stray octets after the PDU", ErrMalformed, len(r.b)-n)
	}
	s.PDU = r.b
	return s, nil
}

// Append encodes the scoped PDU onto dst.
func (s ScopedPDU) Append(dst []byte) []byte {
	body := appendTLV(nil, tagOctets, s.ContextEngineID)
	body = appendTLV(body, tagOctets, s.ContextName)
	body = append(body, s.PDU...)
	return appendTLV(dst, tagSequence, body)
}

// Header is what Build puts around a scoped PDU.
type Header struct {
	MsgID   uint32
	MaxSize uint32 // default 65507
	// Level is the security level of the message; Reportable adds the
	// reportable flag (requests and informs, never responses or traps).
	Level      Level
	Reportable bool
	// The authoritative engine's identity and clock (ours for responses,
	// reports and traps; the receiver's for informs).
	EngineID []byte
	Boots    uint32
	Time     uint32
	UserName []byte
}

// Build encodes, encrypts and authenticates a message. keys may be nil
// for noAuthNoPriv; salt is needed for authPriv.
func Build(h Header, keys *Keys, salt *Salt, scoped []byte) ([]byte, error) {
	if h.Level == 0 {
		h.Level = NoAuthNoPriv
	}
	if h.MaxSize == 0 {
		h.MaxSize = 65507
	}
	var k Keys
	if keys != nil {
		k = *keys
	}
	if h.Level >= AuthNoPriv && (k.Auth <= NoAuth || len(k.AuthKey) != k.Auth.KeyLen()) {
		return nil, fmt.Errorf("%w: %v message without an authentication key", ErrBadKey, h.Level)
	}
	if h.Level == AuthPriv && (k.Priv <= NoPriv || len(k.PrivKey) < k.Priv.KeyLen() || salt == nil) {
		return nil, fmt.Errorf("%w: authPriv message without a privacy key and salt", ErrBadKey)
	}
	flags := h.Level.Flags()
	if h.Reportable {
		flags |= FlagReportable
	}

	var privParams []byte
	data := scoped
	if h.Level == AuthPriv {
		privParams = make([]byte, 8)
		s := salt.next()
		plain := scoped
		switch k.Priv {
		case DES:
			// RFC 3414 section 8.1.1.1: engine boots, then a counter.
			binary.BigEndian.PutUint32(privParams, h.Boots)
			binary.BigEndian.PutUint32(privParams[4:], uint32(s))
			if pad := len(plain) % des.BlockSize; pad != 0 {
				plain = append(append([]byte(nil), plain...), make([]byte, des.BlockSize-pad)...)
			}
			block, err := des.NewCipher(k.PrivKey[:8]) //nolint:gosec // see import
			if err != nil {
				return nil, err
			}
			ct := make([]byte, len(plain))
			cipher.NewCBCEncrypter(block, desIV(k.PrivKey, privParams)).CryptBlocks(ct, plain)
			data = appendTLV(nil, tagOctets, ct)
		default:
			binary.BigEndian.PutUint64(privParams, s)
			block, err := aes.NewCipher(k.PrivKey[:k.Priv.KeyLen()])
			if err != nil {
				return nil, err
			}
			ct := make([]byte, len(plain))
			//nolint:staticcheck // RFC 3826 section 3.1.1 specifies CFB-128
			cipher.NewCFBEncrypter(block, aesIV(h.Boots, h.Time, privParams)).XORKeyStream(ct, plain)
			data = appendTLV(nil, tagOctets, ct)
		}
	}

	macLen := 0
	if h.Level >= AuthNoPriv {
		macLen = k.Auth.MACLen()
	}
	// USM parameters up to the MAC, the MAC placeholder, the rest.
	usmHead := appendTLV(nil, tagOctets, h.EngineID)
	usmHead = appendUint31(usmHead, h.Boots)
	usmHead = appendUint31(usmHead, h.Time)
	usmHead = appendTLV(usmHead, tagOctets, h.UserName)
	usmBody := appendTLV(usmHead, tagOctets, make([]byte, macLen))
	usmBody = appendTLV(usmBody, tagOctets, privParams)
	usmSeq := appendTLV(nil, tagSequence, usmBody)
	secParams := appendTLV(nil, tagOctets, usmSeq)

	global := appendUint31(nil, h.MsgID&0x7fffffff)
	global = appendUint31(global, h.MaxSize)
	global = appendTLV(global, tagOctets, []byte{flags})
	global = appendUint31(global, SecurityModelUSM)

	body := appendUint31(nil, Version3)
	body = appendTLV(body, tagSequence, global)
	bodyBeforeSec := len(body)
	body = append(body, secParams...)
	body = append(body, data...)
	msg := appendTLV(nil, tagSequence, body)

	if macLen > 0 {
		// Offset of the MAC: outer header, what precedes the security
		// parameters, their two TLV headers, the USM fields before the
		// MAC and the MAC's own two-octet header.
		outerHdr := len(msg) - len(body)
		secHdr := len(secParams) - len(usmSeq)
		seqHdr := len(usmSeq) - len(usmBody)
		off := outerHdr + bodyBeforeSec + secHdr + seqHdr + len(usmHead) + 2
		copy(msg[off:off+macLen], k.mac(msg))
	}
	return msg, nil
}
