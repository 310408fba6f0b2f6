package procedure

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iadsafe/iad-agent/cmd/iadms/internal/journal"
)

func (r *rig) runOn(t *testing.T, dev Device) journal.Run {
	t.Helper()
	rec, err := New(r.opts, dev, r.files, nil).Run(context.Background())
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return rec
}

// TestDeviceConverts: a device that publishes its configuration format
// gets the backup as it is and converts it itself; the image header is
// not consulted.
func TestDeviceConverts(t *testing.T) {
	r := newRig(t)
	r.opts.Image.ConfigFormat = 7 // ignored: the device says 2
	r.opts.Fallback = converterFunc(func(context.Context, uint32, uint32, string) error {
		t.Errorf("the station converted for a device that converts itself")
		return nil
	})
	rec := r.runOn(t, formatDevice{r.dev, 2})
	if rec.Status != journal.Succeeded || len(r.dev.restored) != 1 || !strings.HasSuffix(r.dev.restored[0], "-backup-1.tar") {
		t.Fatalf("got %s %q, restored %v", rec.Status, rec.Reason, r.dev.restored)
	}
	if !r.saw("the device converts the backup from configuration format 1 to 2") {
		t.Errorf("no word of the device's conversion")
	}
}

// TestStationConverterFirst: the operator's converter is used even when
// the device could convert.
func TestStationConverterFirst(t *testing.T) {
	r := newRig(t)
	r.opts.Converter = converterFunc(func(_ context.Context, from, to uint32, dir string) error {
		return os.WriteFile(filepath.Join(dir, "converted.conf"), []byte("by the station\n"), 0o644)
	})
	rec := r.runOn(t, formatDevice{r.dev, 2})
	if rec.Status != journal.Succeeded || len(r.dev.restored) != 1 || !strings.Contains(r.dev.restored[0], "-restore-1-format2.tar") {
		t.Fatalf("got %s %q, restored %v", rec.Status, rec.Reason, r.dev.restored)
	}
}

// TestNoConverter: a device without configuration formats, other formats,
// no converter: the restore fails and says why.
func TestNoConverter(t *testing.T) {
	r := newRig(t)
	r.opts.Image.ConfigFormat = 2
	rec := r.run(t)
	if rec.Status != journal.Failed || !strings.Contains(rec.Reason, "the device does not convert and no converter is configured") {
		t.Fatalf("got %s %q", rec.Status, rec.Reason)
	}
}

// TestMajorFormatChange: across a major format version the device wants
// iadOpForce: without consent the restore fails with the hint; with
// --force-convert, or the operator's yes to a forced retry, it goes.
func TestMajorFormatChange(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		r := newRig(t)
		r.dev.needsForce = true
		r.opts.Decider = Retries{N: 3}
		rec := r.runOn(t, formatDevice{r.dev, 3})
		if rec.Status != journal.Failed || !strings.Contains(rec.Reason, "restore failed: configMajorMismatch") ||
			!strings.Contains(rec.Reason, "--force-convert") || rec.Failures[journal.StepRestore] != 1 {
			t.Fatalf("got %s %q failures %v", rec.Status, rec.Reason, rec.Failures)
		}
	})
	t.Run("flag", func(t *testing.T) {
		r := newRig(t)
		r.dev.needsForce = true
		r.opts.ForceConvert = true
		rec := r.runOn(t, formatDevice{r.dev, 3})
		if rec.Status != journal.Succeeded || len(r.dev.restored) != 1 || !strings.HasSuffix(r.dev.restored[0], "+force") {
			t.Fatalf("got %s %q, restored %v", rec.Status, rec.Reason, r.dev.restored)
		}
	})
	t.Run("operator", func(t *testing.T) {
		r := newRig(t)
		r.dev.needsForce = true
		var asked string
		r.opts.Decider = Ask{Prompt: func(_ context.Context, q string) (bool, error) { asked = q; return true, nil }}
		rec := r.runOn(t, formatDevice{r.dev, 3})
		if rec.Status != journal.Succeeded || !rec.Force || len(r.dev.restored) != 1 || !strings.HasSuffix(r.dev.restored[0], "+force") {
			t.Fatalf("got %s %q force %v, restored %v", rec.Status, rec.Reason, rec.Force, r.dev.restored)
		}
		if !strings.Contains(asked, "Retry the restore, converting across the major version (iadOpForce)?") {
			t.Errorf("question: %q", asked)
		}
	})
}

// TestEncryptedBackup: a device that encrypts its backups: iadms cannot
// read the manifest, records that, and restores the archive as it is.
func TestEncryptedBackup(t *testing.T) {
	r := newRig(t)
	r.files.archive = append([]byte("IADBKENC\x01"), make([]byte, 200)...)
	r.opts.Converter = converterFunc(func(context.Context, uint32, uint32, string) error {
		t.Errorf("an encrypted backup was handed to the station's converter")
		return nil
	})
	rec := r.runOn(t, formatDevice{r.dev, 2})
	if rec.Status != journal.Succeeded || rec.Backup == nil || !rec.Backup.Encrypted || rec.Backup.Size != 209 {
		t.Fatalf("got %s %q backup %+v", rec.Status, rec.Reason, rec.Backup)
	}
	if !r.saw("the backup is encrypted; the device decrypts it") {
		t.Errorf("no word of the encrypted backup")
	}
}

func (r *rig) saw(text string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, u := range r.log {
		if strings.Contains(u.Text, text) {
			return true
		}
	}
	return false
}
