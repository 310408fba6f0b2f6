package itest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"
)

// FleetOptions shape StartAgents.
type FleetOptions struct {
	// Args returns agent i's arguments after -data and -listen.
	Args func(i int) []string
	// Env is added to each agent's environment (e.g. "GOMAXPROCS=1" to
	// keep hundreds of agents light on a small machine).
	Env []string
	// Parallel bounds the agents started at once (default 32).
	Parallel int
}

// StartAgents starts n agents at once, each on its own free loopback port
// (below the ephemeral range, see fixedPort) with its own data directory, and waits until every one answers: a fleet
// for management-station tests, where starting hundreds one by one would
// take long. The readiness probe is an in-process SNMP GET, not a
// net-snmp tool, for the same reason. Cleanup stops them all; on failure
// it shows the log of at most three.
func StartAgents(t testing.TB, n int, o FleetOptions) []*Agent {
	t.Helper()
	bin := BuildAgent(t)
	if o.Args == nil {
		o.Args = func(int) []string { return nil }
	}
	if o.Parallel <= 0 {
		o.Parallel = 32
	}
	env := append(os.Environ(), o.Env...)
	agents := make([]*Agent, n)
	used := map[int]bool{}
	for i := range agents {
		args := o.Args(i)
		agents[i] = &Agent{
			Bin:       bin,
			DataDir:   t.TempDir(),
			Args:      args,
			LogPath:   filepath.Join(t.TempDir(), "iad-agent.log"),
			Community: flagValue(args, "ro-community", "public"),
		}
	}
	t.Cleanup(func() { stopFleet(t, agents) })
	errs := make([]error, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, o.Parallel)
	for i, a := range agents {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			// A port that was free when chosen can be taken before the
			// agent binds it: try another.
			for range 3 {
				mu.Lock()
				port, err := fixedPort(used)
				if err != nil {
					mu.Unlock()
					errs[i] = err
					return
				}
				used[port] = true
				mu.Unlock()
				a.Port = port
				p, err := launch("iad-agent", a.LogPath, env, a.argv()...)
				if err != nil {
					errs[i] = err
					return
				}
				a.mu.Lock()
				a.proc, a.PID = p, p.pid()
				a.mu.Unlock()
				errs[i] = p.waitStarted(agentTimeout, func() error { return probeGet(a.Target(), a.Community) })
				if errs[i] == nil {
					return
				}
				p.kill9()
			}
		}()
	}
	wg.Wait()
	var bad []string
	for i, err := range errs {
		if err != nil {
			bad = append(bad, fmt.Sprintf("agent %d (%s): %v\nlog tail:\n%s", i, agents[i].Target(), err, agents[i].LogTail(10)))
		}
	}
	if len(bad) > 0 {
		t.Fatalf("%d of %d agents did not start; first:\n%s", len(bad), n, bad[0])
	}
	return agents
}

// fixedPort picks a free UDP port on 127.0.0.1 below the kernel's
// ephemeral range. An agent's reset re-executes it, leaving its port
// unbound for a moment; a port from the ephemeral range can be handed in
// that moment to any new socket (a TFTP transfer, a client), and the
// restarted agent could not bind it again. Ports below the range are
// never handed out by the kernel, as a device's port 161 is not.
func fixedPort(used map[int]bool) (int, error) {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	const from = 10000
	if low-from < 1000 {
		return 0, fmt.Errorf("itest: the ephemeral port range starts at %d: no room below it for agents", low)
	}
	for range 1000 {
		port := from + rand.IntN(low-from)
		if used[port] {
			continue
		}
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err != nil {
			continue
		}
		c.Close()
		return port, nil
	}
	return 0, fmt.Errorf("itest: no free UDP port between %d and %d", from, low)
}

var errNoAnswer = errors.New("itest: no sysUpTime")

// probeGet asks target for sysUpTime.0 with one quick in-process GET.
func probeGet(target, community string) error {
	host, port, _ := strings.Cut(target, ":")
	var p uint16
	fmt.Sscan(port, &p)
	g := &gosnmp.GoSNMP{Target: host, Port: p, Community: community, Version: gosnmp.Version2c,
		Timeout: 300 * time.Millisecond, Retries: 0, Logger: gosnmp.NewLogger(nil)}
	if err := g.Connect(); err != nil {
		return err
	}
	defer g.Conn.Close()
	r, err := g.Get([]string{".1.3.6.1.2.1.1.3.0"})
	if err != nil {
		return err
	}
	if len(r.Variables) != 1 || r.Variables[0].Type != gosnmp.TimeTicks {
		return errNoAnswer
	}
	return nil
}

// stopFleet stops every agent at once (SIGTERM, then SIGKILL after 10s).
func stopFleet(t testing.TB, agents []*Agent) {
	shown := 0
	for _, a := range agents {
		if a == nil || a.current() == nil {
			continue
		}
		if b, err := os.ReadFile(a.LogPath); err == nil && strings.Contains(string(b), "WARNING: DATA RACE") {
			t.Errorf("agent %s reported a data race; see %s", a.Target(), a.LogPath)
		}
		if t.Failed() && shown < 3 {
			shown++
			t.Logf("iad-agent %s log (tail):\n%s", a.Target(), a.LogTail(tailLines))
		}
	}
	var wg sync.WaitGroup
	for _, a := range agents {
		if a == nil || a.current() == nil {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); a.stop() }()
	}
	wg.Wait()
}
