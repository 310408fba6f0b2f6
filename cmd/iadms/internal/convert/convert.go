// Package convert is the management station's side of restoring a
// configuration backup under software that expects another configuration
// format (the method's "format modification"): it tells which format the
// new software expects, and converts a backup archive from one format to
// another by running a converter over the extracted files and packing
// them again with a fresh manifest.
//
// Where the target format comes from is a seam (FormatSource): an agent
// that publishes its running format (iadConfigFormat.0) is asked first,
// and converts restores itself; for agents without it the signed image's
// header says (ImageFormat). The converter is a seam too: an operator's
// program (Command), the operator by hand (Manual), or anything else.
//
// Archives are unpacked and packed by agent/config, the same code the
// device uses, so every archive iadms makes is one the device accepts and
// no name in an archive can escape the working directory. The package
// must never modify its input archive.
package convert

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/iadsafe/iad-agent/agent/config"
	"github.com/iadsafe/iad-agent/image"
)

// Errors.
var (
	// ErrNoConverter means the formats differ and nothing can convert.
	ErrNoConverter = errors.New("convert: no converter for this format change")
	// ErrConverter means the converter failed.
	ErrConverter = errors.New("convert: converter failed")
	// ErrDeclined means the operator did not confirm a manual conversion.
	ErrDeclined = errors.New("convert: operator declined")
	// ErrArchive means the backup archive cannot be read or packed.
	ErrArchive = errors.New("convert: bad archive")
)

// FormatSource tells which configuration format the software a device
// runs after the upgrade expects.
type FormatSource interface {
	TargetFormat(ctx context.Context) (uint32, error)
}

// ImageFormat is the format recorded in the upgrade image's header.
type ImageFormat struct{ Header image.Header }

// TargetFormat returns the header's config-format version.
func (f ImageFormat) TargetFormat(context.Context) (uint32, error) {
	return f.Header.ConfigFormat, nil
}

// Converter rewrites, in place, the configuration files in dir from
// format from to format to.
type Converter interface {
	Convert(ctx context.Context, from, to uint32, dir string) error
}

// Command runs an operator's conversion program: Argv followed by FROM,
// TO and DIR. It must rewrite the files under DIR and exit 0.
type Command struct {
	Argv    []string
	Timeout time.Duration // default 5 minutes
	Logger  *slog.Logger
}

// Convert runs the program.
func (c Command) Convert(ctx context.Context, from, to uint32, dir string) error {
	if len(c.Argv) == 0 {
		return fmt.Errorf("%w: empty command", ErrConverter)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	args := append(append([]string{}, c.Argv[1:]...), strconv.FormatUint(uint64(from), 10), strconv.FormatUint(uint64(to), 10), dir)
	cmd := exec.CommandContext(ctx, c.Argv[0], args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if c.Logger != nil {
		c.Logger.Info("converter ran", "command", c.Argv[0], "from", from, "to", to, "err", err)
	}
	if err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 200 {
			msg = msg[len(msg)-200:]
		}
		return fmt.Errorf("%w: %s %d %d: %w: %s", ErrConverter, filepath.Base(c.Argv[0]), from, to, err, msg)
	}
	return nil
}

// Manual asks the operator to edit the files and confirm.
type Manual struct {
	// Ask shows the question and returns the operator's answer.
	Ask func(ctx context.Context, question string) (bool, error)
}

// Convert waits for the operator.
func (m Manual) Convert(ctx context.Context, from, to uint32, dir string) error {
	ok, err := m.Ask(ctx, fmt.Sprintf("The backup holds configuration format %d; the new software expects format %d.\n"+
		"Edit the files under %s for format %d now. Restore the edited configuration?", from, to, dir, to))
	if err != nil {
		return err
	}
	if !ok {
		return ErrDeclined
	}
	return nil
}

// ReadManifest returns the manifest of a backup archive (its first entry).
func ReadManifest(r io.Reader) (config.Manifest, error) {
	tr := tar.NewReader(r)
	hdr, err := tr.Next()
	if err != nil {
		return config.Manifest{}, fmt.Errorf("%w: %w", ErrArchive, err)
	}
	if hdr.Name != config.ManifestName {
		return config.Manifest{}, fmt.Errorf("%w: first entry is %q, not %s", ErrArchive, hdr.Name, config.ManifestName)
	}
	var m config.Manifest
	if err := json.NewDecoder(io.LimitReader(tr, 4<<20)).Decode(&m); err != nil {
		return config.Manifest{}, fmt.Errorf("%w: manifest: %w", ErrArchive, err)
	}
	return m, nil
}

// Plan says what Archive makes of a backup.
type Plan struct {
	From, To uint32
	// Version is recorded as the software version in the new manifest.
	Version string
}

// Archive verifies the backup in src, converts its files with conv in a
// directory under work, and writes the converted archive to dst. src is
// read once, whole; nothing is left under work.
func Archive(ctx context.Context, src io.Reader, dst io.Writer, p Plan, conv Converter, work string) (config.Manifest, error) {
	if conv == nil {
		return config.Manifest{}, fmt.Errorf("%w: format %d to %d", ErrNoConverter, p.From, p.To)
	}
	dir, err := os.MkdirTemp(work, "convert-")
	if err != nil {
		return config.Manifest{}, fmt.Errorf("%w: %w", ErrArchive, err)
	}
	defer os.RemoveAll(dir)
	store, err := config.Open(ctx, config.Options{Root: filepath.Join(dir, "store")})
	if err != nil {
		return config.Manifest{}, fmt.Errorf("%w: %w", ErrArchive, err)
	}
	staged, err := store.Stage(ctx, src)
	if err != nil {
		return config.Manifest{}, fmt.Errorf("%w: %w", ErrArchive, err)
	}
	if got := staged.Manifest().ConfigFormat; got != p.From {
		staged.Discard()
		return config.Manifest{}, fmt.Errorf("%w: backup is format %d, expected %d", ErrArchive, got, p.From)
	}
	if err := staged.Apply(ctx); err != nil {
		return config.Manifest{}, fmt.Errorf("%w: %w", ErrArchive, err)
	}
	live, err := filepath.EvalSymlinks(store.LiveDir())
	if err != nil {
		return config.Manifest{}, fmt.Errorf("%w: %w", ErrArchive, err)
	}
	if err := conv.Convert(ctx, p.From, p.To, live); err != nil {
		return config.Manifest{}, err
	}
	_, m, err := store.Backup(ctx, dst, config.BackupMeta{SoftwareVersion: p.Version, ConfigFormat: p.To})
	if err != nil {
		return config.Manifest{}, fmt.Errorf("%w: packing the converted configuration: %w", ErrConverter, err)
	}
	return m, nil
}
