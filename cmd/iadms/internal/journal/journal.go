// Package journal keeps iadms's record of each device's upgrade run in a
// bbolt file, so that an iadms killed mid-run resumes, when started again,
// at the step where it stopped rather than from scratch.
//
// A procedure writes its intent before acting (the operation index before
// the SET that creates the row, the device's boot time before a reset), so
// a restarted iadms can tell by reading the device whether the action
// happened. Records are versioned JSON with steps and states written out
// as strings. The journal must never hold a secret: it names credentials
// entries, never their contents.
package journal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
)

// RecordVersion is the layout of the JSON records written now.
const RecordVersion = 1

var (
	// ErrLocked means another iadms holds the journal.
	ErrLocked = errors.New("journal: locked by another iadms")
	// ErrCorrupt means a record cannot be decoded.
	ErrCorrupt = errors.New("journal: corrupt record")
)

var (
	bucketRuns    = []byte("runs")    // device name -> current (latest) Run
	bucketHistory = []byte("history") // device name + "/" + run ID -> finished Run
)

// Step names, in the order of the method. They are stored as strings.
type Step string

const (
	StepPreflight Step = "preflight"
	StepBackup    Step = "backup"
	StepUpgrade   Step = "upgrade"
	StepReset     Step = "reset"
	StepBoot      Step = "boot"
	StepCommit    Step = "commit"
	StepRestore   Step = "restore"
	StepRevert    Step = "revert"
	StepDone      Step = "done"
)

// Status is a run's outcome so far.
type Status string

const (
	Running   Status = "running"
	Succeeded Status = "succeeded"
	Failed    Status = "failed"
	// Stopped means the operator declined a retry.
	Stopped Status = "stopped"
	// UpToDate means the device already ran the target version.
	UpToDate Status = "up-to-date"
)

// Finished reports whether the run has ended.
func (s Status) Finished() bool { return s != Running && s != "" }

// Image identifies the software a run installs.
type Image struct {
	Path         string `json:"path"`
	Name         string `json:"name"` // as the device requests it
	Version      string `json:"version"`
	ConfigFormat uint32 `json:"configFormat"`
	SHA256       string `json:"sha256"`
	Size         int64  `json:"size"`
}

// Baseline is the device as found before the run.
type Baseline struct {
	Version string `json:"version"`
	Bank    int    `json:"bank"`
}

// Pending is an operation iadms decided to start: written before the SET.
type Pending struct {
	Index   uint32    `json:"index"`
	Type    int       `json:"type"` // mib.OpType
	Step    Step      `json:"step"`
	File    string    `json:"file,omitempty"`
	Started time.Time `json:"started"`
}

// ResetMark is written before a reset is sent: the device's boot time as
// estimated then, so a later reading can tell whether it restarted.
type ResetMark struct {
	Index     uint32    `json:"index"`
	BootedAt  time.Time `json:"bootedAt"`
	Sent      time.Time `json:"sent"`
	Purpose   Step      `json:"purpose"` // StepReset, or StepRevert for a revert's reset
	Confirmed bool      `json:"confirmed"`
}

// Backup is the backup taken by the run.
type Backup struct {
	File string `json:"file"`
	Name string `json:"name"` // as the device requests it
	// Encrypted means the device encrypts its backups: iadms cannot read
	// the manifest (ConfigFormat and SoftwareVersion are unknown, 0 and
	// "") and leaves any conversion to the device.
	Encrypted       bool   `json:"encrypted,omitempty"`
	ConfigFormat    uint32 `json:"configFormat"`
	SoftwareVersion string `json:"softwareVersion"`
	Size            int64  `json:"size"`
}

// Result is one attempt at one step.
type Result struct {
	Step    Step      `json:"step"`
	Attempt int       `json:"attempt"`
	OK      bool      `json:"ok"`
	Cause   string    `json:"cause,omitempty"`
	Text    string    `json:"text,omitempty"`
	Started time.Time `json:"started"`
	Ended   time.Time `json:"ended"`
}

// Duration is how long the attempt took.
func (r Result) Duration() time.Duration { return r.Ended.Sub(r.Started) }

// Run is one device's upgrade run.
type Run struct {
	Version  int       `json:"v"`
	Device   string    `json:"device"`
	Address  string    `json:"address"`
	CredRef  string    `json:"credRef"`
	RunID    string    `json:"runId"`
	Image    Image     `json:"image"`
	Started  time.Time `json:"started"`
	Updated  time.Time `json:"updated"`
	Finished time.Time `json:"finished,omitzero"`
	Status   Status    `json:"status"`
	Reason   string    `json:"reason,omitempty"`
	Step     Step      `json:"step"`
	// Attempts counts the attempts per step so far.
	Attempts map[Step]int `json:"attempts,omitempty"`
	// Failures counts failed attempts per retry group (backup, upgrade,
	// restore).
	Failures    map[Step]int `json:"failures,omitempty"`
	Baseline    *Baseline    `json:"baseline,omitempty"`
	Pending     *Pending     `json:"pending,omitempty"`
	Reset       *ResetMark   `json:"reset,omitempty"`
	Backup      *Backup      `json:"backup,omitempty"`
	RestoreFile string       `json:"restoreFile,omitempty"`
	// Force is the operator's consent (a yes to the forced retry) to
	// restore across a major configuration format version.
	Force        bool     `json:"force,omitempty"`
	FinalVersion string   `json:"finalVersion,omitempty"`
	Results      []Result `json:"results,omitempty"`
	// Resumed counts how often an iadms took this run over from another.
	Resumed int `json:"resumed,omitempty"`
}

// Store is the journal file.
type Store struct {
	db *bolt.DB
}

// Open opens (creating) the journal at path. If another iadms holds it,
// Open fails with ErrLocked after a second instead of waiting.
func Open(ctx context.Context, path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return nil, fmt.Errorf("journal: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketRuns, bucketHistory} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("journal: init %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Get returns the current run of device; ok is false if there is none.
func (s *Store) Get(ctx context.Context, device string) (r Run, ok bool, err error) {
	if err := ctx.Err(); err != nil {
		return Run{}, false, err
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRuns).Get([]byte(device))
		if b == nil {
			return nil
		}
		ok = true
		return decode(b, &r)
	})
	return r, ok, err
}

func decode(b []byte, r *Run) error {
	if err := json.Unmarshal(b, r); err != nil {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	if r.Version != RecordVersion {
		return fmt.Errorf("%w: record version %d, want %d", ErrCorrupt, r.Version, RecordVersion)
	}
	return nil
}

// Put stores r as device's current run (synced before it returns); a
// finished run is copied to the history too.
func (s *Store) Put(ctx context.Context, r Run) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.Version = RecordVersion
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("journal: encode: %w", err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketRuns).Put([]byte(r.Device), b); err != nil {
			return err
		}
		if r.Status.Finished() {
			return tx.Bucket(bucketHistory).Put([]byte(r.Device+"/"+r.RunID), b)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("journal: put %s: %w", r.Device, err)
	}
	return nil
}

// All returns every device's current run, sorted by device name.
func (s *Store) All(ctx context.Context) ([]Run, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []Run
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRuns).ForEach(func(k, v []byte) error {
			var r Run
			if err := decode(v, &r); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			out = append(out, r)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Device < out[j].Device })
	return out, err
}

// History returns device's finished runs, oldest run ID first.
func (s *Store) History(ctx context.Context, device string) ([]Run, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []Run
	prefix := []byte(device + "/")
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketHistory).Cursor()
		for k, v := c.Seek(prefix); k != nil && len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix); k, v = c.Next() {
			var r Run
			if err := decode(v, &r); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}
