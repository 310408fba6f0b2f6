package journal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketEngine = []byte("snmpEngine")
	keyEngine    = []byte("state")
)

// EngineStateVersion is the version of the engine state record.
const EngineStateVersion = 1

// maxBoots is the largest snmpEngineBoots (RFC 3414 section 2.2.2): it
// latches there.
const maxBoots = 2147483647

// EngineState is the SNMPv3 engine identity that must survive restarts:
// snmpEngineID and snmpEngineBoots (RFC 3411, RFC 3414).
type EngineState struct {
	Version int    `json:"version"`
	ID      []byte `json:"id"`
	Boots   uint32 `json:"boots"`
}

// BootEngine counts one more start of the SNMPv3 engine, durably, before
// the engine answers anything, and returns the identity to use. want is a
// configured engine ID (nil: keep the stored one, or make one with
// newID on first use). A different engine ID than the stored one starts
// the count again at 1, as snmpEngineBoots counts boots since the ID was
// configured.
func (j *Journal) BootEngine(ctx context.Context, want []byte, newID func() ([]byte, error)) (EngineState, error) {
	var st EngineState
	err := j.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketEngine)
		if err != nil {
			return err
		}
		if raw := b.Get(keyEngine); raw != nil {
			if err := json.Unmarshal(raw, &st); err != nil {
				return fmt.Errorf("%w: engine state: %v", ErrCorrupt, err)
			}
			if st.Version != EngineStateVersion || len(st.ID) == 0 {
				return fmt.Errorf("%w: engine state version %d", ErrCorrupt, st.Version)
			}
		}
		switch {
		case want != nil && !bytes.Equal(want, st.ID):
			st = EngineState{ID: bytes.Clone(want), Boots: 1}
		case st.ID == nil:
			id, err := newID()
			if err != nil {
				return err
			}
			st = EngineState{ID: id, Boots: 1}
		case st.Boots < maxBoots:
			st.Boots++
		}
		st.Version = EngineStateVersion
		buf, err := json.Marshal(st)
		if err != nil {
			return err
		}
		return b.Put(keyEngine, buf)
	})
	if err != nil {
		return EngineState{}, fmt.Errorf("journal: engine boots: %w", err)
	}
	return st, nil
}
