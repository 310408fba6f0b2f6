package transfer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/agent/itest"
)

// Integration tests against tftpd-hpa and vsftpd on loopback, started by
// the shared harness in agent/itest.

func TestTFTPDIntegration(t *testing.T) {
	t.Parallel()
	s := itest.StartTFTP(t, t.TempDir(), true)
	dir, addr := s.Dir, s.AddrPort()
	sizes := []int{0, 1, 511, 512, 1467, 1468, 3 * 1468, 256<<10 + 13}
	for _, blk := range []int{512, 1468, 8192} {
		for _, size := range sizes {
			t.Run(fmt.Sprintf("blksize %d size %d", blk, size), func(t *testing.T) {
				data := randomBytes(size, uint64(size+blk))
				down := fmt.Sprintf("down-%d-%d.bin", blk, size)
				if err := os.WriteFile(filepath.Join(dir, down), data, 0o644); err != nil {
					t.Fatal(err)
				}
				req := tftpReq(addr, down)
				req.BlockSize = blk
				var got bytes.Buffer
				var h hookLog
				n, err := Download(context.Background(), req, &got, h.hooks())
				if err != nil {
					t.Fatalf("Download: %v", err)
				}
				if n != int64(size) || sha256.Sum256(got.Bytes()) != sha256.Sum256(data) {
					t.Fatalf("got %d bytes with sha256 %x, want %d bytes with %x", n, sha256.Sum256(got.Bytes()), size, sha256.Sum256(data))
				}
				wantSize := int64(size)
				if size == 0 {
					wantSize = -1
				}
				h.check(t, wantSize, int64(size))

				up := fmt.Sprintf("up-%d-%d.bin", blk, size)
				req.File = up
				n, err = Upload(context.Background(), req, bytes.NewReader(data), int64(size), Hooks{})
				if err != nil {
					t.Fatalf("Upload: %v", err)
				}
				if n != int64(size) {
					t.Errorf("Upload sent %d bytes, want %d", n, size)
				}
				stored, err := os.ReadFile(filepath.Join(dir, up))
				if err != nil {
					t.Fatal(err)
				}
				if sha256.Sum256(stored) != sha256.Sum256(data) {
					t.Errorf("server stored %d bytes with sha256 %x, want %d bytes with %x", len(stored), sha256.Sum256(stored), size, sha256.Sum256(data))
				}
			})
		}
	}
	t.Run("not found", func(t *testing.T) {
		_, err := Download(context.Background(), tftpReq(addr, "missing.bin"), io.Discard, Hooks{})
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("got %v, want ErrNotFound", err)
		}
		t.Logf("operator sees: %v", err)
	})
	t.Run("nothing listening", func(t *testing.T) {
		req := tftpReq(netip.AddrPortFrom(addr.Addr(), uint16(itest.FreeUDPPort(t))), "f")
		req.Timeout = 200 * time.Millisecond
		req.Retries = 1
		_, err := Download(context.Background(), req, io.Discard, Hooks{})
		if !errors.Is(err, ErrTimeout) {
			t.Fatalf("got %v, want ErrTimeout", err)
		}
		t.Logf("operator sees: %v", err)
	})
}

func TestTFTPDUploadRefused(t *testing.T) {
	t.Parallel()
	s := itest.StartTFTP(t, t.TempDir(), false) // no -c: new files are refused
	_, err := Upload(context.Background(), tftpReq(s.AddrPort(), "new.bin"), strings.NewReader("data"), 4, Hooks{})
	if !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("got %v, want ErrAccessDenied", err)
	}
	t.Logf("operator sees: %v", err)
	if _, err := os.Stat(filepath.Join(s.Dir, "new.bin")); err == nil {
		t.Errorf("refused upload left a file behind")
	}
}

func ftpReq(s *itest.FTPServer, file string) Request {
	return Request{Protocol: FTP, Server: s.AddrPort(), File: file, User: s.User, Password: s.Password, Timeout: 5 * time.Second}
}

func TestVsftpdIntegration(t *testing.T) {
	t.Parallel()
	s := itest.StartFTP(t, t.TempDir())
	for _, size := range []int{0, 1, 32<<10 - 1, 1<<20 + 13} {
		t.Run(fmt.Sprintf("size %d", size), func(t *testing.T) {
			data := randomBytes(size, uint64(size))
			down := fmt.Sprintf("down-%d.bin", size)
			s.WriteFile(t, down, data)
			var got bytes.Buffer
			var h hookLog
			n, err := Download(context.Background(), ftpReq(s, down), &got, h.hooks())
			if err != nil {
				t.Fatalf("Download: %v", err)
			}
			if n != int64(size) || sha256.Sum256(got.Bytes()) != sha256.Sum256(data) {
				t.Fatalf("got %d bytes with sha256 %x, want %d bytes with %x", n, sha256.Sum256(got.Bytes()), size, sha256.Sum256(data))
			}
			h.check(t, int64(size), int64(size))

			up := fmt.Sprintf("up-%d.bin", size)
			var uh hookLog
			n, err = Upload(context.Background(), ftpReq(s, up), bytes.NewReader(data), int64(size), uh.hooks())
			if err != nil {
				t.Fatalf("Upload: %v", err)
			}
			if n != int64(size) {
				t.Errorf("Upload sent %d bytes, want %d", n, size)
			}
			uh.check(t, int64(size), int64(size))
			stored, err := os.ReadFile(filepath.Join(s.Dir, up))
			if err != nil {
				t.Fatal(err)
			}
			if sha256.Sum256(stored) != sha256.Sum256(data) {
				t.Errorf("server stored %d bytes with sha256 %x, want %d bytes with %x", len(stored), sha256.Sum256(stored), size, sha256.Sum256(data))
			}
		})
	}
	t.Run("upload of unknown size overwrites", func(t *testing.T) {
		s.WriteFile(t, "over.bin", []byte("old contents, longer than the new"))
		data := randomBytes(5000, 77)
		if _, err := Upload(context.Background(), ftpReq(s, "over.bin"), bytes.NewReader(data), -1, Hooks{}); err != nil {
			t.Fatalf("Upload: %v", err)
		}
		stored, _ := os.ReadFile(filepath.Join(s.Dir, "over.bin"))
		if !bytes.Equal(stored, data) {
			t.Errorf("server stored %d bytes, want %d", len(stored), len(data))
		}
	})
	errorCases := []struct {
		name   string
		req    Request
		upload bool
		want   error
	}{
		{"wrong password", Request{Protocol: FTP, Server: s.AddrPort(), File: "down-1.bin", User: s.User, Password: "wrong"}, false, ErrAuth},
		{"anonymous refused", Request{Protocol: FTP, Server: s.AddrPort(), File: "down-1.bin"}, false, ErrAuth},
		{"not found", ftpReq(s, "missing.bin"), false, ErrNotFound},
		{"upload into missing directory", ftpReq(s, "no/such/dir/x.bin"), true, ErrAccessDenied},
		{"nothing listening", Request{Protocol: FTP, Server: netip.AddrPortFrom(s.AddrPort().Addr(), uint16(itest.FreeTCPPort(t))), File: "x"}, false, ErrUnreachable},
	}
	for _, tt := range errorCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel() // failed logins are slow: PAM delays them
			var err error
			if tt.upload {
				_, err = Upload(context.Background(), tt.req, strings.NewReader("abc"), 3, Hooks{})
			} else {
				_, err = Download(context.Background(), tt.req, io.Discard, Hooks{})
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			t.Logf("operator sees: %v", err)
		})
	}
	t.Run("cancel", func(t *testing.T) {
		s.WriteFile(t, "big.bin", randomBytes(8<<20, 3))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		w := &lateWriter{t: t}
		_, err := Download(ctx, ftpReq(s, "big.bin"), w, Hooks{Progress: func(int64) { cancel() }})
		w.returned.Store(true)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want context.Canceled", err)
		}
	})
}

func TestVsftpdIPv6(t *testing.T) {
	t.Parallel()
	s := itest.StartFTPOn(t, "::1", t.TempDir())
	data := randomBytes(100_000, 6)
	s.WriteFile(t, "v6.bin", data)
	var got bytes.Buffer
	if _, err := Download(context.Background(), ftpReq(s, "v6.bin"), &got, Hooks{}); err != nil {
		t.Fatalf("Download from %s: %v", s.Addr(), err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Errorf("got %d bytes, want the %d bytes served", got.Len(), len(data))
	}
	if _, err := Upload(context.Background(), ftpReq(s, "up6.bin"), bytes.NewReader(data), int64(len(data)), Hooks{}); err != nil {
		t.Fatalf("Upload to %s: %v", s.Addr(), err)
	}
	if stored, _ := os.ReadFile(filepath.Join(s.Dir, "up6.bin")); !bytes.Equal(stored, data) {
		t.Errorf("server stored %d bytes, want %d", len(stored), len(data))
	}
}

func TestTFTPDIPv6(t *testing.T) {
	t.Parallel()
	s := itest.StartTFTPOn(t, "::1", t.TempDir(), true)
	data := randomBytes(100_000, 7)
	if err := os.WriteFile(filepath.Join(s.Dir, "v6.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := Download(context.Background(), tftpReq(s.AddrPort(), "v6.bin"), &got, Hooks{}); err != nil {
		t.Fatalf("Download from %s: %v", s.Addr(), err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Errorf("got %d bytes, want the %d bytes served", got.Len(), len(data))
	}
	if _, err := Upload(context.Background(), tftpReq(s.AddrPort(), "up6.bin"), bytes.NewReader(data), int64(len(data)), Hooks{}); err != nil {
		t.Fatalf("Upload to %s: %v", s.Addr(), err)
	}
	if stored, _ := os.ReadFile(filepath.Join(s.Dir, "up6.bin")); !bytes.Equal(stored, data) {
		t.Errorf("server stored %d bytes, want %d", len(stored), len(data))
	}
}
