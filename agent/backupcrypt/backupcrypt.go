// Package backupcrypt encrypts configuration backups for one device, so
// that an archive sitting on an unauthenticated TFTP server leaks no
// subscriber credentials and cannot be altered unnoticed.
//
// The archive is a stream of AES-256-GCM chunks (the STREAM construction
// of Hoang, Reyhanitabar, Rogaway and Vizár, as in age):
//
//	header   56 bytes: magic "IADBKENC", version 1, 3 zero bytes,
//	         chunk size (uint32, big-endian, plaintext bytes per chunk),
//	         key id (8 bytes: HMAC-SHA256(device key, "iad-agent backup
//	         key id")), salt (32 random bytes)
//	chunk i  AES-256-GCM(K, nonce_i, plaintext_i, additional data = header)
//	         K       = HKDF-SHA256(device key, salt, "iad-agent backup archive v1")
//	         nonce_i = 11-byte big-endian i, then 1 for the last chunk, else 0
//
// Every chunk but the last holds exactly chunk-size plaintext bytes; the
// last holds fewer (possibly none) and carries the final flag, so a
// stream cut at a chunk boundary, cut inside a chunk, reordered, or with
// bytes appended does not authenticate. A fresh salt per archive gives a
// fresh key, so nonces never repeat under one key.
//
// The package must never release plaintext of a chunk that has not
// authenticated, never hold more than one chunk in memory, and never put
// key material in an error, a log record or a formatted Key.
package backupcrypt

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Errors; match them with errors.Is.
var (
	// ErrNotEncrypted means the stream does not start with the header.
	ErrNotEncrypted = errors.New("backupcrypt: not an encrypted backup")
	// ErrUnsupported means a header this package cannot read.
	ErrUnsupported = errors.New("backupcrypt: unsupported encrypted backup format")
	// ErrWrongKey means the archive was encrypted under another key.
	ErrWrongKey = errors.New("backupcrypt: encrypted under another device key")
	// ErrAuth means a chunk does not authenticate: the archive was altered
	// or cut inside a chunk.
	ErrAuth = errors.New("backupcrypt: encrypted backup does not authenticate (altered or truncated)")
	// ErrTruncated means the stream ended before its final chunk.
	ErrTruncated = errors.New("backupcrypt: encrypted backup is truncated")
	// ErrBadKey means a key file that does not hold a key.
	ErrBadKey = errors.New("backupcrypt: bad key file")
)

// Magic starts every encrypted backup.
const Magic = "IADBKENC"

const (
	version    = 1
	headerSize = 8 + 1 + 3 + 4 + 8 + 32
	// ChunkSize is the plaintext per chunk this package writes.
	ChunkSize    = 64 << 10
	minChunkSize = 1 << 10
	maxChunkSize = 1 << 20
	tagSize      = 16
	keyIDInfo    = "iad-agent backup key id"
	kdfInfo      = "iad-agent backup archive v1"
)

// Key is a device key: 32 bytes that never leave the device. Formatting
// a Key never shows it.
type Key struct{ k [32]byte }

// NewKey makes a Key from 32 bytes.
func NewKey(b []byte) (Key, error) {
	var k Key
	if len(b) != len(k.k) {
		return Key{}, fmt.Errorf("%w: %d bytes, want %d", ErrBadKey, len(b), len(k.k))
	}
	copy(k.k[:], b)
	return k, nil
}

// LoadKey reads a key file: 32 raw bytes, or 64 hexadecimal digits (as
// "openssl rand -hex 32" writes them) with optional surrounding space.
func LoadKey(path string) (Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("backupcrypt: %w", err)
	}
	if len(b) == 32 {
		return NewKey(b)
	}
	h := strings.TrimSpace(string(b))
	raw, err := hex.DecodeString(h)
	if err != nil || len(raw) != 32 {
		return Key{}, fmt.Errorf("%w: %s holds neither 32 bytes nor 64 hex digits", ErrBadKey, path)
	}
	return NewKey(raw)
}

func (Key) String() string             { return "backupcrypt.Key(<redacted>)" }
func (Key) GoString() string           { return "backupcrypt.Key(<redacted>)" }
func (Key) LogValue() slog.Value       { return slog.StringValue("<redacted>") }
func (Key) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "backupcrypt.Key(<redacted>)") }

// ID is the key's public identifier, written into every header.
func (k Key) ID() [8]byte {
	m := hmac.New(sha256.New, k.k[:])
	m.Write([]byte(keyIDInfo))
	var id [8]byte
	copy(id[:], m.Sum(nil))
	return id
}

func (k Key) aead(salt []byte) (cipher.AEAD, error) {
	sub, err := hkdf.Key(sha256.New, k.k[:], salt, kdfInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("backupcrypt: %w", err)
	}
	block, err := aes.NewCipher(sub)
	if err != nil {
		return nil, fmt.Errorf("backupcrypt: %w", err)
	}
	return cipher.NewGCM(block)
}

// IsEncrypted reports whether a stream starting with prefix (at least
// len(Magic) bytes) is an encrypted backup.
func IsEncrypted(prefix []byte) bool { return bytes.HasPrefix(prefix, []byte(Magic)) }

func nonce(i uint64, final bool) []byte {
	var n [12]byte
	binary.BigEndian.PutUint64(n[3:11], i)
	if final {
		n[11] = 1
	}
	return n[:]
}

// Writer encrypts a stream. Close must be called to write the final
// chunk; without it the archive does not authenticate.
type Writer struct {
	w      io.Writer
	aead   cipher.AEAD
	header []byte
	buf    []byte // plaintext of the chunk being filled
	out    []byte // sealed chunk
	n      uint64 // chunks written
	err    error
	closed bool
}

// NewWriter writes the header to w and returns a Writer for the
// plaintext.
func NewWriter(w io.Writer, key Key) (*Writer, error) {
	header := make([]byte, headerSize)
	copy(header, Magic)
	header[8] = version
	binary.BigEndian.PutUint32(header[12:16], ChunkSize)
	id := key.ID()
	copy(header[16:24], id[:])
	if _, err := rand.Read(header[24:56]); err != nil {
		return nil, fmt.Errorf("backupcrypt: %w", err)
	}
	aead, err := key.aead(header[24:56])
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(header); err != nil {
		return nil, err
	}
	return &Writer{w: w, aead: aead, header: header, buf: make([]byte, 0, ChunkSize), out: make([]byte, 0, ChunkSize+tagSize)}, nil
}

// Write encrypts p; full chunks are written as soon as they are complete.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, errors.New("backupcrypt: write after close")
	}
	done := 0
	for len(p) > 0 {
		n := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:len(w.buf)+n]
		p = p[n:]
		done += n
		if len(w.buf) == cap(w.buf) {
			if err := w.seal(false); err != nil {
				return done, err
			}
		}
	}
	return done, nil
}

func (w *Writer) seal(final bool) error {
	w.out = w.aead.Seal(w.out[:0], nonce(w.n, final), w.buf, w.header)
	w.n++
	w.buf = w.buf[:0]
	if _, err := w.w.Write(w.out); err != nil {
		w.err = err
		return err
	}
	return nil
}

// Close writes the final chunk. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return nil
	}
	w.closed = true
	return w.seal(true)
}

// Reader decrypts a stream chunk by chunk; Read returns only plaintext
// that authenticated.
type Reader struct {
	r      io.Reader
	aead   cipher.AEAD
	header []byte
	chunk  int
	buf    []byte // ciphertext read, decrypted in place
	plain  []byte // unread plaintext, a slice of buf
	n      uint64
	done   bool
	err    error
}

// NewReader reads and checks the header; the key must be the one the
// archive was written with.
func NewReader(r io.Reader, key Key) (*Reader, error) {
	header := make([]byte, headerSize)
	n, err := io.ReadFull(r, header)
	if !IsEncrypted(header[:n]) {
		if err != nil && n < len(Magic) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, err
		}
		return nil, ErrNotEncrypted
	}
	if err != nil {
		return nil, fmt.Errorf("%w: header cut short", ErrTruncated)
	}
	if header[8] != version || header[9]|header[10]|header[11] != 0 {
		return nil, fmt.Errorf("%w: version %d", ErrUnsupported, header[8])
	}
	chunk := binary.BigEndian.Uint32(header[12:16])
	if chunk < minChunkSize || chunk > maxChunkSize {
		return nil, fmt.Errorf("%w: chunk size %d", ErrUnsupported, chunk)
	}
	if id := key.ID(); !hmac.Equal(id[:], header[16:24]) {
		return nil, ErrWrongKey
	}
	aead, err := key.aead(header[24:56])
	if err != nil {
		return nil, err
	}
	return &Reader{r: r, aead: aead, header: header, chunk: int(chunk), buf: make([]byte, int(chunk)+tagSize)}, nil
}

// Read returns authenticated plaintext; io.EOF only after the final
// chunk authenticated.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.plain) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.done {
			return 0, io.EOF
		}
		r.err = r.next()
	}
	n := copy(p, r.plain)
	r.plain = r.plain[n:]
	return n, nil
}

// next reads and opens one chunk.
func (r *Reader) next() error {
	n, err := io.ReadFull(r.r, r.buf)
	final := false
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		return fmt.Errorf("%w: ends after chunk %d without the final chunk", ErrTruncated, r.n)
	case errors.Is(err, io.ErrUnexpectedEOF):
		final = true
	default:
		return err
	}
	if n < tagSize {
		return fmt.Errorf("%w: chunk %d is %d bytes", ErrAuth, r.n, n)
	}
	plain, oerr := r.aead.Open(r.buf[:0], nonce(r.n, final), r.buf[:n], r.header)
	if oerr != nil {
		return fmt.Errorf("%w: chunk %d", ErrAuth, r.n)
	}
	r.n++
	r.plain = plain
	r.done = final
	return nil
}
