// Package fileserver is iadms's embedded TFTP server (pin/tftp): it serves
// upgrade images read-only and receives each device's configuration
// backups, write-once, so one iadms command does a whole upgrade on a
// laptop without any other server.
//
// It serves only names it was told about: a request's file name is looked
// up in an allow-list, never joined onto a directory, so no request can
// reach another file (no path traversal by construction). Images can only
// be read; a backup name can be written once, by the device it was issued
// to, up to a size limit, and is readable (for the restore) only by that
// device once complete. It must never overwrite a file: a completed backup
// is immutable, and an upload lands in a temporary file that is renamed
// into place only when whole.
package fileserver

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pin/tftp/v3"
)

// Errors. The TFTP client sees their text in the ERROR packet.
var (
	ErrNotServed   = errors.New("fileserver: no such file")
	ErrReadOnly    = errors.New("fileserver: file is read-only")
	ErrWriteOnce   = errors.New("fileserver: backup already written")
	ErrWrongDevice = errors.New("fileserver: file belongs to another device")
	ErrTooLarge    = errors.New("fileserver: upload exceeds the size limit")
	ErrBadName     = errors.New("fileserver: bad name")
	ErrListen      = errors.New("fileserver: cannot listen")
)

// Options configure a Server.
type Options struct {
	// Listen is the UDP address to serve on, e.g. "127.0.0.1:6969".
	Listen string
	// Advertise is the address devices are told to use; default the
	// bound address, which must then not be unspecified (0.0.0.0, ::).
	Advertise netip.AddrPort
	// BackupDir holds the backups: BackupDir/<device>/<file>.
	BackupDir string
	// MaxBackupSize bounds one backup (default 64 MiB, the agent's own
	// archive limit).
	MaxBackupSize int64
	// Timeout and Retries are per TFTP packet (default 5s and 5).
	Timeout time.Duration
	Retries int
	Logger  *slog.Logger
}

// Server is a running embedded TFTP server.
type Server struct {
	opts Options
	log  *slog.Logger
	srv  *tftp.Server
	conn *net.UDPConn
	adv  netip.AddrPort
	done chan struct{}

	mu      sync.Mutex
	reads   map[string]readable
	writes  map[string]*writable
	images  map[string]imageKey
	reads64 atomic.Int64
}

// imageKey remembers an image's name while its file is unchanged, so a
// fleet does not hash the same image once per device.
type imageKey struct {
	size  int64
	mtime time.Time
	name  string
}

type readable struct {
	path string
	// device restricts reading to one device's address; invalid = anyone.
	device netip.Addr
}

type writable struct {
	path   string
	device netip.Addr
	busy   bool
	done   bool
}

// Start binds and serves until Close.
func Start(opts Options) (*Server, error) {
	if opts.MaxBackupSize <= 0 {
		opts.MaxBackupSize = 64 << 20
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Retries <= 0 {
		opts.Retries = 5
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.BackupDir == "" {
		return nil, fmt.Errorf("fileserver: Options.BackupDir is empty")
	}
	if err := os.MkdirAll(opts.BackupDir, 0o700); err != nil {
		return nil, fmt.Errorf("fileserver: %w", err)
	}
	ua, err := net.ResolveUDPAddr("udp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrListen, opts.Listen, err)
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrListen, opts.Listen, err)
	}
	adv := opts.Advertise
	if !adv.IsValid() {
		adv = conn.LocalAddr().(*net.UDPAddr).AddrPort()
		adv = netip.AddrPortFrom(adv.Addr().Unmap(), adv.Port())
		if adv.Addr().IsUnspecified() {
			conn.Close()
			return nil, fmt.Errorf("%w: %s is unspecified; give the address devices should use", ErrListen, opts.Listen)
		}
	}
	s := &Server{
		opts: opts, log: opts.Logger, conn: conn, adv: adv, done: make(chan struct{}),
		reads: map[string]readable{}, writes: map[string]*writable{}, images: map[string]imageKey{},
	}
	s.srv = tftp.NewServer(s.handleRead, s.handleWrite)
	s.srv.SetTimeout(opts.Timeout)
	s.srv.SetRetries(opts.Retries)
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(conn); err != nil {
			s.log.Error("tftp server stopped", "err", err)
		}
	}()
	return s, nil
}

// Addr is the address devices are told to use.
func (s *Server) Addr() netip.AddrPort { return s.adv }

// Close stops serving and waits for transfers under way.
func (s *Server) Close() {
	s.srv.Shutdown()
	<-s.done
}

var (
	// deviceRE is the device-name part of backup paths.
	deviceRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	// fileRE is a backup or image file name (no directories).
	fileRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$`)
)

// AddImage makes the image at path readable by every device and returns
// the name to request it by: "img/<first 12 hex of its SHA-256>/<base>",
// so two images with one base name never collide and a changed file gets
// a new name.
func (s *Server) AddImage(path string) (string, error) {
	base := filepath.Base(path)
	if !fileRE.MatchString(base) {
		return "", fmt.Errorf("%w: image file name %q: letters, digits, '.', '_', '+', '-' only", ErrBadName, base)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("fileserver: %w", err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("fileserver: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%w: %s is not a regular file", ErrBadName, abs)
	}
	s.mu.Lock()
	k, ok := s.images[abs]
	s.mu.Unlock()
	if ok && k.size == fi.Size() && k.mtime.Equal(fi.ModTime()) {
		return k.name, nil
	}
	sum, err := fileSHA256(abs)
	if err != nil {
		return "", err
	}
	name := "img/" + sum[:12] + "/" + base
	s.mu.Lock()
	s.reads[name] = readable{path: abs}
	s.images[abs] = imageKey{size: fi.Size(), mtime: fi.ModTime(), name: name}
	s.mu.Unlock()
	return name, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("fileserver: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("fileserver: read %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// BackupName is the request name of a device's backup file.
func BackupName(device, file string) string { return "cfg/" + device + "/" + file }

// BackupPath is where a device's backup file is stored.
func (s *Server) BackupPath(device, file string) string {
	return filepath.Join(s.opts.BackupDir, device, file)
}

func checkBackup(device, file string) error {
	if !deviceRE.MatchString(device) {
		return fmt.Errorf("%w: device %q", ErrBadName, device)
	}
	if !fileRE.MatchString(file) {
		return fmt.Errorf("%w: file %q", ErrBadName, file)
	}
	return nil
}

// ExpectBackup lets the device at from upload file once and returns the
// name to give it. A file already stored under that name is ErrWriteOnce.
func (s *Server) ExpectBackup(device, file string, from netip.Addr) (string, error) {
	if err := checkBackup(device, file); err != nil {
		return "", err
	}
	path := s.BackupPath(device, file)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("fileserver: %w", err)
	}
	name := BackupName(device, file)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := os.Lstat(path); err == nil {
		return "", fmt.Errorf("%w: %s", ErrWriteOnce, name)
	}
	s.writes[name] = &writable{path: path, device: from.Unmap()}
	return name, nil
}

// PublishBackup lets the device at from read a stored backup (for a
// restore) and returns the name to give it.
func (s *Server) PublishBackup(device, file string, from netip.Addr) (string, error) {
	if err := checkBackup(device, file); err != nil {
		return "", err
	}
	path := s.BackupPath(device, file)
	if fi, err := os.Lstat(path); err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%w: %s is not a stored backup", ErrNotServed, path)
	}
	name := BackupName(device, file)
	s.mu.Lock()
	s.reads[name] = readable{path: path, device: from.Unmap()}
	s.mu.Unlock()
	return name, nil
}

// StoreBackup writes a backup made by iadms itself (a converted one),
// write-once like an upload.
func (s *Server) StoreBackup(device, file string, r io.Reader) error {
	if err := checkBackup(device, file); err != nil {
		return err
	}
	path := s.BackupPath(device, file)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("fileserver: %w", err)
	}
	_, err := writeOnce(path, readerWriterTo{r}, s.opts.MaxBackupSize)
	return err
}

func remoteAddr(v any) netip.Addr {
	type remote interface{ RemoteAddr() net.UDPAddr }
	if r, ok := v.(remote); ok {
		a := r.RemoteAddr()
		return a.AddrPort().Addr().Unmap()
	}
	return netip.Addr{}
}

func (s *Server) handleRead(name string, rf io.ReaderFrom) error {
	from := remoteAddr(rf)
	s.mu.Lock()
	r, ok := s.reads[name]
	s.mu.Unlock()
	if !ok {
		s.log.Warn("tftp read refused", "file", name, "from", from, "reason", "not served")
		return fmt.Errorf("%w: %s", ErrNotServed, name)
	}
	if r.device.IsValid() && r.device != from {
		s.log.Warn("tftp read refused", "file", name, "from", from, "reason", "another device's file")
		return fmt.Errorf("%w: %s", ErrWrongDevice, name)
	}
	f, err := os.Open(r.path)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrNotServed, name)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil {
		if ot, ok := rf.(tftp.OutgoingTransfer); ok {
			ot.SetSize(fi.Size())
		}
	}
	n, err := rf.ReadFrom(f)
	s.reads64.Add(n)
	if err != nil {
		s.log.Warn("tftp read failed", "file", name, "from", from, "bytes", n, "err", err)
		return err
	}
	s.log.Debug("tftp read", "file", name, "from", from, "bytes", n)
	return nil
}

func (s *Server) handleWrite(name string, wt io.WriterTo) error {
	from := remoteAddr(wt)
	s.mu.Lock()
	w, ok := s.writes[name]
	var refuse error
	switch {
	case !ok:
		if _, readable := s.reads[name]; readable {
			refuse = fmt.Errorf("%w: %s", ErrReadOnly, name)
		} else {
			refuse = fmt.Errorf("%w: %s", ErrNotServed, name)
		}
	case w.device.IsValid() && w.device != from:
		refuse = fmt.Errorf("%w: %s", ErrWrongDevice, name)
	case w.done || w.busy:
		refuse = fmt.Errorf("%w: %s", ErrWriteOnce, name)
	default:
		w.busy = true
	}
	s.mu.Unlock()
	if refuse != nil {
		s.log.Warn("tftp write refused", "file", name, "from", from, "err", refuse)
		return refuse
	}
	if it, ok := wt.(tftp.IncomingTransfer); ok {
		if n, ok := it.Size(); ok && n > s.opts.MaxBackupSize {
			s.finishWrite(name, w, false)
			return fmt.Errorf("%w: %d bytes announced, limit %d", ErrTooLarge, n, s.opts.MaxBackupSize)
		}
	}
	n, err := writeOnce(w.path, wt, s.opts.MaxBackupSize)
	s.finishWrite(name, w, err == nil)
	if err != nil {
		s.log.Warn("tftp backup upload failed", "file", name, "from", from, "bytes", n, "err", err)
		return err
	}
	s.log.Info("backup received", "file", name, "from", from, "bytes", n)
	return nil
}

// finishWrite closes an upload: a complete one can never be written
// again; a failed one may be retried by its device.
func (s *Server) finishWrite(name string, w *writable, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w.busy = false
	if ok {
		w.done = true
		delete(s.writes, name)
	}
}

// limitWriter fails once more than max bytes arrive.
type limitWriter struct {
	w   io.Writer
	n   int64
	max int64
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n+int64(len(p)) > l.max {
		return 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, l.max)
	}
	n, err := l.w.Write(p)
	l.n += int64(n)
	return n, err
}

// writeOnce streams src into a temporary file beside path, syncs it and
// links it into place; an existing path is never replaced.
func writeOnce(path string, src io.WriterTo, max int64) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".upload-*")
	if err != nil {
		return 0, fmt.Errorf("fileserver: %w", err)
	}
	defer os.Remove(tmp.Name())
	lw := &limitWriter{w: tmp, max: max}
	n, err := src.WriteTo(lw)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, err
	}
	// Link refuses an existing target, where rename would replace it.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, os.ErrExist) {
			return n, fmt.Errorf("%w: %s", ErrWriteOnce, filepath.Base(path))
		}
		return n, fmt.Errorf("fileserver: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return n, nil
}

// readerWriterTo adapts an io.Reader to io.WriterTo for writeOnce.
type readerWriterTo struct{ io.Reader }

func (r readerWriterTo) WriteTo(w io.Writer) (int64, error) { return io.Copy(w, r.Reader) }

// Served is the number of image and backup bytes sent so far.
func (s *Server) Served() int64 { return s.reads64.Load() }
