package itest

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/jlaffaye/ftp"
)

func TestFTPServerLoginUploadDownload(t *testing.T) {
	dir := t.TempDir()
	want := bytes.Repeat([]byte("signed-image-"), 10000)
	if err := os.WriteFile(filepath.Join(dir, "image.bin"), want, 0o600); err != nil {
		t.Fatal(err)
	}
	s := StartFTP(t, dir)

	c, err := ftp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Quit()
	if err := c.Login(s.User, s.Password); err != nil {
		t.Fatalf("login: %v", err)
	}

	up := []byte("hostname iad-1\n")
	if err := c.Stor("backup.cfg", bytes.NewReader(up)); err != nil {
		t.Fatalf("stor: %v\n%s", err, logTail(s.LogPath, tailLines))
	}
	stored, err := os.ReadFile(filepath.Join(dir, "backup.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored, up) {
		t.Fatalf("got uploaded %q, want %q", stored, up)
	}

	r, err := c.Retr("image.bin")
	if err != nil {
		t.Fatalf("retr: %v\n%s", err, logTail(s.LogPath, tailLines))
	}
	got, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("retr: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, want %d identical bytes", len(got), len(want))
	}

	later := []byte("written after start")
	s.WriteFile(t, "sub/later.bin", later)
	r, err = c.Retr("sub/later.bin")
	if err != nil {
		t.Fatalf("retr: %v", err)
	}
	got, err = io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil || !bytes.Equal(got, later) {
		t.Fatalf("got %q, %v; want %q", got, err, later)
	}
}
