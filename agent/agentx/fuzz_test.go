package agentx

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/mib"
)

// captureConn is a net.Conn that keeps what is written to it.
type captureConn struct {
	net.Conn
	mu  sync.Mutex
	buf bytes.Buffer
}

func (c *captureConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(b)
}
func (c *captureConn) SetWriteDeadline(time.Time) error { return nil }
func (c *captureConn) Close() error                     { return nil }

func (c *captureConn) take() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := append([]byte(nil), c.buf.Bytes()...)
	c.buf.Reset()
	return b
}

func goldenPDUs(t testing.TB) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.bin"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden PDUs in testdata: %v", err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// TestGoldenPDUs decodes every PDU captured between net-snmp's snmpd and
// the agent, each as the type its name says.
func TestGoldenPDUs(t *testing.T) {
	names := map[string]pduType{"open": typeOpen, "register": typeRegister, "notify": typeNotify, "response": typeResponse,
		"getnext": typeGetNext, "get": typeGet, "testset": typeTestSet, "commitset": typeCommitSet, "cleanupset": typeCleanupSet, "close": typeClose}
	for name, b := range goldenPDUs(t) {
		p, err := decodePDU(b)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		kind := strings.SplitN(strings.TrimSuffix(name, ".bin"), "-", 3)[1]
		if want := names[kind]; p.typ != want {
			t.Errorf("%s: decoded as %v, want %v", name, p.typ, want)
		}
		if kind == "register" && !p.registered.Equal(oidOurs) {
			t.Errorf("%s: registers %v", name, p.registered)
		}
	}
}

// FuzzDecodePDU feeds arbitrary bytes to the PDU decoder and what it
// accepts to the request handlers: nothing may panic, and every answer is
// one well-formed Response to the request's packet.
func FuzzDecodePDU(f *testing.F) {
	for _, b := range goldenPDUs(f) {
		f.Add(b)
	}
	c, err := New(Options{Address: "unix:/nonexistent", Tree: &newTestTree(f).Tree, Subtrees: []mib.OID{oidOurs}, Uptime: func() uint32 { return 1 }})
	if err != nil {
		f.Fatal(err)
	}
	conn := &captureConn{}
	s := newSession(c, conn)
	s.id.Store(5) // the session in the captures
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodePDU(b)
		if err != nil || p.typ == typeResponse {
			return
		}
		s.serve(context.Background(), p)
		out := conn.take()
		if len(out) == 0 {
			if p.typ != typeCleanupSet && p.typ != typeClose {
				t.Fatalf("no answer to %v", p.typ)
			}
			return
		}
		r, err := decodePDU(out)
		if err != nil {
			t.Fatalf("answer to %v does not decode: %v", p.typ, err)
		}
		if r.typ != typeResponse || r.packetID != p.packetID || r.transactionID != p.transactionID {
			t.Fatalf("answer to %v: %v packet %d, want Response to packet %d", p.typ, r.typ, r.packetID, p.packetID)
		}
	})
}
