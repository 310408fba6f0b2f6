package bench

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/agent/itest"
	"github.com/iadsafe/iad-agent/image"
)

// BenchmarkFleet runs `iadms upgrade --targets` over fleets of loopback
// agents (separate processes, GOMAXPROCS=1, tiny slots and images) and
// reports iadms's wall time and peak RSS, to show how its cost grows with
// the fleet.
func BenchmarkFleet(b *testing.B) {
	timeBin := itest.RequireTool(b, "time")
	iadms := itest.BuildCommand(b, "./cmd/iadms")
	for _, n := range fleetSizes(b) {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			var wall time.Duration
			var rss int64
			for i := 0; i < b.N; i++ {
				w, r := fleetRun(b, timeBin, iadms, n)
				wall += w
				rss = max(rss, r)
			}
			wall /= time.Duration(b.N)
			b.ReportMetric(wall.Seconds(), "wall-s")
			b.ReportMetric(float64(rss), "iadms-peak-RSS-KiB")
			record(Row{Group: "fleet", Name: fmt.Sprintf("iadms upgrade of %d agents (concurrency 50, canary 5)", n), RSSKiB: rss, Value: wall.Seconds(), Unit: "s wall"})
		})
	}
}

func fleetSizes(b *testing.B) []int {
	v := os.Getenv("IAD_BENCH_FLEET")
	if v == "" {
		return []int{50, 200, 500}
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("IAD_BENCH_FLEET: bad size %q", f)
		}
		out = append(out, n)
	}
	return out
}

var maxRSS = regexp.MustCompile(`Maximum resident set size \(kbytes\): (\d+)`)

func fleetRun(b *testing.B, timeBin, iadms string, n int) (time.Duration, int64) {
	b.Helper()
	dir := b.TempDir()
	key := filepath.Join(dir, "dev")
	if err := image.GenerateKey(key); err != nil {
		b.Fatal(err)
	}
	agents := itest.StartAgents(b, n, itest.FleetOptions{
		Args: func(int) []string {
			return []string{"-rw-community", "private", "-trust", key + ".pub", "-hw", benchHW,
				"-commit-after", "1s", "-slot-size", "256KiB", "-log-level", "warn"}
		},
		Env: []string{"GOMAXPROCS=1"},
	})
	payload := bytes.Repeat([]byte("iad-bench fleet payload\n"), 1365) // 32 KiB
	priv, err := image.LoadPrivateKey(key + ".key")
	if err != nil {
		b.Fatal(err)
	}
	img := filepath.Join(dir, "v2.img")
	var buf bytes.Buffer
	h := image.Header{Hardware: benchHW, Version: "2.0.0", ConfigFormat: 1, PayloadSize: int64(len(payload)), PayloadSHA256: sha256.Sum256(payload), Created: time.Now()}
	if err := image.Build(&buf, h, bytes.NewReader(payload), priv); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(img, buf.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	creds := filepath.Join(dir, "iadms.creds")
	if err := os.WriteFile(creds, []byte("default v2c community=private read-community=public\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	var t strings.Builder
	for i, a := range agents {
		fmt.Fprintf(&t, "d%03d %s default\n", i, a.Target())
	}
	targets := filepath.Join(dir, "fleet.targets")
	if err := os.WriteFile(targets, []byte(t.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	args := []string{"-v", iadms, "upgrade", "--creds", creds, "--state", filepath.Join(dir, "state"),
		"--poll", "200ms", "--snmp-timeout", "2s", "--snmp-retries", "2",
		"--tftp", "127.0.0.1:" + strconv.Itoa(itest.FreeUDPPort(b)), "--trap-listen", "off",
		"--targets", targets, "--image", img, "--report", filepath.Join(dir, "report.json"),
		"--concurrency", "50", "--canary", "5", "--max-fail", "5",
		"--timeout-reach", "120s", "--timeout-backup", "120s", "--timeout-upgrade", "120s", "--timeout-reset", "120s",
		"--timeout-commit", "120s", "--timeout-restore", "120s", "--timeout-revert", "120s"}
	cmd := exec.Command(timeBin, args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	t0 := time.Now()
	out, err := cmd.Output()
	wall := time.Since(t0)
	if err != nil {
		b.Fatalf("iadms over %d agents: %v\n%s\n%s", n, err, out, stderr.String())
	}
	m := maxRSS.FindSubmatch(stderr.Bytes())
	if m == nil {
		b.Fatalf("no peak RSS in GNU time's output:\n%s", stderr.String())
	}
	rss, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return wall, rss
}
