package device_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/agent/itest"
	"github.com/iadsafe/iad-agent/image"
	"github.com/iadsafe/iad-agent/scripts/bench"
	"github.com/iadsafe/iad-agent/scripts/vm"
)

// The ARM rows of make bench: the size of the arm build, and the agent's
// whole upgrade inside the QEMU ARM guest. They run with -benchtime 1x
// (each call boots a guest); figures are recorded, never judged.

// emulated marks every figure taken inside the guest: QEMU emulates the
// ARM CPU in software on this machine, so the speed says how the ARM
// build behaves, not how fast a device is, and is not comparable with
// the amd64 rows.
const emulated = "QEMU-emulated cortex-a15, 1 vCPU: not comparable with the amd64 rows"

// BenchmarkARMBinarySize records the size of the stripped linux/arm
// (GOARM=7) commands built exactly as `make cross` builds them (static,
// -trimpath, -s -w, no build ID, the Makefile's VERSION), and the arm
// iad-agent's share of the Makefile's ARM_AGENT_BUDGET.
func BenchmarkARMBinarySize(b *testing.B) {
	root := itest.RepoRoot(b)
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		b.Fatal(err)
	}
	v := regexp.MustCompile(`(?m)^VERSION\s*\?=\s*(\S+)\s*$`).FindSubmatch(mk)
	if v == nil {
		b.Fatal("the Makefile states no VERSION ?= …")
	}
	var budget int64
	if m := regexp.MustCompile(`(?m)^ARM_AGENT_BUDGET\s*:=\s*(\d+)\s*$`).FindSubmatch(mk); m != nil {
		budget, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := b.TempDir()
	for _, cmd := range []string{"iad-agent", "iadms", "iad-boot"} {
		var size int64
		for i := 0; i < b.N; i++ {
			out := filepath.Join(dir, cmd)
			if err := vm.BuildGuestArch(ctx, vm.ArmHF, root, "./cmd/"+cmd, out, "-X main.version="+string(v[1])); err != nil {
				b.Fatal(err)
			}
			fi, err := os.Stat(out)
			if err != nil {
				b.Fatal(err)
			}
			size = fi.Size()
		}
		b.ReportMetric(float64(size), cmd+"-bytes")
		extra := fmt.Sprintf("%d bytes, static linux/arm GOARM=7 as make cross builds it", size)
		if cmd == "iad-agent" && budget > 0 {
			extra += fmt.Sprintf("; %.1f %% of ARM_AGENT_BUDGET (%d bytes)", 100*float64(size)/float64(budget), budget)
		}
		b.Logf("linux/arm %s: %s", cmd, extra)
		record(b, bench.Row{Group: "arm", Name: "arm binary size " + cmd, Size: size, Extra: extra})
	}
}

// BenchmarkARMGuestUpgrade boots the armhf device VM once and measures
// the agent's idle memory there, then its whole upgrade (SET to the
// first 200 ms poll that reads the row complete: download, header and
// signature check, hash, bank write, fsync, read-back verify) of a
// signed image with an IAD_BENCH_ARM_SIZE-byte payload (default 32MiB)
// over TFTP from the host's in.tftpd and over FTP from vsftpd, with the
// agent's peak RSS (VmHWM, reset before each upgrade) in the guest.
func BenchmarkARMGuestUpgrade(b *testing.B) {
	size := int64(32 << 20)
	if v := os.Getenv("IAD_BENCH_ARM_SIZE"); v != "" {
		n, err := bench.ParseSize(v)
		if err != nil {
			b.Fatalf("IAD_BENCH_ARM_SIZE: %v", err)
		}
		size = n
	}
	s := newScenario(b, scenarioOptions{ftp: true})
	if size > s.fw.Layout.BankSize-(1<<20) {
		b.Fatalf("IAD_BENCH_ARM_SIZE %d bytes: the guest's banks hold %d bytes; keep the payload 1 MiB below", size, s.fw.Layout.BankSize)
	}
	s.powerOn()
	rss, hwm := s.agentMemory()
	s.logf("agent idle in the guest: VmRSS %d KiB, VmHWM %d KiB", rss, hwm)
	b.ReportMetric(float64(hwm), "guest-idle-peak-RSS-KiB")
	record(b, bench.Row{Group: "arm", Name: "arm guest agent idle (emulated)", RSSKiB: int64(hwm),
		Extra: fmt.Sprintf("VmHWM once serving (VmRSS %d KiB); %s", rss, emulated)})

	name, total := s.benchImage(size)
	idx := 1
	for _, proto := range []string{"tftp", "ftp"} {
		label := proto
		if proto == "tftp" {
			label = "tftp-1468" // the guest's site setting (firmware.Site)
		}
		var took time.Duration
		var peak int
		for i := 0; i < b.N; i++ {
			// Reset VmHWM to the current RSS, so that the peak is this
			// upgrade's (Linux: clear_refs 5).
			s.run("echo 5 > /proc/$(pidof iad-agent)/clear_refs")
			start := time.Now()
			s.op(idx, "upgrade", proto, name)
			if r := s.wait(idx, opWait); !r.ok() {
				s.fatalf("upgrade #%d over %s of %d bytes: got %v, want successful", idx, proto, total, r)
			}
			took += time.Since(start)
			_, h := s.agentMemory()
			peak = max(peak, h)
			idx++
		}
		mbps := float64(total) / 1e6 / (took / time.Duration(b.N)).Seconds()
		s.logf("upgrade over %s of a %d-byte image in the guest: %.2f MB/s, agent VmHWM %d KiB", label, total, mbps, peak)
		b.ReportMetric(mbps, proto+"-MB/s")
		b.ReportMetric(float64(peak), proto+"-peak-RSS-KiB")
		record(b, bench.Row{Group: "arm", Name: "arm guest agent upgrade " + label + " (emulated)", Size: total, MBps: mbps, RSSKiB: int64(peak),
			Extra: "SET to a 200 ms poll seeing it complete; " + emulated})
	}
	s.summary("ARM guest benchmark")
}

// benchImage writes a signed image for the guest with a size-byte
// pseudo-random payload (the payload is never booted) to the TFTP and
// FTP servers, and returns its name and size.
func (s *scenario) benchImage(size int64) (string, int64) {
	s.t.Helper()
	key, err := image.LoadPrivateKey(filepath.Join(s.fw.Dir, "keys", "vm-test.key"))
	if err != nil {
		s.t.Fatal(err)
	}
	payload := func() io.Reader { return io.LimitReader(rand.NewChaCha8([32]byte{'b', 'e', 'n', 'c', 'h'}), size) }
	n, sum, err := image.HashPayload(payload())
	if err != nil {
		s.t.Fatal(err)
	}
	name := "bench-" + strconv.FormatInt(size, 10) + ".img"
	path := filepath.Join(s.tftp.Dir, name)
	f, err := os.Create(path)
	if err != nil {
		s.t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	err = image.Build(w, image.Header{Hardware: s.fw.Hardware, Version: "9.0.0-bench", ConfigFormat: 1,
		PayloadSize: n, PayloadSHA256: sum, Created: time.Now().Truncate(time.Second)}, payload(), key)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.t.Fatalf("building the benchmark image: %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		s.t.Fatal(err)
	}
	s.ftp.WriteFile(s.t, name, data)
	return name, int64(len(data))
}

// record appends a row to make bench's table ($IAD_BENCH_OUT).
func record(b *testing.B, r bench.Row) {
	b.Helper()
	if err := bench.Record(r); err != nil {
		b.Fatalf("recording %q: %v", r.Name, err)
	}
}
