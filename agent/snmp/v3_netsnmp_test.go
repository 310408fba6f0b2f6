package snmp

import (
	"strings"
	"testing"

	"github.com/iadsafe/iad-agent/agent/snmp/usm"
)

// TestV3NetSNMPSpotCheck runs net-snmp's snmpget against the in-process
// engine for the protocol extremes; agent/itest runs the whole matrix
// against the real agent.
func TestV3NetSNMPSpotCheck(t *testing.T) {
	if testing.Short() {
		t.Skip("runs net-snmp")
	}
	f := v3Fixture(t)
	addr := serve(t, f.e)
	for _, c := range []struct {
		a usm.AuthProtocol
		p usm.PrivProtocol
	}{{usm.MD5, usm.DES}, {usm.SHA, usm.AES}, {usm.SHA256, usm.AES192}, {usm.SHA512, usm.AES256}, {usm.SHA224, usm.NoPriv}, {usm.MD5, usm.AES256}, {usm.SHA, usm.AES192}} {
		name := userName(c.a, c.p)
		t.Run(name, func(t *testing.T) {
			opts := []string{"-v3", "-u", name, "-l", "authNoPriv", "-a", c.a.String(), "-A", authPass}
			if c.p != usm.NoPriv {
				opts = append(opts, "-l", "authPriv", "-x", c.p.String(), "-X", privPass)
			}
			out, err := netsnmp(t, addr, "snmpget", opts, "1.3.6.1.2.1.1.5.0")
			if err != nil || !strings.Contains(out, `"iad-1"`) {
				t.Fatalf("snmpget: %v\n%s", err, out)
			}
		})
	}
}
