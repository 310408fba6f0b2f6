package image

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// magic starts every image. See the package documentation for the layout.
const magic = "\x89IAD\r\n\x1a\n"

// Field offsets and sizes within the header block. Each field ends where the
// next begins; offReserved..HeaderSize is the reserved tail.
const (
	offMagic        = 0
	offFormat       = offMagic + len(magic) // 8
	offHeaderLen    = offFormat + 2         // 10
	offHardware     = offHeaderLen + 2      // 12
	offVersion      = offHardware + strSize // 76
	offConfigFormat = offVersion + strSize  // 140
	offPayloadLen   = offConfigFormat + 4   // 144
	offPayloadHash  = offPayloadLen + 8     // 152
	offKeyID        = offPayloadHash + 32   // 184
	offCreated      = offKeyID + 8          // 192
	offReserved     = offCreated + 8        // 200

	strSize = 64 // Hardware and Version fields
)

// Fails to compile if the fields outgrow the header.
var _ [HeaderSize - offReserved]byte

// block is the raw header: typed views over fixed big-endian offsets.
type block [HeaderSize]byte

func (b *block) magic() []byte        { return b[offMagic:offFormat] }
func (b *block) format() uint16       { return binary.BigEndian.Uint16(b[offFormat:]) }
func (b *block) headerLen() uint16    { return binary.BigEndian.Uint16(b[offHeaderLen:]) }
func (b *block) hardware() []byte     { return b[offHardware:offVersion] }
func (b *block) version() []byte      { return b[offVersion:offConfigFormat] }
func (b *block) configFormat() uint32 { return binary.BigEndian.Uint32(b[offConfigFormat:]) }
func (b *block) payloadLen() uint64   { return binary.BigEndian.Uint64(b[offPayloadLen:]) }
func (b *block) payloadHash() []byte  { return b[offPayloadHash:offKeyID] }
func (b *block) keyID() []byte        { return b[offKeyID:offCreated] }
func (b *block) created() int64       { return int64(binary.BigEndian.Uint64(b[offCreated:])) }
func (b *block) reserved() []byte     { return b[offReserved:] }

// parse checks the block and decodes it. Structural checks come first and
// need no key, so ReadHeader can use them on untrusted files.
func (b *block) parse() (Header, error) {
	var h Header
	if string(b.magic()) != magic {
		return h, ErrBadMagic
	}
	if f := b.format(); f != FormatVersion {
		return h, fmt.Errorf("%w: %d", ErrUnsupportedFormat, f)
	}
	if n := b.headerLen(); n != HeaderSize {
		return h, fmt.Errorf("%w: header length %d, want %d", ErrBadHeader, n, HeaderSize)
	}
	hw, err := parseString(b.hardware())
	if err != nil {
		return h, fmt.Errorf("%w: hardware: %v", ErrBadHeader, err)
	}
	ver, err := parseString(b.version())
	if err != nil {
		return h, fmt.Errorf("%w: version: %v", ErrBadHeader, err)
	}
	size := b.payloadLen()
	if size > math.MaxInt64 {
		return h, fmt.Errorf("%w: payload length %d", ErrBadHeader, size)
	}
	for _, c := range b.reserved() {
		if c != 0 {
			return h, fmt.Errorf("%w: reserved bytes not zero", ErrBadHeader)
		}
	}
	h = Header{
		Format:       FormatVersion,
		Hardware:     hw,
		Version:      ver,
		ConfigFormat: b.configFormat(),
		PayloadSize:  int64(size),
	}
	copy(h.PayloadSHA256[:], b.payloadHash())
	copy(h.KeyID[:], b.keyID())
	if sec := b.created(); sec != 0 {
		h.Created = time.Unix(sec, 0).UTC()
	}
	return h, nil
}

// marshal encodes h into b. It rejects what parse would reject, so every
// block written can be read back into the same Header.
func (b *block) marshal(h *Header) error {
	if h.Format != FormatVersion {
		return fmt.Errorf("%w: %d", ErrUnsupportedFormat, h.Format)
	}
	if err := checkString(h.Hardware); err != nil {
		return fmt.Errorf("%w: hardware: %v", ErrBadHeader, err)
	}
	if err := checkString(h.Version); err != nil {
		return fmt.Errorf("%w: version: %v", ErrBadHeader, err)
	}
	if h.PayloadSize < 0 {
		return fmt.Errorf("%w: negative payload size %d", ErrBadHeader, h.PayloadSize)
	}
	*b = block{}
	copy(b.magic(), magic)
	binary.BigEndian.PutUint16(b[offFormat:], h.Format)
	binary.BigEndian.PutUint16(b[offHeaderLen:], HeaderSize)
	copy(b.hardware(), h.Hardware)
	copy(b.version(), h.Version)
	binary.BigEndian.PutUint32(b[offConfigFormat:], h.ConfigFormat)
	binary.BigEndian.PutUint64(b[offPayloadLen:], uint64(h.PayloadSize))
	copy(b.payloadHash(), h.PayloadSHA256[:])
	copy(b.keyID(), h.KeyID[:])
	var sec int64
	if !h.Created.IsZero() {
		sec = h.Created.Unix()
	}
	binary.BigEndian.PutUint64(b[offCreated:], uint64(sec))
	return nil
}

// parseString decodes a NUL-padded field: text, then only NULs.
func parseString(f []byte) (string, error) {
	s := f
	if i := bytes.IndexByte(f, 0); i >= 0 {
		s = f[:i]
		for _, c := range f[i:] {
			if c != 0 {
				return "", errors.New("NUL inside string")
			}
		}
	}
	if err := checkString(string(s)); err != nil {
		return "", err
	}
	return string(s), nil
}

func checkString(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > strSize:
		return fmt.Errorf("%d bytes, at most %d", len(s), strSize)
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	case strings.IndexByte(s, 0) >= 0:
		return errors.New("NUL inside string")
	}
	return nil
}
