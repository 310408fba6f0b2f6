package notify

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/iadsafe/iad-agent/mib"
)

// receiver is a UDP socket on loopback that decodes v2c traps.
func receiver(t *testing.T) (net.PacketConn, string) {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, c.LocalAddr().String()
}

func readTrap(t *testing.T, c net.PacketConn) *gosnmp.SnmpPacket {
	t.Helper()
	buf := make([]byte, 65535)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no trap received: %v", err)
	}
	g := &gosnmp.GoSNMP{Version: gosnmp.Version2c, Logger: gosnmp.NewLogger(nil)}
	p, err := g.SnmpDecodePacket(buf[:n])
	if err != nil {
		t.Fatalf("decoding trap: %v", err)
	}
	return p
}

func TestNotifyVarbindOrder(t *testing.T) {
	c, addr := receiver(t)
	s, err := New(Options{Targets: []string{addr}, Uptime: func() uint32 { return 4242 }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	v := VarBind{Name: mib.IadOpState.Append(7).Dotted(), Type: gosnmp.Integer, Value: 3}
	s.Notify(mib.IadOpCompletedNotify, v)
	p := readTrap(t, c)
	if p.PDUType != gosnmp.SNMPv2Trap || p.Community != "public" {
		t.Fatalf("got PDU %v community %q, want SNMPv2Trap with public", p.PDUType, p.Community)
	}
	if len(p.Variables) != 3 {
		t.Fatalf("got %d varbinds, want 3", len(p.Variables))
	}
	if got := p.Variables[0]; got.Name != ".1.3.6.1.2.1.1.3.0" || got.Value != uint32(4242) {
		t.Errorf("varbind 1: got %s=%v, want sysUpTime.0=4242 (our own, not gosnmp's)", got.Name, got.Value)
	}
	if got := p.Variables[1]; got.Name != mib.SnmpTrapOID.Append(0).Dotted() || got.Value != mib.IadOpCompletedNotify.Dotted() {
		t.Errorf("varbind 2: got %s=%v, want snmpTrapOID.0=%s", got.Name, got.Value, mib.IadOpCompletedNotify.Dotted())
	}
	if got := p.Variables[2]; got.Name != v.Name || got.Value != 3 {
		t.Errorf("varbind 3: got %s=%v, want %s=3", got.Name, got.Value, v.Name)
	}
}

// A full queue drops the oldest notification and counts it; what is left
// is delivered in order, even when Run is already stopping.
func TestQueueDropsOldest(t *testing.T) {
	c, addr := receiver(t)
	s, err := New(Options{Targets: []string{addr}, Uptime: func() uint32 { return 1 }, QueueLen: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		s.Notify(mib.IadOpProgressNotify, VarBind{Name: mib.IadOpProgress.Append(1).Dotted(), Type: gosnmp.Gauge32, Value: uint32(i * 10)})
	}
	if got := s.Dropped(); got != 3 {
		t.Fatalf("Dropped: got %d, want 3", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // flush on stop
	s.Run(ctx)
	for _, want := range []uint32{30, 40} {
		p := readTrap(t, c)
		if got := gosnmp.ToBigInt(p.Variables[2].Value).Uint64(); got != uint64(want) {
			t.Errorf("got progress %v, want %d", got, want)
		}
	}
	if got := s.Sent(); got != 2 {
		t.Errorf("Sent: got %d, want 2", got)
	}
}

func TestBadTargets(t *testing.T) {
	for _, target := range []string{"localhost", ":162", "127.0.0.1:notaport", "127.0.0.1:70000"} {
		_, err := New(Options{Targets: []string{target}, Uptime: func() uint32 { return 0 }})
		if !errors.Is(err, ErrBadTarget) {
			t.Errorf("target %q: got %v, want ErrBadTarget", target, err)
		}
	}
	if _, err := New(Options{}); err == nil {
		t.Error("New without Uptime: got nil error")
	}
}
