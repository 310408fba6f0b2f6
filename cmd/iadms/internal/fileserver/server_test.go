package fileserver

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pin/tftp/v3"
)

var loop = netip.MustParseAddr("127.0.0.1")

func start(t *testing.T, max int64) *Server {
	t.Helper()
	s, err := Start(Options{Listen: "127.0.0.1:0", BackupDir: filepath.Join(t.TempDir(), "backups"), MaxBackupSize: max, Timeout: time.Second, Retries: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func client(t *testing.T, s *Server) *tftp.Client {
	t.Helper()
	c, err := tftp.NewClient(s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetTimeout(time.Second)
	c.SetRetries(2)
	return c
}

func get(c *tftp.Client, name string) ([]byte, error) {
	wt, err := c.Receive(name, "octet")
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	_, err = wt.WriteTo(&b)
	return b.Bytes(), err
}

func put(c *tftp.Client, name string, data []byte) error {
	rf, err := c.Send(name, "octet")
	if err != nil {
		return err
	}
	_, err = rf.ReadFrom(bytes.NewReader(data))
	return err
}

func TestImagesAreReadOnly(t *testing.T) {
	s := start(t, 0)
	img := filepath.Join(t.TempDir(), "v2.img")
	data := bytes.Repeat([]byte("image-"), 5000)
	if err := os.WriteFile(img, data, 0o644); err != nil {
		t.Fatal(err)
	}
	name, err := s.AddImage(img)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(name, "img/") || !strings.HasSuffix(name, "/v2.img") {
		t.Fatalf("image name %q", name)
	}
	if again, _ := s.AddImage(img); again != name {
		t.Errorf("the same image got a second name %q", again)
	}
	c := client(t, s)
	got, err := get(c, name)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read image: %d bytes, %v", len(got), err)
	}
	if err := put(c, name, []byte("overwrite")); err == nil || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("writing an image: got %v, want read-only", err)
	}
	if b, _ := os.ReadFile(img); !bytes.Equal(b, data) {
		t.Errorf("the image changed")
	}
}

// TestOnlyServedNames: whatever the name, only the allow-list is served;
// no path reaches another file.
func TestOnlyServedNames(t *testing.T) {
	s := start(t, 0)
	secret := filepath.Join(s.opts.BackupDir, "secret")
	os.WriteFile(secret, []byte("secret"), 0o600)
	c := client(t, s)
	for _, name := range []string{
		"secret", "/etc/passwd", "../../../../etc/passwd", "img/../secret", "cfg/../secret",
		"cfg/dev/../../secret", "cfg/dev/x.tar", secret, "",
	} {
		if b, err := get(c, name); err == nil {
			t.Errorf("read %q: got %d bytes, want a refusal", name, len(b))
		}
		if err := put(c, name, []byte("x")); err == nil {
			t.Errorf("write %q: accepted, want a refusal", name)
		}
	}
	if _, err := s.AddImage(filepath.Join(t.TempDir(), "bad name.img")); !errors.Is(err, ErrBadName) {
		t.Errorf("image with a space: got %v, want ErrBadName", err)
	}
	for _, tc := range [][2]string{{"../x", "f.tar"}, {"dev", "../f.tar"}, {"dev", "a/b.tar"}, {"", "f.tar"}, {"dev", ""}} {
		if _, err := s.ExpectBackup(tc[0], tc[1], loop); !errors.Is(err, ErrBadName) {
			t.Errorf("ExpectBackup(%q, %q): got %v, want ErrBadName", tc[0], tc[1], err)
		}
	}
}

func TestBackupWriteOnce(t *testing.T) {
	s := start(t, 0)
	f := Files{s}
	name, err := s.ExpectBackup("dev1", "run-backup-1.tar", loop)
	if err != nil {
		t.Fatal(err)
	}
	c := client(t, s)
	data := bytes.Repeat([]byte("config"), 3000)
	// Not readable before it exists and is published.
	if _, err := get(c, name); err == nil {
		t.Errorf("read before the upload: want a refusal")
	}
	if err := put(c, name, data); err != nil {
		t.Fatalf("upload: %v", err)
	}
	if err := put(c, name, []byte("again")); err == nil {
		t.Errorf("second upload accepted, want write-once")
	}
	if _, err := s.ExpectBackup("dev1", "run-backup-1.tar", loop); !errors.Is(err, ErrWriteOnce) {
		t.Errorf("ExpectBackup of a stored file: got %v, want ErrWriteOnce", err)
	}
	if err := s.StoreBackup("dev1", "run-backup-1.tar", strings.NewReader("x")); !errors.Is(err, ErrWriteOnce) {
		t.Errorf("StoreBackup over a stored file: got %v, want ErrWriteOnce", err)
	}
	rc, err := f.OpenBackup(context.Background(), "dev1", "run-backup-1.tar")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, data) {
		t.Fatalf("stored backup differs: %d bytes", len(got))
	}
	if _, err := get(c, name); err == nil {
		t.Errorf("read before PublishBackup: want a refusal")
	}
	if _, err := f.PublishBackup(context.Background(), "dev1", "run-backup-1.tar", loop); err != nil {
		t.Fatal(err)
	}
	if got, err := get(c, name); err != nil || !bytes.Equal(got, data) {
		t.Errorf("read after publish: %d bytes, %v", len(got), err)
	}
	// Only the device's own address may read or write its files.
	if msg := rawRequest(t, s, 1, name); !strings.Contains(msg, "another device") {
		t.Errorf("read from another address: got %q", msg)
	}
	other, _ := s.ExpectBackup("dev1", "run-backup-2.tar", loop)
	if msg := rawRequest(t, s, 2, other); !strings.Contains(msg, "another device") {
		t.Errorf("write from another address: got %q", msg)
	}
	leftovers(t, s)
}

func TestBackupSizeLimit(t *testing.T) {
	s := start(t, 4096)
	name, err := s.ExpectBackup("dev1", "big.tar", loop)
	if err != nil {
		t.Fatal(err)
	}
	c := client(t, s)
	if err := put(c, name, make([]byte, 20000)); err == nil || !strings.Contains(err.Error(), "size limit") {
		t.Errorf("oversized upload: got %v, want the size limit", err)
	}
	if _, err := os.Stat(s.BackupPath("dev1", "big.tar")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an oversized upload left a file: %v", err)
	}
	// The device may try again (the name is not used up by a failure).
	if err := put(c, name, make([]byte, 4000)); err != nil {
		t.Errorf("upload within the limit after a refused one: %v", err)
	}
	leftovers(t, s)
}

func TestUnspecifiedListenNeedsAdvertise(t *testing.T) {
	_, err := Start(Options{Listen: "0.0.0.0:0", BackupDir: t.TempDir()})
	if !errors.Is(err, ErrListen) {
		t.Fatalf("got %v, want ErrListen", err)
	}
	s, err := Start(Options{Listen: "0.0.0.0:0", BackupDir: t.TempDir(), Advertise: netip.MustParseAddrPort("127.0.0.1:69")})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// leftovers fails if an upload's temporary file remains.
func leftovers(t *testing.T, s *Server) {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(s.opts.BackupDir, "*", ".upload-*"))
	if len(m) > 0 {
		t.Errorf("temporary files left: %v", m)
	}
}

// rawRequest sends an RRQ (op 1) or WRQ (op 2) from 127.0.0.2, another
// device's address, and returns the ERROR message of the answer.
func rawRequest(t *testing.T, s *Server, op uint16, name string) string {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pkt := binary.BigEndian.AppendUint16(nil, op)
	pkt = append(pkt, name+"\x00octet\x00"...)
	if _, err := c.WriteToUDPAddrPort(pkt, s.Addr()); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		buf := make([]byte, 1024)
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no answer to request %d for %s: %v", op, name, err)
		}
		if n >= 4 && binary.BigEndian.Uint16(buf) == 5 {
			return strings.TrimRight(string(buf[4:n]), "\x00")
		}
		if n >= 4 && binary.BigEndian.Uint16(buf) == 4 && op == 2 {
			return "accepted"
		}
	}
}
