package fileserver

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/iadsafe/iad-agent/agent/transfer"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/creds"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/procedure"
	"github.com/iadsafe/iad-agent/mib"
)

// Files is the embedded Server as a procedure.Files: devices use it over
// TFTP, iadms reads and writes its backup directory directly.
type Files struct{ *Server }

var _ procedure.Files = Files{}

// Location is the embedded server over TFTP.
func (f Files) Location() procedure.Location {
	return procedure.Location{Protocol: mib.ProtocolTFTP, Server: f.adv}
}

// ImageName serves the image at path (see AddImage).
func (f Files) ImageName(_ context.Context, path string) (string, error) { return f.AddImage(path) }

func (f Files) ExpectBackup(_ context.Context, device, file string, from netip.Addr) (string, error) {
	return f.Server.ExpectBackup(device, file, from)
}

// OpenBackup opens a stored backup.
func (f Files) OpenBackup(_ context.Context, device, file string) (io.ReadCloser, error) {
	if err := checkBackup(device, file); err != nil {
		return nil, err
	}
	fh, err := os.Open(f.BackupPath(device, file))
	if err != nil {
		return nil, fmt.Errorf("fileserver: %w", err)
	}
	return fh, nil
}

func (f Files) StoreBackup(_ context.Context, device, file string, r io.Reader) error {
	return f.Server.StoreBackup(device, file, r)
}

func (f Files) PublishBackup(_ context.Context, device, file string, from netip.Addr) (string, error) {
	return f.Server.PublishBackup(device, file, from)
}

// Embedded is true: iadms itself serves the files.
func (f Files) Embedded() bool { return true }

// Remote is an external TFTP or FTP server the devices and iadms both
// reach: images must already be on it; backups are written to it by the
// devices and read (for conversion) and written (converted) by iadms.
type Remote struct {
	Protocol mib.Protocol
	Server   netip.AddrPort
	// Login is the FTP account (zero for TFTP).
	Login creds.Entry
	// Images maps local image paths to their names on the server; an
	// image not listed is expected under its base name.
	Images map[string]string
	// Prefix is prepended to backup names ("iadms/" puts them in a
	// directory the server must already have).
	Prefix string
	// Timeout is the transfer inactivity timeout (default 5s).
	Timeout time.Duration
	// Work holds downloaded backups while they are read.
	Work string
}

var _ procedure.Files = (*Remote)(nil)

func (r *Remote) Location() procedure.Location {
	return procedure.Location{Protocol: r.Protocol, Server: r.Server, User: r.Login.User, Password: r.Login.Password}
}

func (r *Remote) ImageName(_ context.Context, path string) (string, error) {
	if n, ok := r.Images[path]; ok {
		return n, nil
	}
	return filepath.Base(path), nil
}

func (r *Remote) name(device, file string) (string, error) {
	if err := checkBackup(device, file); err != nil {
		return "", err
	}
	return r.Prefix + device + "-" + file, nil
}

func (r *Remote) ExpectBackup(_ context.Context, device, file string, _ netip.Addr) (string, error) {
	return r.name(device, file)
}

func (r *Remote) PublishBackup(_ context.Context, device, file string, _ netip.Addr) (string, error) {
	return r.name(device, file)
}

func (r *Remote) Embedded() bool { return false }

func (r *Remote) request(file string) transfer.Request {
	return transfer.Request{
		Protocol: transfer.Protocol(r.Protocol), Server: r.Server, File: file,
		User: r.Login.User, Password: r.Login.Password.Reveal(), Timeout: r.Timeout,
	}
}

// OpenBackup downloads the backup into a temporary file, removed on Close.
func (r *Remote) OpenBackup(ctx context.Context, device, file string) (io.ReadCloser, error) {
	name, err := r.name(device, file)
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(r.Work, "backup-*")
	if err != nil {
		return nil, fmt.Errorf("fileserver: %w", err)
	}
	os.Remove(tmp.Name()) // the open descriptor keeps it
	if _, err := transfer.Download(ctx, r.request(name), tmp, transfer.Hooks{}); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("fileserver: fetching %s: %w", name, err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("fileserver: %w", err)
	}
	return tmp, nil
}

// StoreBackup uploads a backup made by iadms.
func (r *Remote) StoreBackup(ctx context.Context, device, file string, rd io.Reader) error {
	name, err := r.name(device, file)
	if err != nil {
		return err
	}
	if _, err := transfer.Upload(ctx, r.request(name), rd, -1, transfer.Hooks{}); err != nil {
		return fmt.Errorf("fileserver: storing %s: %w", name, err)
	}
	return nil
}
