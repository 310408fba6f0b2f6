package image

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
)

// Options say which images a Reader accepts.
type Options struct {
	// Trusted are the public keys whose signatures are accepted. A Reader
	// with no trusted keys rejects every image with ErrUntrustedKey; a key
	// that is not ed25519.PublicKeySize bytes makes NewReader fail with
	// ErrBadKey.
	Trusted []ed25519.PublicKey
	// Hardware, when non-empty, must equal the header's Hardware, else
	// ErrIncompatibleHardware.
	Hardware string
	// MaxPayload, when positive, bounds PayloadSize; larger images are
	// rejected with ErrTooLarge from the header alone.
	MaxPayload int64
}

// maxEmptyReads bounds how often a source may return (0, nil) in a row
// before the Reader gives up, as bufio does.
const maxEmptyReads = 100

// Reader streams the payload of an authenticated image.
type Reader struct {
	src       io.Reader
	hdr       Header
	remaining int64
	hash      hash.Hash
	sum       [sha256.Size]byte
	one       [1]byte
	err       error // sticky: returned by every Read once set
}

// NewReader reads the header and signature from r and checks them: magic,
// format version, header fields, that the signing key is trusted, the
// signature, the hardware and the payload size. It reads exactly
// PayloadOffset bytes from r and none of the payload, so an image that
// fails these checks costs no more than its header.
func NewReader(r io.Reader, opts Options) (*Reader, error) {
	var buf [PayloadOffset]byte
	b, sig, err := readHeaderBlock(r, &buf)
	if err != nil {
		return nil, err
	}
	h, err := b.parse()
	if err != nil {
		return nil, err
	}
	if len(opts.Trusted) == 0 {
		return nil, fmt.Errorf("%w: no trusted keys configured", ErrUntrustedKey)
	}
	matched := false
	for i, pub := range opts.Trusted {
		// ed25519.Verify panics on a wrong-size key; configuration is input.
		if len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: trusted key %d is %d bytes, want %d", ErrBadKey, i, len(pub), ed25519.PublicKeySize)
		}
		if KeyID(pub) != h.KeyID {
			continue
		}
		matched = true
		if ed25519.Verify(pub, b[:], sig) {
			return newPayloadReader(r, h, opts)
		}
	}
	if !matched {
		return nil, fmt.Errorf("%w: key id %x", ErrUntrustedKey, h.KeyID)
	}
	return nil, ErrBadSignature
}

// newPayloadReader applies the policy checks that only mean anything once
// the header is known to be authentic.
func newPayloadReader(r io.Reader, h Header, opts Options) (*Reader, error) {
	if opts.Hardware != "" && h.Hardware != opts.Hardware {
		return nil, fmt.Errorf("%w: image is for %q, this device is %q", ErrIncompatibleHardware, h.Hardware, opts.Hardware)
	}
	if opts.MaxPayload > 0 && h.PayloadSize > opts.MaxPayload {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, h.PayloadSize, opts.MaxPayload)
	}
	return &Reader{src: r, hdr: h, remaining: h.PayloadSize, hash: sha256.New()}, nil
}

// Header returns the authenticated header.
func (r *Reader) Header() Header { return r.hdr }

// Read reads payload bytes. Bytes returned are not yet proven intact: Read
// returns io.EOF only after exactly PayloadSize bytes whose SHA-256 matches
// the header and an end of stream right after them. Otherwise it fails with
// ErrTruncated (stream ended early), ErrHashMismatch or ErrTrailingData
// (checked, in that order, after the last payload byte). Errors are sticky.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.remaining == 0 {
		r.err = r.finish()
		return 0, r.err
	}
	if int64(len(p)) > r.remaining {
		p = p[:r.remaining]
	}
	n, err := r.src.Read(p)
	r.hash.Write(p[:n])
	r.remaining -= int64(n)
	switch {
	case err == io.EOF && r.remaining > 0:
		r.err = fmt.Errorf("%w: payload ends %d bytes early", ErrTruncated, r.remaining)
		return n, r.err
	case err == io.EOF:
		// The last byte arrived with EOF: the next Read will finish.
		return n, nil
	case err != nil:
		r.err = fmt.Errorf("image: reading payload: %w", err)
		return n, r.err
	}
	return n, nil
}

// VerifiedDigest is the payload's SHA-256 from the signed header: the
// Read that reaches the payload's end fails with ErrHashMismatch unless
// the payload hashed to it. A consumer may rely on that instead of
// hashing the payload again (see bank.VerifyingReader).
func (r *Reader) VerifiedDigest() [32]byte { return r.hdr.PayloadSHA256 }

// finish runs once the declared payload has been read.
func (r *Reader) finish() error {
	if !bytes.Equal(r.hash.Sum(r.sum[:0]), r.hdr.PayloadSHA256[:]) {
		return ErrHashMismatch
	}
	// Attempt one more read: the image must be the whole stream.
	for range maxEmptyReads {
		n, err := r.src.Read(r.one[:])
		if n > 0 {
			return ErrTrailingData
		}
		if err == io.EOF {
			return io.EOF
		}
		if err != nil {
			return fmt.Errorf("image: reading past payload: %w", err)
		}
	}
	return fmt.Errorf("image: reading past payload: %w", io.ErrNoProgress)
}

// ReadHeader reads and parses the header and returns it with the signature,
// without checking the signature. It is for tools that show what an image
// claims to be; nothing it returns is authenticated.
func ReadHeader(r io.Reader) (Header, []byte, error) {
	var buf [PayloadOffset]byte
	b, sig, err := readHeaderBlock(r, &buf)
	if err != nil {
		return Header{}, nil, err
	}
	h, err := b.parse()
	if err != nil {
		return Header{}, nil, err
	}
	return h, bytes.Clone(sig), nil
}

func readHeaderBlock(r io.Reader, buf *[PayloadOffset]byte) (*block, []byte, error) {
	n, err := io.ReadFull(r, buf[:])
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		// Magic first: a text file a few bytes long is not "truncated".
		if n > 0 && !strings.HasPrefix(magic, string(buf[:min(n, len(magic))])) {
			return nil, nil, ErrBadMagic
		}
		return nil, nil, fmt.Errorf("%w: %d bytes, header and signature need %d", ErrTruncated, n, PayloadOffset)
	case err != nil:
		return nil, nil, fmt.Errorf("image: reading header: %w", err)
	}
	return (*block)(buf[:HeaderSize]), buf[HeaderSize:], nil
}
