package snmp

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func listen(t *testing.T) net.PacketConn {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// netsnmp runs one of net-snmp's tools against addr with no MIBs loaded and
// no user configuration, returning its combined output.
func netsnmp(t *testing.T, addr, tool string, opts []string, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed: %v", tool, err)
		}
		t.Skipf("%s not installed", tool)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	full := append([]string{"-m", "", "-On", "-t", "2", "-r", "2"}, opts...)
	full = append(append(full, addr), args...)
	cmd := exec.CommandContext(ctx, path, full...)
	dir := t.TempDir()
	cmd.Env = append(os.Environ(), "HOME="+dir, "SNMPCONFPATH="+dir, "SNMP_PERSISTENT_DIR="+dir, "MIBS=")
	out, err := cmd.CombinedOutput()
	t.Logf("%s %s\n%s", tool, strings.Join(full, " "), out)
	return string(out), err
}

func v2c(community string) []string { return []string{"-v2c", "-c", community} }

// oidsOf returns the numeric OIDs at the start of each "OID = value" line.
func oidsOf(out string) []string {
	var oids []string
	for _, line := range strings.Split(out, "\n") {
		// net-snmp prints the endOfMibView that ends a walk of everything.
		if name, value, ok := strings.Cut(line, " = "); ok && !strings.HasPrefix(value, "No more variables") {
			oids = append(oids, strings.TrimPrefix(name, "."))
		}
	}
	return oids
}

func TestNetSNMPTools(t *testing.T) {
	f := newFixture(t, Options{})
	conn := listen(t)
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.e.Serve(ctx, conn) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	addr := conn.LocalAddr().String()

	t.Run("snmpget", func(t *testing.T) {
		out, err := netsnmp(t, addr, "snmpget", v2c("public"), "1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.2.0")
		if err != nil {
			t.Fatalf("snmpget: %v", err)
		}
		for _, want := range []string{
			".1.3.6.1.2.1.1.3.0 = Timeticks: (",
			`.1.3.6.1.2.1.1.5.0 = STRING: "iad-1"`,
			".1.3.6.1.2.1.1.2.0 = OID: .1.3.6.1.4.1.99999.42",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q", want)
			}
		}
	})

	for _, tool := range []string{"snmpwalk", "snmpbulkwalk"} {
		t.Run(tool, func(t *testing.T) {
			opts := v2c("public")
			if tool == "snmpbulkwalk" {
				opts = append(opts, "-Cr5")
			}
			out, err := netsnmp(t, addr, tool, opts, ".1.3")
			if err != nil {
				t.Fatalf("%s: %v", tool, err)
			}
			if got := oidsOf(out); strings.Join(got, " ") != strings.Join(fullWalk, " ") {
				t.Errorf("got walk\n %v\nwant\n %v", got, fullWalk)
			}
			for _, want := range []string{
				".1.3.6.1.4.1.99999.1.3.0 = Counter64: 1099511627776",
				`.1.3.6.1.4.1.99999.2.1.2.1.5 = STRING: "row 1.5"`,
				".1.3.6.1.4.1.99999.2.1.3.3.7 = Gauge32: 3",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("output lacks %q", want)
				}
			}
			if strings.Contains(out, "OID not increasing") {
				t.Error("net-snmp saw OIDs out of order")
			}
		})
	}

	t.Run("snmpset", func(t *testing.T) {
		out, err := netsnmp(t, addr, "snmpset", v2c("private"), "1.3.6.1.4.1.99999.1.1.0", "i", "5")
		if err != nil {
			t.Fatalf("snmpset: %v", err)
		}
		if !strings.Contains(out, ".1.3.6.1.4.1.99999.1.1.0 = INTEGER: 5") {
			t.Errorf("output lacks the echoed value")
		}
		if level, _ := f.state(); level != 5 {
			t.Errorf("got level %d after set, want 5", level)
		}
	})

	t.Run("snmpset wrong type", func(t *testing.T) {
		out, err := netsnmp(t, addr, "snmpset", v2c("private"), "1.3.6.1.4.1.99999.1.1.0", "s", "five")
		if err == nil {
			t.Error("snmpset succeeded, want a failure")
		}
		if !strings.Contains(out, "wrongType") || !strings.Contains(out, ".1.3.6.1.4.1.99999.1.1.0") {
			t.Errorf("output lacks wrongType for the varbind")
		}
		if level, _ := f.state(); level != 5 {
			t.Errorf("got level %d after a refused set, want 5", level)
		}
	})

	t.Run("snmpget v1", func(t *testing.T) {
		out, err := netsnmp(t, addr, "snmpget", []string{"-v1", "-c", "public"}, "1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.5.1")
		if err == nil {
			t.Error("snmpget of a missing instance succeeded, want noSuchName")
		}
		if !strings.Contains(out, "noSuchName") || !strings.Contains(out, ".1.3.6.1.2.1.1.5.1") {
			t.Errorf("output lacks noSuchName for the second varbind")
		}
	})
}
