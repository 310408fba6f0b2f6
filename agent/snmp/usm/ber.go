package usm

import "fmt"

// BER tags used by the envelope.
const (
	tagInteger  = 0x02
	tagOctets   = 0x04
	tagSequence = 0x30
)

// reader walks definite-length BER, refusing anything it cannot account
// for: indefinite lengths, lengths over four octets, reads past the end.
type reader struct {
	b   []byte
	off int // of b[0] in the whole message, for authentication offsets
}

// next returns the next TLV's tag, its content and the content's offset in
// the whole message.
func (r *reader) next() (tag byte, content []byte, off int, err error) {
	if len(r.b) < 2 {
		return 0, nil, 0, fmt.Errorf("%w: truncated at offset %d", ErrMalformed, r.off)
	}
	tag = r.b[0]
	n, hdr, err := berLength(r.b[1:])
	if err != nil {
		return 0, nil, 0, fmt.Errorf("%w at offset %d", err, r.off)
	}
	hdr++
	if n > len(r.b)-hdr {
		return 0, nil, 0, fmt.Errorf("%w: length %d overruns the message at offset %d", ErrMalformed, n, r.off)
	}
	content = r.b[hdr : hdr+n]
	off = r.off + hdr
	r.b = r.b[hdr+n:]
	r.off += hdr + n
	return tag, content, off, nil
}

// expect is next with a required tag.
func (r *reader) expect(tag byte, what string) ([]byte, int, error) {
	t, c, off, err := r.next()
	if err != nil {
		return nil, 0, err
	}
	if t != tag {
		return nil, 0, fmt.Errorf("%w: %s has tag 0x%02x, want 0x%02x", ErrMalformed, what, t, tag)
	}
	return c, off, nil
}

// uint31 reads an INTEGER in 0..2147483647, the range of every integer in
// the envelope.
func (r *reader) uint31(what string) (uint32, error) {
	c, _, err := r.expect(tagInteger, what)
	if err != nil {
		return 0, err
	}
	if len(c) == 0 || len(c) > 5 || (len(c) == 5 && c[0] != 0) || c[0]&0x80 != 0 {
		return 0, fmt.Errorf("%w: %s is not an integer in 0..2147483647", ErrMalformed, what)
	}
	var v uint64
	for _, x := range c {
		v = v<<8 | uint64(x)
	}
	if v > 1<<31-1 {
		return 0, fmt.Errorf("%w: %s %d out of range", ErrMalformed, what, v)
	}
	return uint32(v), nil
}

func (r *reader) done(what string) error {
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d stray octets after %s", ErrMalformed, len(r.b), what)
	}
	return nil
}

// berLength decodes a definite length and returns it with the number of
// octets it took.
func berLength(b []byte) (n, size int, err error) {
	if len(b) == 0 {
		return 0, 0, fmt.Errorf("%w: missing length", ErrMalformed)
	}
	if b[0] < 0x80 {
		return int(b[0]), 1, nil
	}
	k := int(b[0] & 0x7f)
	if k == 0 || k > 4 || len(b) < 1+k {
		return 0, 0, fmt.Errorf("%w: unsupported length encoding", ErrMalformed)
	}
	for _, x := range b[1 : 1+k] {
		n = n<<8 | int(x)
	}
	if n < 0 || n > 1<<24 {
		return 0, 0, fmt.Errorf("%w: length %d too large", ErrMalformed, n)
	}
	return n, 1 + k, nil
}

func appendLength(dst []byte, n int) []byte {
	switch {
	case n < 0x80:
		return append(dst, byte(n))
	case n < 0x100:
		return append(dst, 0x81, byte(n))
	case n < 0x10000:
		return append(dst, 0x82, byte(n>>8), byte(n))
	}
	return append(dst, 0x83, byte(n>>16), byte(n>>8), byte(n))
}

func appendTLV(dst []byte, tag byte, content []byte) []byte {
	dst = append(dst, tag)
	dst = appendLength(dst, len(content))
	return append(dst, content...)
}

// appendUint31 encodes a non-negative INTEGER in the fewest octets.
func appendUint31(dst []byte, v uint32) []byte {
	var buf [5]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte(v)
		v >>= 8
		if v == 0 {
			break
		}
	}
	if buf[i]&0x80 != 0 {
		i--
		buf[i] = 0
	}
	return appendTLV(dst, tagInteger, buf[i:])
}

// TLVLen returns the total length of the BER TLV at the start of b (header
// and content), or an error if b does not start with one that fits.
func TLVLen(b []byte) (int, error) {
	if len(b) < 2 {
		return 0, fmt.Errorf("%w: truncated", ErrMalformed)
	}
	n, hdr, err := berLength(b[1:])
	if err != nil {
		return 0, err
	}
	if n > len(b)-1-hdr {
		return 0, fmt.Errorf("%w: length %d overruns %d octets", ErrMalformed, n, len(b))
	}
	return 1 + hdr + n, nil
}
