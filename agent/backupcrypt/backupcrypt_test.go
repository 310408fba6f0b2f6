package backupcrypt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func testKey(seed byte) Key {
	b := make([]byte, 32)
	for i := range b {
		b[i] = seed + byte(i)
	}
	k, _ := NewKey(b)
	return k
}

func encrypt(t testing.TB, key Key, plain []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, key)
	if err != nil {
		t.Fatal(err)
	}
	// Odd write sizes cross chunk boundaries anywhere.
	for rest := plain; len(rest) > 0; {
		n := min(len(rest), 1+len(rest)%7777)
		if _, err := w.Write(rest[:n]); err != nil {
			t.Fatal(err)
		}
		rest = rest[n:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decrypt(key Key, archive []byte) ([]byte, error) {
	r, err := NewReader(bytes.NewReader(archive), key)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 3))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	key := testKey(1)
	for _, n := range []int{0, 1, ChunkSize - 1, ChunkSize, ChunkSize + 1, 3 * ChunkSize, 3*ChunkSize + 12345} {
		plain := randomBytes(n, uint64(n))
		archive := encrypt(t, key, plain)
		if want := headerSize + (n/ChunkSize+1)*tagSize + n; len(archive) != want {
			t.Errorf("%d bytes: archive is %d bytes, want %d", n, len(archive), want)
		}
		got, err := decrypt(key, archive)
		if err != nil || !bytes.Equal(got, plain) {
			t.Errorf("%d bytes: round trip: %v (got %d bytes)", n, err, len(got))
		}
		if n > 100 && bytes.Contains(archive, plain[:64]) {
			t.Errorf("%d bytes: plaintext visible in the archive", n)
		}
	}
	// Two archives of the same plaintext differ (fresh salt, fresh key).
	a, b := encrypt(t, key, []byte("same")), encrypt(t, key, []byte("same"))
	if bytes.Equal(a, b) {
		t.Error("two encryptions of the same plaintext are identical")
	}
}

// TestRejects: every alteration is refused with its cause, and no
// plaintext of a chunk that did not authenticate is ever returned.
func TestRejects(t *testing.T) {
	key := testKey(1)
	plain := randomBytes(3*ChunkSize+500, 9)
	good := encrypt(t, key, plain)
	chunk := ChunkSize + tagSize
	flip := func(off int) []byte {
		b := bytes.Clone(good)
		b[off] ^= 0x40
		return b
	}
	swapped := bytes.Clone(good)
	copy(swapped[headerSize:], good[headerSize+chunk:headerSize+2*chunk])
	copy(swapped[headerSize+chunk:], good[headerSize:headerSize+chunk])
	cases := []struct {
		name    string
		archive []byte
		key     Key
		want    error
	}{
		{"plain tar", []byte("MANIFEST.json\x00\x00\x00 plenty of bytes of a tar header here........................"), key, ErrNotEncrypted},
		{"empty", nil, key, ErrNotEncrypted},
		{"magic", flip(0), key, ErrNotEncrypted},
		{"version", flip(8), key, ErrUnsupported},
		{"reserved", flip(10), key, ErrUnsupported},
		{"chunk size", flip(13), key, ErrUnsupported},
		{"chunk size within range", flip(14), key, ErrAuth},
		{"key id", flip(17), key, ErrWrongKey},
		{"wrong key", good, testKey(2), ErrWrongKey},
		{"salt", flip(30), key, ErrAuth},
		{"first ciphertext byte", flip(headerSize), key, ErrAuth},
		{"middle chunk", flip(headerSize + chunk + 999), key, ErrAuth},
		{"tag of the final chunk", flip(len(good) - 1), key, ErrAuth},
		{"header cut", good[:headerSize-5], key, ErrTruncated},
		{"nothing after the header", good[:headerSize], key, ErrTruncated},
		{"cut at a chunk boundary", good[:headerSize+2*chunk], key, ErrTruncated},
		{"cut inside a chunk", good[:headerSize+2*chunk+100], key, ErrAuth},
		{"final chunk cut", good[:len(good)-1], key, ErrAuth},
		{"byte appended", append(bytes.Clone(good), 0), key, ErrAuth},
		{"chunks swapped", swapped, key, ErrAuth},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []byte
			r, err := NewReader(bytes.NewReader(tc.archive), tc.key)
			if err == nil {
				got, err = io.ReadAll(r)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if len(got)%ChunkSize != 0 || !bytes.Equal(got, plain[:len(got)]) {
				t.Errorf("released %d bytes that are not whole authenticated chunks", len(got))
			}
		})
	}
}

// TestStreamsInConstantMemory: 16 MiB through Writer and Reader allocate
// a few chunk buffers, not the archive.
func TestStreamsInConstantMemory(t *testing.T) {
	const size = 16 << 20
	key := testKey(5)
	src := io.LimitReader(rand.NewChaCha8([32]byte{1}), size)
	pr, pw := io.Pipe()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	go func() {
		w, err := NewWriter(pw, key)
		if err == nil {
			_, err = io.Copy(w, src)
		}
		if err == nil {
			err = w.Close()
		}
		pw.CloseWithError(err)
	}()
	r, err := NewReader(pr, key)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, r)
	runtime.ReadMemStats(&after)
	if err != nil || n != size {
		t.Fatalf("decrypted %d bytes, %v; want %d", n, err, size)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 2<<20 {
		t.Errorf("streaming 16 MiB allocated %d bytes, want under 2 MiB", alloc)
	}
}

func TestKeyNeverShown(t *testing.T) {
	b := bytes.Repeat([]byte{0xAB}, 32)
	k, err := NewKey(b)
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "key", k)
	out := fmt.Sprintf("%v %s %x %X %#v %+v %q %d", k, k, k, k, k, k, k, k) + logged.String()
	if strings.Contains(strings.ToLower(out), "abab") || strings.Contains(out, "171") {
		t.Errorf("key material shown: %s", out)
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	raw := randomBytes(32, 4)
	files := map[string][]byte{
		"raw":      raw,
		"hex":      []byte(fmt.Sprintf("%x\n", raw)),
		"hex-crlf": []byte(fmt.Sprintf("  %x\r\n", raw)),
		"short":    raw[:31],
		"bad-hex":  []byte(strings.Repeat("zz", 32)),
		"long-hex": []byte(fmt.Sprintf("%x00", raw)),
	}
	want := map[string]bool{"raw": true, "hex": true, "hex-crlf": true}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		k, err := LoadKey(p)
		if want[name] {
			if err != nil || k.ID() != mustKey(t, raw).ID() {
				t.Errorf("%s: %v", name, err)
			}
		} else if !errors.Is(err, ErrBadKey) {
			t.Errorf("%s: got %v, want %v", name, err, ErrBadKey)
		}
	}
	if _, err := LoadKey(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing key file loaded")
	}
}

func mustKey(t *testing.T, b []byte) Key {
	k, err := NewKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// FuzzReader: arbitrary input never panics, and only an archive written
// under the key decrypts (each fuzz worker process writes its own, with
// its own salt, so the check is on the plaintext).
func FuzzReader(f *testing.F) {
	key := testKey(7)
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, key)
	w.Write([]byte("hello, backup"))
	w.Close()
	valid := bytes.Clone(buf.Bytes())
	f.Add(valid)
	f.Add(valid[:headerSize])
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := decrypt(key, in)
		if err == nil && string(got) != "hello, backup" {
			t.Fatalf("an input other than the valid archive decrypted to %q", got)
		}
	})
}
