// Package journal keeps the agent's operation records in a bbolt database,
// so that after a crash or power cut the agent knows which operation was
// interrupted and can say so. The same database keeps the SNMPv3 engine's
// identity and boot counter (engine.go), as only one process may hold it.
//
// Every record is written (and synced by bbolt's commit) before the state it
// describes takes effect. Records are versioned JSON with explicit enum
// values. It never stores secrets: passwords stay in memory only.
package journal

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/iadsafe/iad-agent/mib"
)

// RecordVersion is the version of the JSON record layout written now.
const RecordVersion = 1

var (
	// ErrLocked reports that another process holds the journal.
	ErrLocked = errors.New("journal: database is locked by another process")
	// ErrCorrupt reports a record that cannot be decoded.
	ErrCorrupt = errors.New("journal: corrupt record")
)

var bucketOps = []byte("ops")

// Op is the durable part of one iadOpTable row.
type Op struct {
	Version   int                 `json:"version"`
	Index     uint32              `json:"index"`
	Type      mib.OpType          `json:"type"`
	Protocol  mib.Protocol        `json:"protocol"`
	AddrType  mib.InetAddressType `json:"addrType"`
	Addr      []byte              `json:"addr,omitempty"`
	Port      uint16              `json:"port"`
	File      string              `json:"file,omitempty"`
	User      string              `json:"user,omitempty"`
	Timeout   uint32              `json:"timeout"`
	RowStatus mib.RowStatus       `json:"rowStatus"`
	State     mib.OpState         `json:"state"`
	Progress  uint32              `json:"progress"`
	Bytes     uint64              `json:"bytes"`
	FailCause mib.FailCause       `json:"failCause"`
	FailText  string              `json:"failText,omitempty"`
	// Arming is the bank an upgrade was about to arm when this record
	// was written (0: not that far yet). After a crash it tells whether
	// the interrupted upgrade had in fact completed.
	Arming    uint32    `json:"arming,omitempty"`
	Started   time.Time `json:"started,omitzero"`
	Completed time.Time `json:"completed,omitzero"`
	// Force is iadOpForce: convert a restored configuration across a
	// major format version. Absent in older records, meaning false.
	Force bool `json:"force,omitempty"`
}

// Journal is the operation store.
type Journal struct {
	db *bolt.DB
}

// Open opens (creating if needed) the journal at path. A database locked by
// another process fails after a short wait instead of blocking forever.
func Open(ctx context.Context, path string) (*Journal, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, path)
		}
		return nil, fmt.Errorf("journal: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketOps)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("journal: init %s: %w", path, err)
	}
	return &Journal{db: db}, nil
}

// Close closes the database.
func (j *Journal) Close() error { return j.db.Close() }

func key(idx uint32) []byte {
	var k [4]byte
	binary.BigEndian.PutUint32(k[:], idx)
	return k[:]
}

// Put writes one record durably.
func (j *Journal) Put(ctx context.Context, op Op) error {
	op.Version = RecordVersion
	buf, err := json.Marshal(op)
	if err != nil {
		return fmt.Errorf("journal: encode op %d: %w", op.Index, err)
	}
	err = j.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOps).Put(key(op.Index), buf)
	})
	if err != nil {
		return fmt.Errorf("journal: write op %d: %w", op.Index, err)
	}
	return nil
}

// Delete removes a record; a missing one is not an error.
func (j *Journal) Delete(ctx context.Context, idx uint32) error {
	err := j.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOps).Delete(key(idx))
	})
	if err != nil {
		return fmt.Errorf("journal: delete op %d: %w", idx, err)
	}
	return nil
}

// All returns every record in index order.
func (j *Journal) All(ctx context.Context) ([]Op, error) {
	var ops []Op
	err := j.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketOps).ForEach(func(k, v []byte) error {
			var op Op
			if err := json.Unmarshal(v, &op); err != nil {
				return fmt.Errorf("%w: key %x: %v", ErrCorrupt, k, err)
			}
			if op.Version != RecordVersion {
				return fmt.Errorf("%w: key %x: version %d, want %d", ErrCorrupt, k, op.Version, RecordVersion)
			}
			ops = append(ops, op)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return ops, nil
}
