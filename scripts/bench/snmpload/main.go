// Command bench is the SNMP GET load generator for comparing iad-agent with
// net-snmp's snmpd on the same machine: N concurrent clients, each with its
// own socket, each sending one GET at a time for a fixed time, built with
// gosnmp so both agents face exactly the same client. It is a benchmark,
// not a test; run.sh beside it drives it. It must never point at anything but
// loopback.
package main

import (
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gosnmp/gosnmp"
)

func main() {
	var (
		target   = flag.String("target", "127.0.0.1:16161", "agent HOST:PORT (loopback only)")
		clients  = flag.Int("clients", 8, "concurrent clients")
		duration = flag.Duration("duration", 10*time.Second, "how long to send")
		oid      = flag.String("oid", ".1.3.6.1.2.1.1.5.0", "object to GET (sysName.0: both agents serve it)")
		comm     = flag.String("community", "public", "v2c community")
		user     = flag.String("v3user", "", "SNMPv3 user (authPriv SHA/AES with -v3auth/-v3priv) instead of v2c")
		authPass = flag.String("v3auth", "", "SNMPv3 authentication pass phrase")
		privPass = flag.String("v3priv", "", "SNMPv3 privacy pass phrase")
		label    = flag.String("label", "", "name printed with the result")
	)
	flag.Parse()
	host, port, err := net.SplitHostPort(*target)
	if err != nil {
		fail("bad -target: %v", err)
	}
	if a, err := netip.ParseAddr(host); err != nil || !a.IsLoopback() {
		fail("-target must be a loopback address, got %q", host)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		fail("bad port: %v", err)
	}

	var ok, failed atomic.Int64
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < *clients; i++ {
		g := &gosnmp.GoSNMP{Target: host, Port: uint16(p), Community: *comm, Version: gosnmp.Version2c,
			Timeout: 2 * time.Second, Retries: 0, MaxOids: 1}
		if *user != "" {
			g.Version = gosnmp.Version3
			g.SecurityModel = gosnmp.UserSecurityModel
			g.MsgFlags = gosnmp.AuthPriv
			g.SecurityParameters = &gosnmp.UsmSecurityParameters{UserName: *user,
				AuthenticationProtocol: gosnmp.SHA, AuthenticationPassphrase: *authPass,
				PrivacyProtocol: gosnmp.AES, PrivacyPassphrase: *privPass}
		}
		if err := g.Connect(); err != nil {
			fail("connect: %v", err)
		}
		// One GET before the clock starts: SNMPv3 discovery, warm caches.
		if _, err := g.Get([]string{*oid}); err != nil {
			fail("first GET: %v", err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer g.Conn.Close()
			<-start
			deadline := time.Now().Add(*duration)
			for time.Now().Before(deadline) {
				r, err := g.Get([]string{*oid})
				if err != nil || r.Error != gosnmp.NoError || len(r.Variables) != 1 {
					failed.Add(1)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(t0)
	fmt.Printf("%-28s clients=%d duration=%v GETs=%d failed=%d GET/s=%.0f\n",
		*label, *clients, elapsed.Round(time.Millisecond), ok.Load(), failed.Load(), float64(ok.Load())/elapsed.Seconds())
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
	os.Exit(1)
}
