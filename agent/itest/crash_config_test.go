package itest

import (
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/mib"
)

var crashConfigRuns = flag.Int("crash.config.runs", 50, "kill -9 runs in TestCrashConfigApply (at least 50 in the suite)")

// TestCrashConfigApply kills the agent with SIGKILL at random moments of
// a restore that converts a format-1 backup for software of format 2 and
// has a reload hook confirm it, then restarts the agent. The live
// configuration must be the old one or the new one, whole; the new one
// only if the apply got past its confirmation; a kill between the swap
// and the hook's confirmation must be rolled back at restart; and the
// configuration store holds nothing but whole generations.
func TestCrashConfigApply(t *testing.T) {
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("crash seed %d (rerun with -crash.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0xc0f))

	tftpDir, err := os.MkdirTemp("", "iad-crashcfg-tftp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tftpDir) })
	os.Chmod(tftpDir, 0o777)
	tftp := StartTFTP(t, tftpDir, true)

	// The backup: a format-1 configuration with files the model does not
	// know, large enough that copying them takes a while, made by a
	// device of the factory format over the real backup path.
	big := map[string][]byte{}
	for i := range 2 {
		b := make([]byte, 512<<10)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		big["recording-"+strconv.Itoa(i)+".bin"] = b
	}
	{
		a := StartAgent(t, "", "-rw-community", "private", "-hw", testHW, "-slot-size", "1MiB")
		r := &rig{agent: a, tftp: tftp, rw: a.SNMP("private"), ro: a.SNMP("public"), data: a.DataDir}
		setConfig(t, r.liveDir(), plus(goldenConfig(t, "1-2/full/in"), big))
		r.mustSucceed(t, 1, "backupConfig", "tftp", "v1.tar")
		a.Stop(t)
	}

	// The device runs software of format 2; its hook takes a moment to
	// confirm a restore, the window a power cut must not turn into a
	// half-confirmed configuration.
	args := []string{"-rw-community", "private", "-hw", testHW, "-commit-after", "1h", "-slot-size", "1MiB",
		"-factory-config-format", "2", "-reload-cmd", `[ "$IAD_CONFIG_REASON" != restore ] || sleep 0.25`}
	start := func(t *testing.T) *rig {
		a := StartAgent(t, t.TempDir(), args...)
		return &rig{agent: a, tftp: tftp, rw: a.SNMP("private"), ro: a.SNMP("public"), data: a.DataDir}
	}
	// The first start converted the factory defaults and kept them as
	// format 1; a converting restore keeps the backup instead.
	var oldConfig, newConfig, oldKept, newKept string
	keptDir := func(r *rig) string { return filepath.Join(r.data, "config", "keep-1") }
	var uncut time.Duration
	{
		r := start(t)
		oldConfig, oldKept = configDigest(t, r.liveDir()), configDigest(t, keptDir(r))
		t0 := time.Now()
		r.mustSucceed(t, 1, "restoreConfig", "tftp", "v1.tar")
		uncut = time.Since(t0)
		newConfig, newKept = configDigest(t, r.liveDir()), configDigest(t, keptDir(r))
		if newConfig == oldConfig {
			t.Fatal("test bug: the restore did not change the configuration")
		}
		r.agent.Stop(t)
	}
	t.Logf("uncut restore with conversion and reload: %v", uncut)

	counts := map[string]int{}
	for run := range *crashConfigRuns {
		idx := 1000 + run
		delay := time.Duration(rng.Int64N(int64(uncut) * 13 / 10))
		ok := t.Run(strconv.Itoa(run), func(t *testing.T) {
			r := start(t)
			if configDigest(t, r.liveDir()) != oldConfig {
				t.Fatal("a fresh device does not start with the converted factory configuration")
			}
			r.op(t, idx, "restoreConfig", "tftp", "v1.tar")
			time.Sleep(delay)
			r.agent.Kill9(t)
			from := r.agent.LogSize()
			r.agent.Restart(t)
			log, _ := os.ReadFile(r.agent.LogPath)
			rolledBack := strings.Contains(string(log[from:]), "rolling back an apply that was not confirmed")

			cfg := configDigest(t, r.liveDir())
			res := r.wait(t, idx)
			switch {
			case res.state == strconv.Itoa(int(mib.OpSuccessful)) && cfg == newConfig:
				counts["completed"]++
			case res.state == strconv.Itoa(int(mib.OpFailed)) && res.cause == strconv.Itoa(int(mib.FailInterrupted)) && cfg == oldConfig:
				counts["interrupted, old configuration"]++
				if rolledBack {
					counts["rolled back at restart"]++
				}
			case res.state == strconv.Itoa(int(mib.OpFailed)) && res.cause == strconv.Itoa(int(mib.FailInterrupted)) && cfg == newConfig && !rolledBack:
				// Killed after the commit, before the row was journalled.
				counts["interrupted after commit"]++
			default:
				t.Fatalf("after the cut: row %+v, configuration old=%v new=%v, rolled back=%v", res, cfg == oldConfig, cfg == newConfig, rolledBack)
			}
			if rolledBack && cfg != oldConfig {
				t.Errorf("rolled back, but the configuration is not the old one")
			}
			if _, live := r.configFormats(t); live != "2" {
				t.Errorf("iadConfigLiveFormat after the cut: %s, want 2", live)
			}
			// The store holds live, its generation and the kept format-1
			// configuration, nothing else; the backup is kept only once
			// the new configuration is live.
			entries, err := os.ReadDir(filepath.Join(r.data, "config"))
			if err != nil {
				t.Fatal(err)
			}
			gens := 0
			for _, e := range entries {
				switch n := e.Name(); {
				case strings.HasPrefix(n, "gen-"):
					gens++
				case n == "live" || n == "keep-1":
				default:
					t.Errorf("leftover %s in the configuration store", n)
				}
			}
			if gens != 2 {
				t.Errorf("%d generations, want 2 (live and keep-1)", gens)
			}
			switch kept := configDigest(t, keptDir(r)); {
			case kept == oldKept:
			case kept == newKept && cfg == newConfig:
			default:
				t.Errorf("keep-1 is neither the factory configuration nor the backup with the new configuration live")
			}
			r.agent.Stop(t)
		})
		if !ok {
			t.Fatalf("run %d failed (seed %d, delay %v)", run, seed, delay)
		}
	}
	t.Logf("%d cuts: %v", *crashConfigRuns, counts)
	if counts["rolled back at restart"] == 0 {
		t.Errorf("no kill landed between the swap and the hook's confirmation (seed %d)", seed)
	}
}
