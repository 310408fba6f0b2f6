package image

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"io"
)

// copyBufSize is the fixed buffer used to stream payloads.
const copyBufSize = 32 << 10

// HashPayload returns the size and SHA-256 of everything r yields: the
// first pass of building an image.
func HashPayload(r io.Reader) (size int64, sum [32]byte, err error) {
	h := sha256.New()
	size, err = io.CopyBuffer(h, onlyReader{r}, make([]byte, copyBufSize))
	if err != nil {
		return 0, sum, fmt.Errorf("image: hashing payload: %w", err)
	}
	h.Sum(sum[:0])
	return size, sum, nil
}

// Build writes a signed image to w: the header from h, its signature by
// key, then the payload streamed from payload. h.PayloadSize and
// h.PayloadSHA256 must describe payload (see HashPayload); Build sets
// h.Format to FormatVersion when zero and h.KeyID from key.
//
// The header is written before the payload is read, so if payload turns out
// not to match it (a file changed between the passes), Build returns an
// error wrapping ErrTruncated, ErrTrailingData or ErrHashMismatch and w
// holds a broken image: write to a temporary file and rename it only after
// Build succeeds.
func Build(w io.Writer, h Header, payload io.Reader, key ed25519.PrivateKey) error {
	if len(key) != ed25519.PrivateKeySize {
		return fmt.Errorf("%w: private key is %d bytes, want %d", ErrBadKey, len(key), ed25519.PrivateKeySize)
	}
	if h.Format == 0 {
		h.Format = FormatVersion
	}
	h.KeyID = KeyID(key.Public().(ed25519.PublicKey))
	var b block
	if err := b.marshal(&h); err != nil {
		return err
	}
	if _, err := w.Write(b[:]); err != nil {
		return fmt.Errorf("image: writing header: %w", err)
	}
	if _, err := w.Write(ed25519.Sign(key, b[:])); err != nil {
		return fmt.Errorf("image: writing signature: %w", err)
	}

	sum := sha256.New()
	n, err := io.CopyBuffer(io.MultiWriter(w, sum), io.LimitReader(payload, h.PayloadSize), make([]byte, copyBufSize))
	if err != nil {
		return fmt.Errorf("image: writing payload: %w", err)
	}
	if n < h.PayloadSize {
		return fmt.Errorf("%w: payload is %d bytes, header says %d", ErrTruncated, n, h.PayloadSize)
	}
	var one [1]byte
	switch m, err := io.ReadFull(payload, one[:]); {
	case m > 0:
		return fmt.Errorf("%w: payload is longer than the %d bytes the header says", ErrTrailingData, h.PayloadSize)
	case err != io.EOF:
		return fmt.Errorf("image: reading past payload: %w", err)
	}
	if [32]byte(sum.Sum(nil)) != h.PayloadSHA256 {
		return fmt.Errorf("%w: payload differs from the hash in the header", ErrHashMismatch)
	}
	return nil
}

// onlyReader hides any WriterTo of the wrapped reader, so io.CopyBuffer
// really uses the fixed buffer it is given.
type onlyReader struct{ io.Reader }
