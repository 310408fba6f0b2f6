package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/iadsafe/iad-agent/agent/snmp/snmpconf"
)

// A bad SNMP access file stops the agent with a clear error before it
// serves, and releases what it had opened (the journal's lock).
func TestNewRefusesBadSNMPConfig(t *testing.T) {
	data := t.TempDir()
	dir := t.TempDir()
	for _, tt := range []struct {
		name, conf string
		mode       os.FileMode
		want       error
	}{
		{"world-readable with secrets", "community secret-community rw\n", 0o644, snmpconf.ErrWorldReadable},
		{"syntax", "user admin auth SHA \"a pass phrase\" rw stray words\n", 0o600, snmpconf.ErrSyntax},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, "snmp.conf")
			os.Remove(p)
			if err := os.WriteFile(p, []byte(tt.conf), tt.mode); err != nil {
				t.Fatal(err)
			}
			a, err := New(context.Background(), Options{DataDir: data, Listen: "127.0.0.1:0", SlotSize: 1 << 20, SNMPConfigFile: p})
			if !errors.Is(err, tt.want) || a != nil {
				t.Fatalf("got %v, %v; want %v", a, err, tt.want)
			}
		})
	}
	// Everything was closed: the same data directory opens again.
	a, err := New(context.Background(), Options{DataDir: data, Listen: "127.0.0.1:0", SlotSize: 1 << 20})
	if err != nil {
		t.Fatalf("reopening after refused starts: %v", err)
	}
	a.close()
}
