package journal

import (
	"context"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func sample(device string, st Status) Run {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return Run{
		Device: device, Address: "192.0.2.1:161", CredRef: "lab", RunID: "r1-" + device,
		Image:   Image{Path: "/img/v2.img", Name: "img/abc/v2.img", Version: "2.0.0", ConfigFormat: 2, SHA256: "ab", Size: 10},
		Started: t0, Updated: t0, Status: st, Step: StepCommit,
		Attempts: map[Step]int{StepBackup: 1, StepUpgrade: 2}, Failures: map[Step]int{StepUpgrade: 1},
		Baseline: &Baseline{Version: "1.0.0", Bank: 1},
		Pending:  &Pending{Index: 42, Type: 2, Step: StepUpgrade, File: "img/abc/v2.img", Started: t0},
		Reset:    &ResetMark{Index: 43, BootedAt: t0, Sent: t0, Purpose: StepReset},
		Backup:   &Backup{File: "b.tar", Name: "cfg/d/b.tar", ConfigFormat: 1, SoftwareVersion: "1.0.0", Size: 99},
		Results:  []Result{{Step: StepBackup, Attempt: 1, OK: true, Started: t0, Ended: t0.Add(time.Second)}},
	}
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "sub", "journal.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, ok, err := s.Get(ctx, "none"); ok || err != nil {
		t.Fatalf("Get of nothing: ok %v err %v", ok, err)
	}
	want := sample("b", Running)
	if err := s.Put(ctx, want); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, sample("a", Succeeded)); err != nil {
		t.Fatal(err)
	}
	got, ok, err := s.Get(ctx, "b")
	want.Version = RecordVersion
	if !ok || err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("Get: got %+v (ok %v, %v)\nwant %+v", got, ok, err, want)
	}
	all, err := s.All(ctx)
	if err != nil || len(all) != 2 || all[0].Device != "a" || all[1].Device != "b" {
		t.Fatalf("All: %v %v", all, err)
	}
	h, err := s.History(ctx, "a")
	if err != nil || len(h) != 1 || h[0].Status != Succeeded {
		t.Fatalf("History(a): %v %v", h, err)
	}
	if h, _ := s.History(ctx, "b"); len(h) != 0 {
		t.Errorf("History(b) holds an unfinished run: %v", h)
	}
}

func TestLocked(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(ctx, path); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: got %v, want ErrLocked", err)
	}
}

func TestCorrupt(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "journal.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"garbage": "{not json", "future": `{"v":99,"device":"future"}`} {
		err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketRuns).Put([]byte(k), []byte(v)) })
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Get(ctx, k); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: got %v, want ErrCorrupt", k, err)
		}
	}
	if _, err := s.All(ctx); !errors.Is(err, ErrCorrupt) {
		t.Errorf("All: got %v, want ErrCorrupt", err)
	}
	s.Close()
}

func TestStatusFinished(t *testing.T) {
	for st, want := range map[Status]bool{"": false, Running: false, Succeeded: true, Failed: true, Stopped: true, UpToDate: true} {
		if got := st.Finished(); got != want {
			t.Errorf("%q.Finished() = %v, want %v", st, got, want)
		}
	}
}
