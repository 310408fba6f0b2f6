package bank

import (
	"github.com/iadsafe/iad-agent/bank/internal/fsync"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// StateStore persists the boot state. Save must be atomic: after a power
// cut, Load returns either the previous or the new state, never a mix.
type StateStore interface {
	// Load returns the saved state, an error wrapping ErrNoState if none
	// was ever saved, or one wrapping ErrCorruptState if it cannot be
	// trusted.
	Load(ctx context.Context) (State, error)
	Save(ctx context.Context, s State) error
}

// FileStore is a StateStore kept as a JSON file.
type FileStore struct {
	path string
}

var _ StateStore = (*FileStore)(nil)

// NewFileStore returns a store for the file at path. Saves go through
// path+".tmp", which Load never reads.
func NewFileStore(path string) *FileStore { return &FileStore{path: path} }

// Load reads and checks the state file. A corrupt file is reported, never
// replaced: silently re-initialising could boot a bank that is not valid.
func (s *FileStore) Load(ctx context.Context) (State, error) {
	if err := ctx.Err(); err != nil {
		return State{}, err
	}
	data, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, fmt.Errorf("%w: %w", ErrNoState, err)
	}
	if err != nil {
		return State{}, fmt.Errorf("bank: loading state: %w", err)
	}
	// Check the version before decoding the rest, so that a future format
	// is reported as such rather than as whatever field fails first.
	var probe struct {
		Version *int `json:"version"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return State{}, fmt.Errorf("%w: %s: %w", ErrCorruptState, s.path, err)
	}
	if probe.Version == nil {
		return State{}, fmt.Errorf("%w: %s: no version field", ErrCorruptState, s.path)
	}
	if *probe.Version != stateVersion {
		return State{}, fmt.Errorf("%w: %s: version %d, want %d", ErrCorruptState, s.path, *probe.Version, stateVersion)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return State{}, fmt.Errorf("%w: %s: %w", ErrCorruptState, s.path, err)
	}
	if err := st.validate(); err != nil {
		return State{}, fmt.Errorf("%s: %w", s.path, err)
	}
	return st, nil
}

// Save writes the state to a temporary file, syncs it, renames it over the
// state file and syncs the directory, so that the rename itself survives a
// power cut.
func (s *FileStore) Save(ctx context.Context, st State) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := st.validate(); err != nil {
		return fmt.Errorf("bank: refusing to save: %w", err)
	}
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("bank: encoding state: %w", err)
	}
	data = append(data, '\n')
	tmp := s.path + ".tmp"
	if err := writeSync(tmp, data); err != nil {
		return fmt.Errorf("bank: saving state: %w", err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("bank: saving state: %w", err)
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil {
		return fmt.Errorf("bank: saving state: %w", err)
	}
	return nil
}

func writeSync(path string, data []byte) error { return fsync.WriteFile(path, data) }

func syncDir(dir string) error { return fsync.Dir(dir) }
