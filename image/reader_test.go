package image

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
	"time"
)

// countingReader records how far its source has been read.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func TestNewReaderReadsOnlyHeader(t *testing.T) {
	k := loadTestKeys(t)
	img := buildImage(t, testHeader, testPayload(100_000), k.priv)
	tests := []struct {
		name    string
		opts    Options
		wantErr error
	}{
		{"accepted", Options{Trusted: []ed25519.PublicKey{k.pub}}, nil},
		{"untrusted", Options{Trusted: []ed25519.PublicKey{k.untrusted.Public().(ed25519.PublicKey)}}, ErrUntrustedKey},
		{"wrong hardware", Options{Trusted: []ed25519.PublicKey{k.pub}, Hardware: "other"}, ErrIncompatibleHardware},
		{"too large", Options{Trusted: []ed25519.PublicKey{k.pub}, MaxPayload: 1}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := &countingReader{r: bytes.NewReader(img)}
			r, err := NewReader(src, tt.opts)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if src.n != PayloadOffset {
				t.Fatalf("NewReader consumed %d bytes, want %d", src.n, PayloadOffset)
			}
			if err != nil {
				return
			}
			if n, err := r.Read(make([]byte, 10)); n != 10 || err != nil {
				t.Fatalf("first Read: got %d, %v, want 10, nil", n, err)
			}
			if src.n != PayloadOffset+10 {
				t.Errorf("after reading 10 payload bytes consumed %d, want %d", src.n, PayloadOffset+10)
			}
		})
	}
}

func TestReadDoesNotAllocate(t *testing.T) {
	k := loadTestKeys(t)
	img := buildImage(t, testHeader, testPayload(1<<20), k.priv)
	r, err := NewReader(bytes.NewReader(img), Options{Trusted: []ed25519.PublicKey{k.pub}})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := r.Read(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("got %v allocations per Read, want 0", allocs)
	}
}

func TestRoundTrip(t *testing.T) {
	k := loadTestKeys(t)
	for _, size := range []int{0, 1, 4095, 32 << 10, 100_001} {
		payload := testPayload(size)
		h := Header{Hardware: "h", Version: "1", ConfigFormat: 7, Created: time.Unix(1, 0).UTC()}
		var err error
		if h.PayloadSize, h.PayloadSHA256, err = HashPayload(bytes.NewReader(payload)); err != nil {
			t.Fatal(err)
		}
		var img bytes.Buffer
		if err := Build(&img, h, bytes.NewReader(payload), k.priv); err != nil {
			t.Fatal(err)
		}
		if got, want := img.Len(), PayloadOffset+size; got != want {
			t.Errorf("size %d: image is %d bytes, want %d", size, got, want)
		}
		r, err := NewReader(&img, Options{Trusted: []ed25519.PublicKey{k.pub}})
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if !bytes.Equal(got, payload) {
			t.Errorf("size %d: payload differs after round trip", size)
		}
		h.Format, h.KeyID = FormatVersion, KeyID(k.pub)
		if r.Header() != h {
			t.Errorf("size %d: got header %+v, want %+v", size, r.Header(), h)
		}
	}
}

func TestReadHeader(t *testing.T) {
	k := loadTestKeys(t)
	img := buildImage(t, testHeader, testPayload(10), k.untrusted)
	h, sig, err := ReadHeader(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	if h.Version != "2.1.0" || h.KeyID != KeyID(k.untrusted.Public().(ed25519.PublicKey)) {
		t.Errorf("got %+v", h)
	}
	if !bytes.Equal(sig, img[HeaderSize:PayloadOffset]) {
		t.Errorf("got signature %x, want %x", sig, img[HeaderSize:PayloadOffset])
	}
	if _, _, err := ReadHeader(bytes.NewReader(img[:PayloadOffset-1])); !errors.Is(err, ErrTruncated) {
		t.Errorf("short: got %v, want %v", err, ErrTruncated)
	}
}

func TestBuildRejects(t *testing.T) {
	k := loadTestKeys(t)
	payload := testPayload(100)
	good := testHeader
	good.PayloadSize, good.PayloadSHA256 = 100, sha256.Sum256(payload)
	tests := []struct {
		name    string
		edit    func(h *Header)
		payload []byte
		key     ed25519.PrivateKey
		wantErr error
	}{
		{"payload shorter", nil, payload[:99], k.priv, ErrTruncated},
		{"payload longer", nil, append(bytes.Clone(payload), 0), k.priv, ErrTrailingData},
		{"payload changed", nil, flip(payload, 3), k.priv, ErrHashMismatch},
		{"empty version", func(h *Header) { h.Version = "" }, payload, k.priv, ErrBadHeader},
		{"long hardware", func(h *Header) { h.Hardware = string(make([]byte, 65)) }, payload, k.priv, ErrBadHeader},
		{"NUL in version", func(h *Header) { h.Version = "1\x002" }, payload, k.priv, ErrBadHeader},
		{"negative size", func(h *Header) { h.PayloadSize = -1 }, payload, k.priv, ErrBadHeader},
		{"format 2", func(h *Header) { h.Format = 2 }, payload, k.priv, ErrUnsupportedFormat},
		{"short key", nil, payload, k.priv[:10], ErrBadKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := good
			if tt.edit != nil {
				tt.edit(&h)
			}
			err := Build(io.Discard, h, bytes.NewReader(tt.payload), tt.key)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("got error %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestHeaderLayout(t *testing.T) {
	if HeaderSize != 256 || PayloadOffset != 320 || offReserved != 200 {
		t.Errorf("got HeaderSize %d, PayloadOffset %d, reserved at %d; the package doc says 256, 320, 200",
			HeaderSize, PayloadOffset, offReserved)
	}
}
