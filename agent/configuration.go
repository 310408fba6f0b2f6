package agent

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/iadsafe/iad-agent/agent/backupcrypt"
	"github.com/iadsafe/iad-agent/agent/config"
	"github.com/iadsafe/iad-agent/agent/migrate"
	"github.com/iadsafe/iad-agent/agent/snmp"
	"github.com/iadsafe/iad-agent/mib"
)

// ErrNoConfigKey reports an encrypted archive on a device without a key.
var ErrNoConfigKey = errors.New("agent: the archive is encrypted, but this device has no key (-config-key)")

const lastBackupFile = "config-last-backup.json"

// lastBackup is what iadConfigLastBackup* report; it survives restarts.
type lastBackup struct {
	Time   time.Time `json:"time"`
	SHA256 string    `json:"sha256"`
	Size   int64     `json:"size"`
}

// openConfig opens the configuration store and brings the live
// configuration to the running software's format: converted if it is
// older (the first start of an upgrade), or the one kept for this format
// if it is newer (a revert). A conversion that fails is logged and the
// configuration left as it was; the health check then holds back the
// commit of a trial boot (see configUsable).
func (a *Agent) openConfig(ctx context.Context) error {
	var err error
	if a.config, err = config.Open(ctx, config.Options{Root: filepath.Join(a.opts.DataDir, "config"), Logger: a.log}); err != nil {
		return err
	}
	var reloader migrate.Reloader
	if a.opts.ReloadCmd != "" {
		reloader = migrate.ShellReloader{Command: a.opts.ReloadCmd, Timeout: a.opts.ReloadTimeout}
	}
	if a.migrator, err = migrate.New(migrate.Options{Store: a.config, Reloader: reloader, Logger: a.log}); err != nil {
		return err
	}
	running := a.runningConfigFormat()
	res, err := a.migrator.AtStart(ctx, running)
	switch {
	case err != nil && ctx.Err() != nil:
		return err
	case err != nil:
		a.log.Error("the live configuration is not in the running software's format and was left as it is; restore a backup",
			"running_format", running, "err", err)
	case res.Converted:
		a.log.Info("configuration converted for the running software", "from", res.From, "to", res.To)
	case res.Applied:
		a.log.Info("configuration of the running format brought back", "from", res.From, "to", res.To)
	}
	if b, err := os.ReadFile(filepath.Join(a.opts.DataDir, lastBackupFile)); err == nil {
		var lb lastBackup
		if err := json.Unmarshal(b, &lb); err != nil {
			a.log.Warn("ignoring unreadable last-backup record", "err", err)
		} else {
			a.lastBackup = lb
		}
	}
	return nil
}

// configUsable reports whether the live configuration is in the format
// the running software uses.
func (a *Agent) configUsable() bool {
	f, err := a.migrator.LiveFormat()
	return err == nil && f == a.runningConfigFormat()
}

// sealBackup wraps the archive writer in encryption when the device has
// a key. The returned close finishes the encryption (a no-op without it).
func (a *Agent) sealBackup(w io.Writer) (io.Writer, func() error, error) {
	if a.opts.ConfigKey == nil {
		return w, func() error { return nil }, nil
	}
	cw, err := backupcrypt.NewWriter(w, *a.opts.ConfigKey)
	if err != nil {
		return nil, nil, err
	}
	return cw, cw.Close, nil
}

// openBackup returns the archive stream of a download: decrypted when
// the device has a key (which then accepts nothing else), refused when it
// is encrypted and the device has none.
func (a *Agent) openBackup(src io.Reader) (io.Reader, error) {
	br := bufio.NewReaderSize(src, 256)
	head, _ := br.Peek(len(backupcrypt.Magic))
	encrypted := backupcrypt.IsEncrypted(head)
	switch {
	case a.opts.ConfigKey != nil && encrypted:
		return backupcrypt.NewReader(br, *a.opts.ConfigKey)
	case a.opts.ConfigKey != nil:
		return nil, fmt.Errorf("%w: this device encrypts its backups and accepts only archives encrypted under its key", backupcrypt.ErrNotEncrypted)
	case encrypted:
		return nil, ErrNoConfigKey
	}
	return br, nil
}

// hashingReader counts and hashes what the upload reads.
type hashingReader struct {
	r io.Reader
	s hash.Hash
	n int64
}

func newHashingReader(r io.Reader) *hashingReader { return &hashingReader{r: r, s: sha256.New()} }

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	h.s.Write(p[:n])
	h.n += int64(n)
	return n, err
}

// recordBackup keeps what iadConfigLastBackup* report, durably.
func (a *Agent) recordBackup(h *hashingReader) {
	lb := lastBackup{Time: time.Now().UTC(), SHA256: hex.EncodeToString(h.s.Sum(nil)), Size: h.n}
	a.mu.Lock()
	a.lastBackup = lb
	a.mu.Unlock()
	b, _ := json.Marshal(lb)
	path := filepath.Join(a.opts.DataDir, lastBackupFile)
	if err := writeFileAtomic(path, b); err != nil {
		a.log.Warn("could not record the last backup", "err", err)
	}
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// configScalars serves the iadConfig group.
func (a *Agent) configScalars() *snmp.Scalars {
	lb := func() lastBackup {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.lastBackup
	}
	return snmp.NewScalars(mib.IadConfig, map[uint32]func(context.Context) (snmp.Value, error){
		last(mib.IadConfigFormat): func(context.Context) (snmp.Value, error) {
			return unsigned(uint64(a.runningConfigFormat())), nil
		},
		last(mib.IadConfigLiveFormat): func(context.Context) (snmp.Value, error) {
			f, err := a.migrator.LiveFormat()
			if err != nil {
				f = 0
			}
			return unsigned(uint64(f)), nil
		},
		last(mib.IadConfigLastBackupTime): func(context.Context) (snmp.Value, error) { return dateAndTime(lb().Time), nil },
		last(mib.IadConfigLastBackupDigest): func(context.Context) (snmp.Value, error) {
			d, err := hex.DecodeString(lb().SHA256)
			if err != nil || len(d) != sha256.Size {
				d = nil
			}
			return octets(d), nil
		},
		last(mib.IadConfigLastBackupSize): func(context.Context) (snmp.Value, error) {
			return unsigned(uint64(max(lb().Size, 0))), nil
		},
		last(mib.IadConfigBackupEncrypted): func(context.Context) (snmp.Value, error) {
			return truthValue(a.opts.ConfigKey != nil), nil
		},
	})
}
