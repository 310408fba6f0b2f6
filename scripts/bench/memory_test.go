package bench

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/agent/itest"
	"github.com/iadsafe/iad-agent/bank"
	"github.com/iadsafe/iad-agent/mib"
)

// BenchmarkMemory reports the agent's peak RSS idle, during upgrades of
// several image sizes over TFTP (blksize 1468) and during a backup and a
// restore of a 16 MiB configuration. The curve should be flat.
func BenchmarkMemory(b *testing.B) {
	f := getFixture(b)
	// The agent collects at -gc-percent 50 unless GOGC is set.
	env := fmt.Sprintf("GOGC=%s GOMEMLIMIT=%s", orDefault(os.Getenv("GOGC"), "50 (agent default)"), orDefault(os.Getenv("GOMEMLIMIT"), "unset"))
	b.Run("idle", func(b *testing.B) {
		var rss int64
		for i := 0; i < b.N; i++ {
			r := startAgent(b, f, 16<<20)
			rss = max(rss, peakRSS(b, r.a.PID))
			r.a.Stop(b)
		}
		b.ReportMetric(float64(rss), "peak-RSS-KiB")
		record(Row{Group: "memory", Name: "agent idle (" + env + ")", RSSKiB: rss})
	})
	for _, size := range sizesFromEnv(b, "IAD_BENCH_MEM_SIZES", []int64{16 << 20, 64 << 20, 256 << 20}) {
		name := f.image(b, size)
		b.Run("upgrade/"+sizeName(size), func(b *testing.B) {
			var rss int64
			for i := 0; i < b.N; i++ {
				r := startAgent(b, f, size)
				r.op(b, 1, mib.OpUpgrade, mib.ProtocolTFTP, f.tftp.Port, name, "", "")
				rss = max(rss, peakRSS(b, r.a.PID))
				r.a.Stop(b)
			}
			b.ReportMetric(float64(rss), "peak-RSS-KiB")
			record(Row{Group: "memory", Name: "agent upgrade " + sizeName(size) + " tftp-1468 (" + env + ")", Size: size, RSSKiB: rss})
		})
	}
	cfg := sizesFromEnv(b, "IAD_BENCH_CONFIG_SIZE", []int64{16 << 20})[0]
	b.Run("backup-restore/"+sizeName(cfg), func(b *testing.B) {
		var rss int64
		for i := 0; i < b.N; i++ {
			r := startAgent(b, f, 16<<20)
			// A big configuration: one file of cfg bytes beside the defaults.
			big := make([]byte, cfg)
			rand.Read(big)
			if err := os.WriteFile(filepath.Join(r.a.DataDir, "config", "live", "big.conf"), big, 0o644); err != nil {
				b.Fatal(err)
			}
			r.op(b, 1, mib.OpBackupConfig, mib.ProtocolTFTP, f.tftp.Port, "bench-backup.tar", "", "")
			r.op(b, 2, mib.OpRestoreConfig, mib.ProtocolTFTP, f.tftp.Port, "bench-backup.tar", "", "")
			rss = max(rss, peakRSS(b, r.a.PID))
			r.a.Stop(b)
			os.Remove(filepath.Join(f.tftp.Dir, "bench-backup.tar"))
		}
		b.ReportMetric(float64(rss), "peak-RSS-KiB")
		record(Row{Group: "memory", Name: "agent backup+restore of a " + sizeName(cfg) + " config (" + env + ")", Size: cfg, RSSKiB: rss})
	})
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// BenchmarkFlashWrite compares the agent's slot write (bank.Install into
// a file slot: write in 1 MiB chunks while hashing, fsync, read back and
// re-hash) with `dd bs=1M conv=fsync` of the same payload to a file on
// the same disk.
func BenchmarkFlashWrite(b *testing.B) {
	dd := itest.RequireTool(b, "dd")
	for _, size := range sizesFromEnv(b, "IAD_BENCH_SIZES", []int64{256 << 20}) {
		b.Run(sizeName(size), func(b *testing.B) {
			dir := b.TempDir()
			payload := filepath.Join(dir, "payload")
			pf, err := os.Create(payload)
			if err != nil {
				b.Fatal(err)
			}
			h := sha256.New()
			if _, err := io.CopyN(io.MultiWriter(pf, h), rand.Reader, size); err != nil {
				b.Fatal(err)
			}
			pf.Close()
			var digest bank.Digest
			h.Sum(digest[:0])
			var agentD, ddD time.Duration
			for i := 0; i < b.N; i++ {
				ctx := b.Context()
				devs := map[bank.Slot]bank.Device{}
				for _, s := range []bank.Slot{bank.SlotA, bank.SlotB} {
					d, err := bank.OpenFile(filepath.Join(dir, "slot-"+s.String()+"-"+strconv.Itoa(i)), size)
					if err != nil {
						b.Fatal(err)
					}
					defer d.Close()
					devs[s] = d
				}
				banks, err := bank.New(ctx, bank.Options{Devices: devs, Store: bank.NewFileStore(filepath.Join(dir, "state-"+strconv.Itoa(i)+".json")),
					Factory: bank.SlotInfo{Version: "1.0.0", Factory: true}})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := banks.Boot(ctx); err != nil {
					b.Fatal(err)
				}
				src, _ := os.Open(payload)
				runtime.GC()
				t0 := time.Now()
				if _, err := banks.Install(ctx, bank.SlotInfo{Version: "2.0.0", Size: size, Digest: digest}, src, nil); err != nil {
					b.Fatal(err)
				}
				agentD += time.Since(t0)
				src.Close()

				out := filepath.Join(dir, "dd-"+strconv.Itoa(i))
				t0 = time.Now()
				if o, err := exec.Command(dd, "if="+payload, "of="+out, "bs=1M", "conv=fsync", "status=none").CombinedOutput(); err != nil {
					b.Fatalf("dd: %v\n%s", err, o)
				}
				ddD += time.Since(t0)
				for _, s := range []string{"slot-A-", "slot-B-", "dd-"} {
					os.Remove(filepath.Join(dir, s+strconv.Itoa(i)))
				}
			}
			agentMB, ddMB := mbps(size, agentD/time.Duration(b.N)), mbps(size, ddD/time.Duration(b.N))
			b.ReportMetric(agentMB, "slot-write-MB/s")
			b.ReportMetric(ddMB, "dd-MB/s")
			b.ReportMetric(float64(agentD)/float64(ddD), "agent/dd")
			record(Row{Group: "flash", Name: "slot write (write+hash, fsync, read-back verify)", Size: size, MBps: agentMB, Ratio: float64(agentD) / float64(ddD), Ref: "dd bs=1M conv=fsync"})
			record(Row{Group: "flash", Name: "dd bs=1M conv=fsync", Size: size, MBps: ddMB})
		})
	}
}
