package image

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden images in testdata/")

type testKeys struct {
	priv, untrusted ed25519.PrivateKey
	pub             ed25519.PublicKey
}

func loadTestKeys(tb testing.TB) testKeys {
	tb.Helper()
	var k testKeys
	var err error
	if k.priv, err = LoadPrivateKey("testdata/test-only.key"); err != nil {
		tb.Fatal(err)
	}
	if k.pub, err = LoadPublicKey("testdata/test-only.pub"); err != nil {
		tb.Fatal(err)
	}
	if k.untrusted, err = LoadPrivateKey("testdata/test-only-untrusted.key"); err != nil {
		tb.Fatal(err)
	}
	return k
}

// testPayload is deterministic and not all one byte value, so a shifted or
// flipped byte changes the hash.
func testPayload(n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(i*7 + i>>8)
	}
	return p
}

var testHeader = Header{
	Hardware:     "iad-arm-v1",
	Version:      "2.1.0",
	ConfigFormat: 3,
	Created:      time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
}

func buildImage(tb testing.TB, h Header, payload []byte, key ed25519.PrivateKey) []byte {
	tb.Helper()
	h.PayloadSize = int64(len(payload))
	h.PayloadSHA256 = sha256.Sum256(payload)
	var buf bytes.Buffer
	if err := Build(&buf, h, bytes.NewReader(payload), key); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// tamper edits the header of a valid image and signs it again, so the
// edit, not the signature, is what the reader must catch.
func tamper(img []byte, key ed25519.PrivateKey, edit func(b *block)) []byte {
	out := bytes.Clone(img)
	edit((*block)(out[:HeaderSize]))
	copy(out[HeaderSize:PayloadOffset], ed25519.Sign(key, out[:HeaderSize]))
	return out
}

func flip(img []byte, off int) []byte {
	out := bytes.Clone(img)
	out[off] ^= 0x01
	return out
}

// goldenImages lists the files in testdata/ and how each is made.
func goldenImages(tb testing.TB, k testKeys) map[string][]byte {
	payload := testPayload(1000)
	valid := buildImage(tb, testHeader, payload, k.priv)
	n := len(valid)
	return map[string][]byte{
		"valid":         valid,
		"empty-payload": buildImage(tb, testHeader, nil, k.priv),
		"bad-magic": tamper(valid, k.priv, func(b *block) {
			b[4] = '\n' // as if CR LF had become LF LF
		}),
		"text":       []byte("hello\n"),
		"bad-format": tamper(valid, k.priv, func(b *block) { binary.BigEndian.PutUint16(b[offFormat:], 2) }),
		"bad-header-length": tamper(valid, k.priv, func(b *block) {
			binary.BigEndian.PutUint16(b[offHeaderLen:], 300)
		}),
		"reserved-nonzero": tamper(valid, k.priv, func(b *block) { b[HeaderSize-1] = 1 }),
		"hardware-nul-inside": tamper(valid, k.priv, func(b *block) {
			copy(b.hardware(), "iad\x00arm")
		}),
		"version-empty": tamper(valid, k.priv, func(b *block) { clear(b.version()) }),
		"version-bad-utf8": tamper(valid, k.priv, func(b *block) {
			clear(b.version())
			copy(b.version(), "2.\xff")
		}),
		"payload-length-overflow": tamper(valid, k.priv, func(b *block) {
			binary.BigEndian.PutUint64(b[offPayloadLen:], 1<<63)
		}),
		"bad-signature-header": flip(valid, offVersion),
		"bad-signature-sig":    flip(valid, HeaderSize+10),
		"untrusted-key":        buildImage(tb, testHeader, payload, k.untrusted),
		"truncated-header":     valid[:100],
		"truncated-signature":  valid[:HeaderSize+10],
		"truncated-payload":    valid[:n-10],
		"payload-bitflip":      flip(valid, n-500),
		"trailing-data":        append(bytes.Clone(valid), '\n'),
	}
}

func TestGolden(t *testing.T) {
	k := loadTestKeys(t)
	for name, want := range goldenImages(t, k) {
		path := filepath.Join("testdata", name+".img")
		if *update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create)", err)
		}
		// Ed25519 signatures are deterministic: a difference means the
		// writer's output changed.
		if !bytes.Equal(got, want) {
			t.Errorf("%s: committed file differs from what Build makes now", path)
		}
	}
}

func TestReader(t *testing.T) {
	k := loadTestKeys(t)
	tests := []struct {
		file     string
		opts     func(*Options)
		wantOpen error // from NewReader
		wantRead error // from reading the payload; nil means io.EOF
	}{
		{file: "valid"},
		{file: "empty-payload"},
		{file: "valid", opts: func(o *Options) { o.MaxPayload = 1000 }},
		{file: "valid", opts: func(o *Options) { o.Hardware = "" }},
		{file: "valid", opts: func(o *Options) { o.Trusted = []ed25519.PublicKey{k.untrusted.Public().(ed25519.PublicKey), k.pub} }},
		{file: "bad-magic", wantOpen: ErrBadMagic},
		{file: "text", wantOpen: ErrBadMagic},
		{file: "bad-format", wantOpen: ErrUnsupportedFormat},
		{file: "bad-header-length", wantOpen: ErrBadHeader},
		{file: "reserved-nonzero", wantOpen: ErrBadHeader},
		{file: "hardware-nul-inside", wantOpen: ErrBadHeader},
		{file: "version-empty", wantOpen: ErrBadHeader},
		{file: "version-bad-utf8", wantOpen: ErrBadHeader},
		{file: "payload-length-overflow", wantOpen: ErrBadHeader},
		{file: "bad-signature-header", wantOpen: ErrBadSignature},
		{file: "bad-signature-sig", wantOpen: ErrBadSignature},
		{file: "untrusted-key", wantOpen: ErrUntrustedKey},
		{file: "valid", opts: func(o *Options) { o.Trusted = nil }, wantOpen: ErrUntrustedKey},
		{file: "valid", opts: func(o *Options) { o.Trusted = []ed25519.PublicKey{k.pub[:31]} }, wantOpen: ErrBadKey},
		{file: "valid", opts: func(o *Options) { o.Hardware = "iad-mips-v1" }, wantOpen: ErrIncompatibleHardware},
		{file: "valid", opts: func(o *Options) { o.MaxPayload = 999 }, wantOpen: ErrTooLarge},
		{file: "truncated-header", wantOpen: ErrTruncated},
		{file: "truncated-signature", wantOpen: ErrTruncated},
		{file: "truncated-payload", wantRead: ErrTruncated},
		{file: "payload-bitflip", wantRead: ErrHashMismatch},
		{file: "trailing-data", wantRead: ErrTrailingData},
	}
	payload := testPayload(1000)
	// Sources that deliver the same bytes in different shapes, to reach the
	// short-read and data-with-EOF paths.
	sources := map[string]func([]byte) io.Reader{
		"bytes":    func(b []byte) io.Reader { return bytes.NewReader(b) },
		"one-byte": func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		"data-eof": func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) },
		"half":     func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
	}
	for _, tt := range tests {
		data, err := os.ReadFile(filepath.Join("testdata", tt.file+".img"))
		if err != nil {
			t.Fatal(err)
		}
		for srcName, src := range sources {
			t.Run(tt.file+"/"+srcName, func(t *testing.T) {
				opts := Options{Trusted: []ed25519.PublicKey{k.pub}, Hardware: "iad-arm-v1"}
				if tt.opts != nil {
					tt.opts(&opts)
				}
				r, err := NewReader(src(data), opts)
				if !errors.Is(err, tt.wantOpen) {
					t.Fatalf("NewReader: got error %v, want %v", err, tt.wantOpen)
				}
				if err != nil {
					return
				}
				var got bytes.Buffer
				_, err = io.Copy(&got, r)
				if !errors.Is(err, tt.wantRead) {
					t.Fatalf("reading payload: got error %v, want %v", err, tt.wantRead)
				}
				if _, again := r.Read(make([]byte, 1)); err != nil && again != err {
					t.Errorf("error not sticky: got %v, then %v", err, again)
				}
				if err != nil {
					return
				}
				want := payload
				if tt.file == "empty-payload" {
					want = nil
				}
				if !bytes.Equal(got.Bytes(), want) {
					t.Errorf("payload: got %d bytes, want the %d bytes built", got.Len(), len(want))
				}
				h := r.Header()
				if h.Hardware != testHeader.Hardware || h.Version != testHeader.Version ||
					h.ConfigFormat != testHeader.ConfigFormat || !h.Created.Equal(testHeader.Created) ||
					h.Format != FormatVersion || h.KeyID != KeyID(k.pub) || h.PayloadSize != int64(len(want)) {
					t.Errorf("header: got %+v", h)
				}
			})
		}
	}
}
