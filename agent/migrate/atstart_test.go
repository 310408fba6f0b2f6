package migrate

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/iadsafe/iad-agent/agent/backupcrypt"
	"github.com/iadsafe/iad-agent/agent/config"
	"github.com/iadsafe/iad-agent/agent/iadconfig"
	"github.com/iadsafe/iad-agent/agent/iadconfig/iadconfigtest"
)

// TestAtStartUpgradeAndRevert is the upgrade itself: software of format 2
// starts on a format-1 configuration and converts it, keeping the
// original; the old software (format 1) starts again and gets it back.
func TestAtStartUpgradeAndRevert(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	original := with(golden(t, "1-2/full/in"), opaque)
	e.setLive(t, original)
	origDigest := e.digest(t)

	res, err := e.mig.AtStart(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if res != (Result{From: 1, To: 2, Converted: true, Applied: true}) {
		t.Errorf("result %+v", res)
	}
	if got := dirFiles(t, e.store.LiveDir()); !sameFiles(got, with(golden(t, "1-2/full/want"), opaque)) {
		t.Error("live is not the converted configuration")
	}
	if got := e.keptFiles(t, 1); !sameFiles(got, original) {
		t.Error("the format-1 configuration was not kept")
	}
	// A second start of the same software changes nothing.
	if res, err := e.mig.AtStart(ctx, 2); err != nil || res.Applied {
		t.Errorf("second start: %+v, %v", res, err)
	}
	// Revert: the old software starts and finds its own configuration.
	res, err = e.mig.AtStart(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if res != (Result{From: 2, To: 1, Applied: true}) {
		t.Errorf("revert result %+v", res)
	}
	if e.digest(t) != origDigest {
		t.Error("after the revert the live configuration is not the original, byte for byte")
	}
	if got := e.reload.reasons(); !slices.Equal(got, []string{"start", "start"}) {
		t.Errorf("reloads: %v", got)
	}
	e.tidy(t)

	// Straight to format 3 (a major step: the upgrade itself is the consent).
	if _, err := e.mig.AtStart(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if got := dirFiles(t, e.store.LiveDir()); !sameFiles(got, with(golden(t, "2-3/full/want"), opaque)) {
		t.Error("live is not the format-3 conversion")
	}
	if f, _ := e.mig.LiveFormat(); f != 3 {
		t.Errorf("LiveFormat: %d, want 3", f)
	}
	e.tidy(t)
}

func TestAtStartRefusals(t *testing.T) {
	ctx := context.Background()
	shared := golden(t, "1-2/full/in")
	shared["users.conf"] = []byte(strings.Replace(string(shared["users.conf"]), "fxs3", "fxs1", 1))
	invalid := golden(t, "1-2/full/in")
	invalid["ports.conf"] = append(invalid["ports.conf"], "fxs1.gain = 99\n"...)
	cases := []struct {
		name    string
		live    map[string][]byte
		running uint32
		hookErr error
		want    error
	}{
		{"newer and nothing kept", golden(t, "1-2/full/want"), 1, nil, ErrNoKept},
		{"invalid live configuration", invalid, 2, nil, iadconfig.ErrInvalid},
		{"converter fails", shared, 3, nil, iadconfig.ErrConvert},
		{"newer than any known", map[string][]byte{"defaults.conf": []byte("format-version = 7\n")}, 3, nil, ErrNoKept},
		{"no defaults.conf", map[string][]byte{"x.conf": []byte("x")}, 2, nil, iadconfig.ErrUnknownFormat},
		{"reload hook fails", golden(t, "1-2/full/in"), 2, errors.New("exit status 1"), ErrReload},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.setLive(t, tc.live)
			before := e.digest(t)
			e.reload.fail = tc.hookErr
			if _, err := e.mig.AtStart(ctx, tc.running); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if e.digest(t) != before {
				t.Error("the live configuration changed")
			}
			e.tidy(t)
		})
	}
}

// TestBackupConvertRestoreProperty: any configuration the generator makes
// survives backup (plain or encrypted) → convert → restore with every
// value in place; a configuration that cannot be converted leaves the
// device's configuration as it was.
func TestBackupConvertRestoreProperty(t *testing.T) {
	n := 60
	if testing.Short() {
		n = 10
	}
	key, _ := backupcrypt.NewKey([]byte("0123456789abcdef0123456789abcdef"))
	reg := iadconfig.Default()
	for seed := range uint64(n) {
		src := iadconfigtest.Generate(rand.New(rand.NewPCG(seed, 77)), iadconfigtest.GenOptions{SharedPorts: seed%4 == 0})
		files, err := reg.Encode(src)
		if err != nil {
			t.Fatal(err)
		}
		device := newEnv(t)
		device.setLive(t, with(files, opaque))
		var k *backupcrypt.Key
		if seed%2 == 0 {
			k = &key
		}
		archive := device.backup(t, 1, k)
		for _, running := range []uint32{1, 2, 3} {
			e := newEnv(t)
			before := e.digest(t)
			_, err := e.restore(t, archive, k, running, true)
			if running == 3 && iadconfigtest.SharesPorts(src) {
				if !errors.Is(err, iadconfig.ErrConvert) || e.digest(t) != before {
					t.Fatalf("seed %d: shared ports to format 3: got %v (live changed: %v)", seed, err, e.digest(t) != before)
				}
				continue
			}
			if err != nil {
				t.Fatalf("seed %d: restore at format %d: %v", seed, running, err)
			}
			got := e.liveDoc(t)
			if got.Format != running {
				t.Fatalf("seed %d: live is format %d, want %d", seed, got.Format, running)
			}
			if lost := iadconfigtest.Lost(src, got); len(lost) > 0 {
				t.Fatalf("seed %d: backup → convert → restore to %d lost values:\n%s", seed, running, strings.Join(lost, "\n"))
			}
			if b, _ := e.store.ReadLiveFile("vendor-blob.bin", 1<<10); string(b) != string(opaque["vendor-blob.bin"]) {
				t.Fatalf("seed %d: the opaque file did not survive", seed)
			}
			if running > 1 && !sameFiles(e.keptFiles(t, 1), with(files, opaque)) {
				t.Fatalf("seed %d: the backup as it was is not kept for format 1", seed)
			}
		}
	}
}

// TestLargeEncryptedRestoreStreams: a 16 MiB configuration goes through an
// encrypted backup, decryption, staging, conversion and apply without
// being held in memory.
func TestLargeEncryptedRestoreStreams(t *testing.T) {
	ctx := context.Background()
	key, _ := backupcrypt.NewKey([]byte("0123456789abcdef0123456789abcdef"))
	big := make([]byte, 16<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	device := newEnv(t)
	device.setLive(t, with(golden(t, "1-2/full/in"), map[string][]byte{"recordings.bin": big}))
	target := newEnv(t)
	big = nil
	runtime.GC()

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	pr, pw := io.Pipe()
	go func() {
		w, err := backupcrypt.NewWriter(pw, key)
		if err == nil {
			_, _, err = device.store.Backup(ctx, w, config.BackupMeta{ConfigFormat: 1})
		}
		if err == nil {
			err = w.Close()
		}
		pw.CloseWithError(err)
	}()
	r, err := backupcrypt.NewReader(pr, key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := target.store.Stage(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := target.mig.Restore(ctx, st, 2, false); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("backup and restore of a 16 MiB configuration allocated %d bytes, want under 4 MiB", alloc)
	}
	if fi, err := target.store.ReadLiveFile("recordings.bin", 32<<20); err != nil || len(fi) != 16<<20 {
		t.Errorf("recordings.bin after restore: %d bytes, %v", len(fi), err)
	}
}
