package bench

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"
	"github.com/pin/tftp/v3"

	"github.com/iadsafe/iad-agent/agent/itest"
	"github.com/iadsafe/iad-agent/image"
	"github.com/iadsafe/iad-agent/mib"
)

const benchHW = "iad-bench"

// sizesFromEnv parses a comma-separated list of sizes such as
// "16MiB,64MiB" from env, or returns def.
func sizesFromEnv(b *testing.B, env string, def []int64) []int64 {
	v := os.Getenv(env)
	if v == "" {
		return def
	}
	var out []int64
	for _, f := range strings.Split(v, ",") {
		n, err := ParseSize(strings.TrimSpace(f))
		if err != nil {
			b.Fatalf("%s: %v", env, err)
		}
		out = append(out, n)
	}
	return out
}

func sizeName(n int64) string {
	if n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + "MiB"
	}
	return strconv.FormatInt(n, 10) + "B"
}

// fixture is shared by the benchmarks of one run: keys, images, servers.
type fixture struct {
	dir    string
	key    string
	tftp   *itest.TFTPServer
	ftp    *itest.FTPServer
	images map[int64]string
}

var (
	fixMu sync.Mutex
	fix   *fixture
)

// getFixture starts the servers once per benchmark binary. Servers are
// stopped by the harness when the benchmark that started them ends, so
// each top-level benchmark gets its own.
func getFixture(b *testing.B) *fixture {
	b.Helper()
	dir, err := os.MkdirTemp("", "iad-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	f := &fixture{dir: dir, key: filepath.Join(dir, "bench"), images: map[int64]string{}}
	if err := image.GenerateKey(f.key); err != nil {
		b.Fatal(err)
	}
	tdir := filepath.Join(dir, "tftp")
	os.Mkdir(tdir, 0o777)
	os.Chmod(tdir, 0o777)
	fdir := filepath.Join(dir, "ftp")
	os.Mkdir(fdir, 0o755)
	f.tftp = itest.StartTFTP(b, tdir, true)
	f.ftp = itest.StartFTP(b, fdir)
	return f
}

// image builds (once) a signed image with a size-byte payload on both
// servers and returns its name.
func (f *fixture) image(b *testing.B, size int64) string {
	b.Helper()
	if name, ok := f.images[size]; ok {
		return name
	}
	name := "img-" + sizeName(size) + ".img"
	payload := filepath.Join(f.dir, "payload")
	out, err := os.Create(payload)
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command("head", "-c", strconv.FormatInt(size, 10), "/dev/urandom")
	cmd.Stdout = out
	if err := cmd.Run(); err != nil {
		b.Fatal(err)
	}
	out.Close()
	key, err := image.LoadPrivateKey(f.key + ".key")
	if err != nil {
		b.Fatal(err)
	}
	pf, _ := os.Open(payload)
	n, sum, err := image.HashPayload(pf)
	pf.Close()
	if err != nil {
		b.Fatal(err)
	}
	dst := filepath.Join(f.tftp.Dir, name)
	w, err := os.Create(dst)
	if err != nil {
		b.Fatal(err)
	}
	pf, _ = os.Open(payload)
	bw := bufio.NewWriterSize(w, 1<<20)
	err = image.Build(bw, image.Header{Hardware: benchHW, Version: "2.0.0", ConfigFormat: 1, PayloadSize: n, PayloadSHA256: sum, Created: time.Now()}, pf, key)
	pf.Close()
	if err == nil {
		err = bw.Flush()
	}
	w.Close()
	if err != nil {
		b.Fatal(err)
	}
	os.Remove(payload)
	// The FTP server's copy (vsftpd serves as the iadftp user).
	data, err := os.ReadFile(dst)
	if err != nil {
		b.Fatal(err)
	}
	f.ftp.WriteFile(b, name, data)
	f.images[size] = name
	return name
}

// agentRun is one agent process for measuring.
type agentRun struct {
	a *itest.Agent
	g *gosnmp.GoSNMP
}

func startAgent(b *testing.B, f *fixture, slot int64, extra ...string) *agentRun {
	b.Helper()
	args := append([]string{"-rw-community", "private", "-trust", f.key + ".pub", "-hw", benchHW,
		"-slot-size", strconv.FormatInt(slot+(1<<20), 10), "-log-level", "warn"}, extra...)
	a := itest.StartAgent(b, "", args...)
	g := &gosnmp.GoSNMP{Target: "127.0.0.1", Port: uint16(a.Port), Community: "private", Version: gosnmp.Version2c,
		Timeout: 2 * time.Second, Retries: 2, MaxOids: 60}
	if err := g.Connect(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Conn.Close() })
	return &agentRun{a: a, g: g}
}

// op runs one operation to completion and returns how long it took from
// the SET to the first poll that saw it complete (5 ms polling).
func (r *agentRun) op(b *testing.B, idx uint32, typ mib.OpType, proto mib.Protocol, port int, file, user, pass string) time.Duration {
	b.Helper()
	col := func(c mib.OID) string { return c.Append(idx).Dotted() }
	pdus := []gosnmp.SnmpPDU{
		{Name: col(mib.IadOpType), Type: gosnmp.Integer, Value: int(typ)},
		{Name: col(mib.IadOpProtocol), Type: gosnmp.Integer, Value: int(proto)},
		{Name: col(mib.IadOpServerAddressType), Type: gosnmp.Integer, Value: int(mib.InetIPv4)},
		{Name: col(mib.IadOpServerAddress), Type: gosnmp.OctetString, Value: []byte{127, 0, 0, 1}},
		{Name: col(mib.IadOpServerPort), Type: gosnmp.Gauge32, Value: uint(port)},
		{Name: col(mib.IadOpFileName), Type: gosnmp.OctetString, Value: file},
		{Name: col(mib.IadOpTimeout), Type: gosnmp.Gauge32, Value: uint(3600)},
	}
	if user != "" {
		pdus = append(pdus,
			gosnmp.SnmpPDU{Name: col(mib.IadOpUserName), Type: gosnmp.OctetString, Value: user},
			gosnmp.SnmpPDU{Name: col(mib.IadOpPassword), Type: gosnmp.OctetString, Value: pass})
	}
	pdus = append(pdus, gosnmp.SnmpPDU{Name: col(mib.IadOpRowStatus), Type: gosnmp.Integer, Value: int(mib.RowCreateAndGo)})
	t0 := time.Now()
	res, err := r.g.Set(pdus)
	if err != nil || res.Error != gosnmp.NoError {
		b.Fatalf("SET: %v %v", err, res)
	}
	for {
		p, err := r.g.Get([]string{col(mib.IadOpState), col(mib.IadOpFailText)})
		if err != nil {
			b.Fatalf("GET: %v", err)
		}
		st := mib.OpState(gosnmp.ToBigInt(p.Variables[0].Value).Int64())
		switch st {
		case mib.OpSuccessful:
			return time.Since(t0)
		case mib.OpFailed:
			b.Fatalf("operation %d failed: %s", idx, p.Variables[1].Value)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// peakRSS reads VmHWM, the process's peak resident set size, in KiB.
func peakRSS(b *testing.B, pid int) int64 {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			n, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return n
		}
	}
	b.Fatalf("no VmHWM in /proc/%d/status", pid)
	return 0
}

func mbps(size int64, d time.Duration) float64 { return float64(size) / 1e6 / d.Seconds() }

// BenchmarkUpgrade measures the agent's complete upgrade (download,
// header and signature check, payload hash, bank write, fsync, read-back
// verify) against curl's bare download of the same file to disk, and the
// raw pin/tftp client into /dev/null, over TFTP at three block sizes and
// over FTP.
func BenchmarkUpgrade(b *testing.B) {
	f := getFixture(b)
	curl := itest.RequireTool(b, "curl")
	for _, size := range sizesFromEnv(b, "IAD_BENCH_SIZES", []int64{256 << 20}) {
		name := f.image(b, size)
		fi, err := os.Stat(filepath.Join(f.tftp.Dir, name))
		if err != nil {
			b.Fatal(err)
		}
		total := fi.Size()
		for _, c := range []struct {
			label   string
			proto   mib.Protocol
			blksize int
		}{{"tftp-512", mib.ProtocolTFTP, 512}, {"tftp-1468", mib.ProtocolTFTP, 1468}, {"tftp-8192", mib.ProtocolTFTP, 8192}, {"ftp", mib.ProtocolFTP, 0}} {
			b.Run(c.label+"/"+sizeName(size), func(b *testing.B) {
				var agentD, curlD, rawD time.Duration
				var rss int64
				for i := 0; i < b.N; i++ {
					extra := []string{}
					if c.blksize > 0 {
						extra = append(extra, "-tftp-blksize", strconv.Itoa(c.blksize))
					}
					r := startAgent(b, f, size, extra...)
					port, user, pass := f.tftp.Port, "", ""
					if c.proto == mib.ProtocolFTP {
						port, user, pass = f.ftp.Port, f.ftp.User, f.ftp.Password
					}
					agentD += r.op(b, 1, mib.OpUpgrade, c.proto, port, name, user, pass)
					rss = max(rss, peakRSS(b, r.a.PID))
					r.a.Stop(b)

					out := filepath.Join(f.dir, "curl.out")
					var args []string
					if c.proto == mib.ProtocolTFTP {
						args = []string{"-sS", "--tftp-blksize", strconv.Itoa(c.blksize), "-o", out, fmt.Sprintf("tftp://127.0.0.1:%d/%s", port, name)}
					} else {
						args = []string{"-sS", "-o", out, fmt.Sprintf("ftp://%s:%s@127.0.0.1:%d/%s", user, pass, port, name)}
					}
					t0 := time.Now()
					if o, err := exec.Command(curl, args...).CombinedOutput(); err != nil {
						b.Fatalf("curl: %v\n%s", err, o)
					}
					curlD += time.Since(t0)
					os.Remove(out)

					if c.proto == mib.ProtocolTFTP {
						rawD += rawTFTP(b, f.tftp.AddrPort(), name, c.blksize, total)
					}
				}
				n := float64(b.N)
				agentMB, curlMB := mbps(total, agentD/time.Duration(n)), mbps(total, curlD/time.Duration(n))
				b.ReportMetric(agentMB, "agent-MB/s")
				b.ReportMetric(curlMB, "curl-MB/s")
				b.ReportMetric(float64(agentD)/float64(curlD), "agent/curl")
				b.ReportMetric(float64(rss), "agent-peak-RSS-KiB")
				record(Row{Group: "upgrade", Name: "agent upgrade " + c.label, Size: total, MBps: agentMB, Ratio: float64(agentD) / float64(curlD), Ref: "curl " + c.label, RSSKiB: rss})
				record(Row{Group: "upgrade", Name: "curl download " + c.label, Size: total, MBps: curlMB})
				if rawD > 0 {
					rawMB := mbps(total, rawD/time.Duration(n))
					b.ReportMetric(rawMB, "pin/tftp-MB/s")
					record(Row{Group: "upgrade", Name: "pin/tftp to /dev/null " + c.label, Size: total, MBps: rawMB})
				}
			})
		}
	}
}

// rawTFTP downloads with the bare pin/tftp client into io.Discard.
func rawTFTP(b *testing.B, server netip.AddrPort, name string, blksize int, want int64) time.Duration {
	b.Helper()
	c, err := tftp.NewClient(server.String())
	if err != nil {
		b.Fatal(err)
	}
	c.SetBlockSize(blksize)
	t0 := time.Now()
	wt, err := c.Receive(name, "octet")
	if err != nil {
		b.Fatal(err)
	}
	n, err := wt.WriteTo(io.Discard)
	if err != nil || n != want {
		b.Fatalf("pin/tftp: %d bytes, %v; want %d", n, err, want)
	}
	return time.Since(t0)
}
