// Package image reads, verifies and builds signed upgrade images for the
// Integrated Access Device.
//
// An image is a fixed 256-byte header, a 64-byte Ed25519 signature over
// exactly those header bytes, and then the payload (the bank contents):
//
//	offset  size  field
//	     0     8  magic "\x89IAD\r\n\x1a\n"
//	     8     2  image format version (big-endian uint16, 1)
//	    10     2  header length (big-endian uint16, 256)
//	    12    64  hardware-compatibility string, UTF-8, NUL-padded
//	    76    64  software version string, UTF-8, NUL-padded
//	   140     4  config-format version the software expects (uint32)
//	   144     8  payload length in bytes (uint64, at most 2^63-1)
//	   152    32  SHA-256 of the payload
//	   184     8  key ID: first 8 bytes of SHA-256 of the signing public key
//	   192     8  creation time, Unix seconds (int64; 0 means unset)
//	   200    56  reserved, must be zero
//	   256    64  Ed25519 signature over bytes 0..255
//	   320     …  payload, exactly "payload length" bytes, then end of stream
//
// The magic's high-bit byte, CR LF, ^Z and LF catch the usual text-mode and
// 7-bit transfer damage (as PNG's signature does) before anything else is
// parsed. The signature covers the header only; the header binds the payload
// through its length and SHA-256, so the payload can be checked while it
// streams, in constant memory, without being buffered.
//
// The package must never hand out payload bytes before the header has been
// authenticated, never report success (io.EOF) before the whole payload has
// been hashed and compared, and never buffer a whole payload. Callers must
// treat payload bytes as untrusted until Read has returned io.EOF: write
// them to the inactive bank, and mark it valid only after that.
package image

import (
	"crypto/ed25519"
	"errors"
	"time"
)

// Sizes of the parts of an image.
const (
	HeaderSize    = 256
	SignatureSize = ed25519.SignatureSize
	PayloadOffset = HeaderSize + SignatureSize
)

// FormatVersion is the image format version this package reads and writes.
const FormatVersion = 1

// Sentinel errors. Errors returned by this package wrap one of these, so
// callers can classify failures with errors.Is.
var (
	ErrBadMagic             = errors.New("image: bad magic")
	ErrUnsupportedFormat    = errors.New("image: unsupported format version")
	ErrBadHeader            = errors.New("image: bad header")
	ErrBadSignature         = errors.New("image: bad signature")
	ErrUntrustedKey         = errors.New("image: untrusted signing key")
	ErrIncompatibleHardware = errors.New("image: incompatible hardware")
	ErrTooLarge             = errors.New("image: payload too large")
	ErrTruncated            = errors.New("image: truncated")
	ErrHashMismatch         = errors.New("image: payload hash mismatch")
	// ErrTrailingData reports bytes after the declared payload. An image
	// is the whole stream (TFTP and FTP end at EOF), so anything after the
	// payload means the wrong file or a corrupted length.
	ErrTrailingData = errors.New("image: trailing data after payload")
	// ErrBadKey reports a key file or key value that is not a usable
	// Ed25519 key.
	ErrBadKey = errors.New("image: bad key")
)

// Header describes an image. Hardware and Version must be non-empty,
// valid UTF-8 without NUL bytes, and at most 64 bytes long.
type Header struct {
	Format        uint16    // image format version; Build fills FormatVersion
	Hardware      string    // hardware-compatibility string, e.g. "iad-arm-v1"
	Version       string    // software version, e.g. "2.1.0"
	ConfigFormat  uint32    // config-format version the software expects
	PayloadSize   int64     // payload length in bytes
	PayloadSHA256 [32]byte  // SHA-256 of the payload
	KeyID         [8]byte   // identifies the signing key; Build fills it
	Created       time.Time // whole seconds; the zero Time is stored as 0
}
