package image

import (
	"bytes"
	"crypto/ed25519"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReader feeds arbitrary bytes to ReadHeader and NewReader. Beyond not
// panicking, whatever parses must encode back to the same bytes, and a fully
// accepted image must be rebuilt bit for bit by Build (Ed25519 signatures
// are deterministic), so reader and writer cannot drift apart.
func FuzzReader(f *testing.F) {
	k := loadTestKeys(f)
	seeds, err := filepath.Glob("testdata/*.img")
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range seeds {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	opts := Options{Trusted: []ed25519.PublicKey{k.pub}}
	f.Fuzz(func(t *testing.T, data []byte) {
		h, sig, headerErr := ReadHeader(bytes.NewReader(data))
		if headerErr == nil {
			var b block
			if err := b.marshal(&h); err != nil {
				t.Fatalf("parsed header does not marshal: %v", err)
			}
			if !bytes.Equal(b[:], data[:HeaderSize]) {
				t.Fatalf("header round trip changed bytes:\n got %x\nwant %x", b[:], data[:HeaderSize])
			}
			if !bytes.Equal(sig, data[HeaderSize:PayloadOffset]) {
				t.Fatal("signature differs from input")
			}
		}
		r, err := NewReader(bytes.NewReader(data), opts)
		if err != nil {
			return
		}
		if headerErr != nil {
			t.Fatalf("NewReader accepted what ReadHeader rejected: %v", headerErr)
		}
		var payload bytes.Buffer
		if _, err := io.Copy(&payload, r); err != nil {
			return
		}
		var out bytes.Buffer
		if err := Build(&out, r.Header(), &payload, k.priv); err != nil {
			t.Fatalf("rebuilding an accepted image: %v", err)
		}
		if !bytes.Equal(out.Bytes(), data) {
			t.Fatal("rebuilt image differs from the accepted input")
		}
	})
}
