package transfer

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestRequestValidation(t *testing.T) {
	v4 := netip.MustParseAddrPort("192.0.2.1:0")
	tests := []struct {
		name string
		req  Request
		want error
	}{
		{"no protocol", Request{Server: v4, File: "f"}, ErrInvalid},
		{"unknown protocol", Request{Protocol: 3, Server: v4, File: "f"}, ErrInvalid},
		{"no server", Request{Protocol: TFTP, File: "f"}, ErrInvalid},
		{"unspecified server", Request{Protocol: TFTP, Server: netip.MustParseAddrPort("0.0.0.0:69"), File: "f"}, ErrInvalid},
		{"no file", Request{Protocol: TFTP, Server: v4}, ErrInvalid},
		{"file with newline", Request{Protocol: FTP, Server: v4, File: "a\r\nDELE b"}, ErrInvalid},
		{"password with newline", Request{Protocol: FTP, Server: v4, File: "f", Password: "x\nDELE b"}, ErrInvalid},
		{"block size too small", Request{Protocol: TFTP, Server: v4, File: "f", BlockSize: 511}, ErrInvalid},
		{"block size too large", Request{Protocol: TFTP, Server: v4, File: "f", BlockSize: 65465}, ErrInvalid},
		{"negative timeout", Request{Protocol: TFTP, Server: v4, File: "f", Timeout: -1}, ErrInvalid},
		{"negative retries", Request{Protocol: TFTP, Server: v4, File: "f", Retries: -1}, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Download(context.Background(), tt.req, io.Discard, Hooks{})
			if !errors.Is(err, tt.want) {
				t.Errorf("Download: got %v, want %v", err, tt.want)
			}
			_, err = Upload(context.Background(), tt.req, strings.NewReader(""), 0, Hooks{})
			if !errors.Is(err, tt.want) {
				t.Errorf("Upload: got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestRequestDefaults(t *testing.T) {
	tests := []struct {
		req         Request
		wantPort    uint16
		wantTimeout time.Duration
	}{
		{Request{Protocol: TFTP, Server: netip.MustParseAddrPort("192.0.2.1:0"), File: "f"}, 69, DefaultTimeout},
		{Request{Protocol: FTP, Server: netip.MustParseAddrPort("[2001:db8::1]:0"), File: "f"}, 21, DefaultFTPTimeout},
		{Request{Protocol: FTP, Server: netip.MustParseAddrPort("192.0.2.1:2121"), File: "f"}, 2121, DefaultFTPTimeout},
	}
	for _, tt := range tests {
		got, err := tt.req.withDefaults()
		if err != nil {
			t.Fatalf("%+v: %v", tt.req, err)
		}
		if got.Server.Port() != tt.wantPort || got.BlockSize != DefaultBlockSize || got.Timeout != tt.wantTimeout ||
			got.Retries != DefaultRetries || got.User != "anonymous" {
			t.Errorf("got %+v, want port %d and the defaults", got, tt.wantPort)
		}
	}
}

func TestUploadBadSize(t *testing.T) {
	req := Request{Protocol: TFTP, Server: netip.MustParseAddrPort("127.0.0.1:9"), File: "f"}
	if _, err := Upload(context.Background(), req, strings.NewReader(""), -2, Hooks{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("got %v, want ErrInvalid", err)
	}
}

func TestAlreadyCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, p := range []Protocol{TFTP, FTP} {
		req := Request{Protocol: p, Server: netip.MustParseAddrPort("127.0.0.1:9"), File: "f"}
		if _, err := Download(ctx, req, io.Discard, Hooks{}); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrCanceled) {
			t.Errorf("%v: got %v, want context.Canceled and ErrCanceled", p, err)
		}
	}
}

// silentTCP accepts connections and never says anything; accepted tells
// of each connection.
func silentTCP(t *testing.T) (addr netip.AddrPort, accepted <-chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ch := make(chan struct{}, 10)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			ch <- struct{}{}
		}
	}()
	return l.Addr().(*net.TCPAddr).AddrPort(), ch
}

func TestFTPSilentServer(t *testing.T) {
	addr, accepted := silentTCP(t)
	req := Request{Protocol: FTP, Server: addr, File: "f", Timeout: 200 * time.Millisecond}
	_, err := Download(context.Background(), req, io.Discard, Hooks{})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}

	req.Timeout = time.Minute // cancellation must not wait for it
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Upload(ctx, req, strings.NewReader("x"), 1, Hooks{})
		done <- err
	}()
	<-accepted // the first attempt
	<-accepted // connected, waiting for the banner
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}
