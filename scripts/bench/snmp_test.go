package bench

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/iadsafe/iad-agent/agent/itest"
)

// BenchmarkSNMP measures GET and GETBULK requests per second served by
// iad-agent and by net-snmp's snmpd on the same machine, with the same
// load generator (gosnmp, N concurrent clients, one outstanding request
// each, each on its own socket), and the latency distribution.
func BenchmarkSNMP(b *testing.B) {
	clients := envInt(b, "IAD_BENCH_SNMP_CLIENTS", 8)
	dur, err := time.ParseDuration(orDefault(os.Getenv("IAD_BENCH_SNMP_TIME"), "5s"))
	if err != nil {
		b.Fatalf("IAD_BENCH_SNMP_TIME: %v", err)
	}
	agent := itest.StartAgent(b, "", "-slot-size", "1MiB", "-log-level", "error")
	snmpd := itest.StartSNMPD(b, "")
	for _, target := range []struct {
		name string
		port int
	}{{"iad-agent", agent.Port}, {"snmpd", snmpd.Port}} {
		for _, kind := range []string{"GET", "GETBULK"} {
			b.Run(target.name+"/"+kind, func(b *testing.B) {
				var res loadResult
				for i := 0; i < b.N; i++ {
					res = load(b, target.port, kind, clients, dur)
				}
				b.ReportMetric(res.rps, "req/s")
				b.ReportMetric(float64(res.p50.Microseconds()), "p50-µs")
				b.ReportMetric(float64(res.p99.Microseconds()), "p99-µs")
				record(Row{Group: "snmp", Name: fmt.Sprintf("%s %s, %d clients", target.name, kind, clients),
					Value: res.rps, Unit: "req/s",
					Extra: fmt.Sprintf("latency p50 %v, p90 %v, p99 %v, max %v; %d errors", res.p50, res.p90, res.p99, res.max, res.errors)})
			})
		}
	}
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s: bad number %q", name, v)
	}
	return n
}

type loadResult struct {
	rps                float64
	p50, p90, p99, max time.Duration
	errors             int
}

// load runs clients concurrent request loops against 127.0.0.1:port for
// d. GET asks for sysName.0 (both agents serve it); GETBULK walks the
// system group with max-repetitions 10.
func load(b *testing.B, port int, kind string, clients int, d time.Duration) loadResult {
	b.Helper()
	var mu sync.Mutex
	var all []time.Duration
	errs := 0
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for c := 0; c < clients; c++ {
		g := &gosnmp.GoSNMP{Target: "127.0.0.1", Port: uint16(port), Community: "public", Version: gosnmp.Version2c,
			Timeout: 2 * time.Second, Retries: 0, MaxOids: 60, MaxRepetitions: 10}
		if err := g.Connect(); err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer g.Conn.Close()
			lat := make([]time.Duration, 0, 1<<16)
			e := 0
			for time.Now().Before(deadline) {
				t0 := time.Now()
				var err error
				if kind == "GET" {
					_, err = g.Get([]string{".1.3.6.1.2.1.1.5.0"})
				} else {
					_, err = g.GetBulk([]string{".1.3.6.1.2.1.1"}, 0, 10)
				}
				if err != nil {
					e++
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			all = append(all, lat...)
			errs += e
			mu.Unlock()
		}()
	}
	wg.Wait()
	if len(all) == 0 {
		b.Fatalf("%s on port %d: no request succeeded (%d errors)", kind, port, errs)
	}
	slices.Sort(all)
	q := func(p float64) time.Duration { return all[min(len(all)-1, int(p*float64(len(all))))] }
	return loadResult{rps: float64(len(all)) / d.Seconds(), p50: q(0.5), p90: q(0.9), p99: q(0.99), max: all[len(all)-1], errors: errs}
}
