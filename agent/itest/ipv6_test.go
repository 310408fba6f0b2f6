package itest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/jlaffaye/ftp"
	"github.com/pin/tftp/v3"
)

func TestIPv6FreePorts(t *testing.T) {
	udp := FreeUDPPortOn(t, "::1")
	c, err := net.ListenPacket("udp6", net.JoinHostPort("::1", strconv.Itoa(udp)))
	if err != nil {
		t.Fatalf("got udp port %d on ::1 that cannot be bound: %v", udp, err)
	}
	c.Close()
	tcp := FreeTCPPortOn(t, "[::1]") // brackets are accepted too
	l, err := net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(tcp)))
	if err != nil {
		t.Fatalf("got tcp port %d on ::1 that cannot be bound: %v", tcp, err)
	}
	l.Close()
}

func TestIPv6TFTPServer(t *testing.T) {
	dir := t.TempDir()
	want := bytes.Repeat([]byte("iad-image-v6-"), 500) // several 512-byte blocks
	if err := os.WriteFile(filepath.Join(dir, "image.bin"), want, 0o600); err != nil {
		t.Fatal(err)
	}
	s := StartTFTPOn(t, "::1", dir, true)
	if got, want := s.Addr(), "[::1]:"+strconv.Itoa(s.Port); got != want {
		t.Fatalf("got Addr %q, want %q", got, want)
	}
	if got, want := s.AddrPort(), netip.AddrPortFrom(netip.IPv6Loopback(), uint16(s.Port)); got != want {
		t.Fatalf("got AddrPort %v, want %v", got, want)
	}
	// Only ::1 is served: nothing answers on 127.0.0.1 at the same port.
	if err := tftpProbe("127.0.0.1:" + strconv.Itoa(s.Port)); err == nil {
		t.Errorf("in.tftpd started on ::1 also answers on 127.0.0.1")
	}

	c, err := tftp.NewClient(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	wt, err := c.Receive("image.bin", "octet")
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	var got bytes.Buffer
	if _, err := wt.WriteTo(&got); err != nil {
		t.Fatalf("receive: %v", err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("got %d bytes, want %d identical bytes", got.Len(), len(want))
	}
	up := []byte("backup over ipv6\n")
	rf, err := c.Send("backup.txt", "octet")
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	if _, err := rf.ReadFrom(bytes.NewReader(up)); err != nil {
		t.Fatalf("send: %v", err)
	}
	if stored, err := os.ReadFile(filepath.Join(dir, "backup.txt")); err != nil || !bytes.Equal(stored, up) {
		t.Fatalf("got uploaded %q, %v; want %q", stored, err, up)
	}

	s.Stop()
	if err := tftpProbe(s.Addr()); err == nil {
		t.Fatalf("server still answers after Stop")
	}
}

func TestIPv6FTPServer(t *testing.T) {
	s := StartFTPOn(t, "::1", t.TempDir())
	if got, want := s.Addr(), "[::1]:"+strconv.Itoa(s.Port); got != want {
		t.Fatalf("got Addr %q, want %q", got, want)
	}
	if got, want := s.URL("/a.bin"), fmt.Sprintf("ftp://%s:%s@[::1]:%d/a.bin", FTPUser, FTPPassword, s.Port); got != want {
		t.Fatalf("got URL %q, want %q", got, want)
	}

	c, err := ftp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Quit()
	if err := c.Login(s.User, s.Password); err != nil {
		t.Fatalf("login: %v", err)
	}
	want := bytes.Repeat([]byte("signed-image-v6-"), 5000)
	s.WriteFile(t, "image.bin", want)
	r, err := c.Retr("image.bin")
	if err != nil {
		t.Fatalf("retr: %v\n%s", err, logTail(s.LogPath, tailLines))
	}
	got, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, %v; want %d identical bytes", len(got), err, len(want))
	}
	up := []byte("hostname iad-v6\n")
	if err := c.Stor("backup.cfg", bytes.NewReader(up)); err != nil {
		t.Fatalf("stor: %v\n%s", err, logTail(s.LogPath, tailLines))
	}
	if stored, err := os.ReadFile(filepath.Join(s.Dir, "backup.cfg")); err != nil || !bytes.Equal(stored, up) {
		t.Fatalf("got uploaded %q, %v; want %q", stored, err, up)
	}
}

func TestIPv6VsftpdConfigListensOnOneFamily(t *testing.T) {
	tests := []struct {
		host      string
		want      []string
		wantNotIn []string
	}{
		{"127.0.0.1",
			[]string{"listen=YES\n", "listen_ipv6=NO\n", "listen_address=127.0.0.1\n", "pasv_address=127.0.0.1\n"},
			[]string{"listen_address6=", "listen_ipv6=YES"}},
		{"::1",
			[]string{"listen=NO\n", "listen_ipv6=YES\n", "listen_address6=::1\n"},
			[]string{"listen=YES", "listen_address=", "pasv_address="}},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			conf := vsftpdConfig(netip.MustParseAddr(tt.host), 2121, 3000, 3007, "/srv", "/empty", "/log")
			for _, w := range append(tt.want, "listen_port=2121\n", "pasv_min_port=3000\n", "pasv_max_port=3007\n") {
				if !strings.Contains(conf, w) {
					t.Errorf("got config without %q, want it:\n%s", w, conf)
				}
			}
			for _, w := range tt.wantNotIn {
				if strings.Contains(conf, w) {
					t.Errorf("got config with %q, want none:\n%s", w, conf)
				}
			}
		})
	}
}

// fatalRecorder stands in for a test that is expected to fail: Fatalf
// records the message and ends the goroutine like testing.T does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestIPv6HostMustBeLoopback(t *testing.T) {
	for _, host := range []string{"10.0.0.1", "::", "0.0.0.0", "2001:db8::1", "fe80::1%lo", "localhost", ""} {
		t.Run(host, func(t *testing.T) {
			f := &fatalRecorder{TB: t}
			done := make(chan struct{})
			go func() {
				defer close(done)
				FreeTCPPortOn(f, host)
			}()
			<-done
			if !strings.Contains(f.msg, "not a loopback address") {
				t.Fatalf("got failure %q for host %q, want a refusal of a non-loopback address", f.msg, host)
			}
		})
	}
}
