package journal

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/iadsafe/iad-agent/mib"
)

func TestPutAllDelete(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	started := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	ops := []Op{
		{Index: 7, Type: mib.OpUpgrade, Protocol: mib.ProtocolTFTP, AddrType: mib.InetIPv4, Addr: []byte{127, 0, 0, 1}, Port: 69, File: "v2.img", State: mib.OpRunning, RowStatus: mib.RowActive, Started: started},
		{Index: 2, Type: mib.OpReset, State: mib.OpSuccessful, FailCause: mib.FailNone, RowStatus: mib.RowActive},
		{Index: 300, Type: mib.OpBackupConfig, State: mib.OpFailed, FailCause: mib.FailTimeout, FailText: "transfer: timed out"},
	}
	for _, op := range ops {
		if err := j.Put(ctx, op); err != nil {
			t.Fatal(err)
		}
	}
	// Reopen: the records are durable.
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	got, err := j.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d records, want 3", len(got))
	}
	wantOrder := []uint32{2, 7, 300}
	for i, op := range got {
		if op.Index != wantOrder[i] {
			t.Errorf("record %d: got index %d, want %d", i, op.Index, wantOrder[i])
		}
		if op.Version != RecordVersion {
			t.Errorf("record %d: got version %d, want %d", i, op.Version, RecordVersion)
		}
	}
	want := ops[0]
	want.Version = RecordVersion
	if !reflect.DeepEqual(got[1], want) {
		t.Errorf("round trip:\ngot  %+v\nwant %+v", got[1], want)
	}
	if err := j.Delete(ctx, 7); err != nil {
		t.Fatal(err)
	}
	if err := j.Delete(ctx, 12345); err != nil {
		t.Fatalf("deleting a missing record: %v", err)
	}
	got, _ = j.All(ctx)
	if len(got) != 2 {
		t.Fatalf("after delete: got %d records, want 2", len(got))
	}
}

func TestLockedFailsFast(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	// A second handle in this process contends for the same flock.
	_, err = Open(ctx, path)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: got %v, want ErrLocked", err)
	}
}

func TestCorruptRecord(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	j, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	for name, raw := range map[string]string{
		"not json":      "{",
		"wrong version": `{"version":99,"index":1}`,
	} {
		t.Run(name, func(t *testing.T) {
			err := j.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketOps).Put(key(1), []byte(raw)) })
			if err != nil {
				t.Fatal(err)
			}
			if _, err := j.All(ctx); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestBootEngine(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	gen := func(id string) func() ([]byte, error) { return func() ([]byte, error) { return []byte(id), nil } }
	steps := []struct {
		want      []byte
		gen       string
		wantID    string
		wantBoots uint32
	}{
		{nil, "generated-1", "generated-1", 1},
		{nil, "generated-2", "generated-1", 2}, // the stored ID is kept
		{nil, "generated-3", "generated-1", 3},
		{[]byte("configured"), "x", "configured", 1}, // a new ID counts from 1
		{[]byte("configured"), "x", "configured", 2},
		{nil, "x", "configured", 3},
	}
	for i, s := range steps {
		j, err := Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		st, err := j.BootEngine(ctx, s.want, gen(s.gen))
		j.Close()
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if string(st.ID) != s.wantID || st.Boots != s.wantBoots {
			t.Errorf("step %d: got %q boots %d, want %q boots %d", i, st.ID, st.Boots, s.wantID, s.wantBoots)
		}
	}
}
