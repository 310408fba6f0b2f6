package itest

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/image"
	"github.com/iadsafe/iad-agent/mib"
)

var (
	crashSeed = flag.Uint64("crash.seed", 0, "seed for TestCrash (0: a new one, printed)")
	crashRuns = flag.Int("crash.runs", 50, "kill -9 runs in TestCrash (at least 50 in the suite)")
)

// TestCrash kills the agent with SIGKILL at random moments of upgrades and
// restores and restarts it: every restart must boot a verified bank, the
// configuration must be the old one or the new one whole, and the row that
// was cut must read failed/interrupted (and say so in a notification).
func TestCrash(t *testing.T) {
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("crash seed %d (rerun with -crash.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x1ad))

	keys := t.TempDir()
	key := filepath.Join(keys, "dev")
	if err := image.GenerateKey(key); err != nil {
		t.Fatal(err)
	}
	traps := StartTrapReceiver(t)
	tftpDir, err := os.MkdirTemp("", "iad-crash-tftp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tftpDir) })
	os.Chmod(tftpDir, 0o777)
	tftp := StartTFTP(t, tftpDir, true)
	r := &rig{tftp: tftp, traps: traps, key: key}
	r.image(t, "v2.img", "2.0.0", testHW, key, 24<<20)

	args := []string{"-rw-community", "private", "-trust", key + ".pub", "-trap", traps.Target(),
		"-hw", testHW, "-commit-after", "1h", "-slot-size", "32MiB"}
	start := func(t *testing.T) (*rig, string) {
		data := t.TempDir()
		a := StartAgent(t, data, args...)
		return &rig{agent: a, tftp: tftp, traps: traps, rw: a.SNMP("private"), ro: a.SNMP("public"), data: data, key: key}, data
	}

	// The "new" configuration: a backup of a bigger config, so the restore
	// has a window worth cutting.
	var oldConfig, newConfig string
	{
		tr, _ := start(t)
		oldConfig = configDigest(t, tr.liveDir())
		for i := range 4 {
			b := make([]byte, 2<<20)
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			os.WriteFile(filepath.Join(tr.liveDir(), "big-"+strconv.Itoa(i)+".conf"), b, 0o644)
		}
		newConfig = configDigest(t, tr.liveDir())
		tr.mustSucceed(t, 1, "backupConfig", "tftp", "new.tar")
		tr.agent.Stop(t)
	}

	// How long an uncut operation takes here, to spread the kills over it.
	measure := func(typ, file string) time.Duration {
		tr, _ := start(t)
		t0 := time.Now()
		tr.mustSucceed(t, 1, typ, "tftp", file)
		d := time.Since(t0)
		tr.agent.Stop(t)
		return d
	}
	durations := map[string]time.Duration{
		"upgrade":       measure("upgrade", "v2.img"),
		"restoreConfig": measure("restoreConfig", "new.tar"),
	}
	t.Logf("uncut durations: upgrade %v, restore %v", durations["upgrade"], durations["restoreConfig"])

	counts := map[string]int{}
	for run := range *crashRuns {
		typ, file := "upgrade", "v2.img"
		if run%2 == 1 {
			typ, file = "restoreConfig", "new.tar"
		}
		idx := 1000 + run
		delay := time.Duration(rng.Int64N(int64(durations[typ]) * 13 / 10))
		ok := t.Run(strconv.Itoa(run)+"-"+typ, func(t *testing.T) {
			tr, data := start(t)
			tr.op(t, idx, typ, "tftp", file)
			time.Sleep(delay)
			tr.agent.Kill9(t)
			tr.agent.Restart(t)

			// A verified bank booted.
			got := tr.sw(t)
			bankIdx := got.activeBank
			v := tr.ro.Get(t, "iadBankVersion."+bankIdx, "iadBankState."+bankIdx, "iadBankDigest."+bankIdx, "iadBankSize."+bankIdx)
			if v["iadBankVersion."+bankIdx] != got.version {
				t.Errorf("running version %q, but bank %s holds %q", got.version, bankIdx, v["iadBankVersion."+bankIdx])
			}
			if st := v["iadBankState."+bankIdx]; st != strconv.Itoa(int(mib.BankActive)) && st != strconv.Itoa(int(mib.BankTrial)) {
				t.Errorf("running bank %s state %s, want active or trial", bankIdx, mib.BankState(atoi(st)))
			}
			if got.version == "2.0.0" {
				slot := filepath.Join(data, "bank", "slot-B.img")
				if bankIdx == "1" {
					slot = filepath.Join(data, "bank", "slot-A.img")
				}
				want := strings.ToLower(strings.Join(strings.Fields(v["iadBankDigest."+bankIdx]), ""))
				if d := hashPrefix(t, slot, int64(atoi(v["iadBankSize."+bankIdx]))); d != want {
					t.Errorf("booted bank %s: content hashes to %s, MIB digest %s", bankIdx, d, want)
				}
			}
			// The configuration is whole: old or new.
			cfg := configDigest(t, tr.liveDir())
			switch {
			case cfg == oldConfig:
				counts["config-old"]++
			case cfg == newConfig:
				counts["config-new"]++
			default:
				t.Errorf("configuration after the cut is neither the old nor the new one")
			}
			// The row tells the truth.
			res := tr.wait(t, idx)
			switch {
			case res.state == strconv.Itoa(int(mib.OpSuccessful)):
				counts[typ+"-completed"]++
			case res.state == strconv.Itoa(int(mib.OpFailed)) && res.cause == strconv.Itoa(int(mib.FailInterrupted)):
				counts[typ+"-interrupted"]++
				tr.waitEvents(t, event{oid: mib.IadOpCompletedNotify, index: idx, state: mib.OpFailed, cause: mib.FailInterrupted})
			default:
				t.Errorf("row %d after the cut: %+v, want successful or failed/interrupted", idx, res)
			}
			tr.agent.Stop(t)
		})
		if !ok {
			t.Fatalf("run %d failed (seed %d, delay %v)", run, seed, delay)
		}
	}
	t.Logf("%d cuts: %v", *crashRuns, counts)
	for _, k := range []string{"upgrade-interrupted", "restoreConfig-interrupted"} {
		if counts[k] == 0 {
			t.Errorf("no %s run: the kills never landed inside an operation (seed %d)", k, seed)
		}
	}
}

func hashPrefix(t *testing.T, path string, n int64) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyN(h, f, n); err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
