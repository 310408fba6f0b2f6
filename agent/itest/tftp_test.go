package itest

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/pin/tftp/v3"
)

func TestTFTPServerServesAndAcceptsFiles(t *testing.T) {
	dir := t.TempDir()
	want := bytes.Repeat([]byte("iad-image-block-"), 700) // several 512-byte blocks
	// 0600 on purpose: the server must serve files whatever their mode.
	if err := os.WriteFile(filepath.Join(dir, "image.bin"), want, 0o600); err != nil {
		t.Fatal(err)
	}
	s := StartTFTP(t, dir, true)

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

	up := []byte("backup of the device configuration\n")
	rf, err := c.Send("config-backup.txt", "octet")
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	if _, err := rf.ReadFrom(bytes.NewReader(up)); err != nil {
		t.Fatalf("send: %v", err)
	}
	stored, err := os.ReadFile(filepath.Join(dir, "config-backup.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored, up) {
		t.Fatalf("got uploaded %q, want %q", stored, up)
	}

	s.Stop()
	s.Stop() // idempotent
	if err := tftpProbe(s.Addr()); err == nil {
		t.Fatalf("server still answers after Stop")
	}
}
