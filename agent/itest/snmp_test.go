package itest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestSNMPGetAndWalkByName(t *testing.T) {
	d := StartSNMPD(t, "rocommunity public 127.0.0.1\nsysLocation lab rack \"7\"\nsysContact two\n")
	c := SNMP{Target: d.Target()}

	got := c.Get(t, "SNMPv2-MIB::sysUpTime.0", "sysLocation.0", "sysORLastChange.0", "SNMPv2-MIB::sysDescr.99")
	if _, err := strconv.ParseInt(got["SNMPv2-MIB::sysUpTime.0"], 10, 64); err != nil {
		t.Errorf("got sysUpTime %q, want a number of hundredths", got["SNMPv2-MIB::sysUpTime.0"])
	}
	if want := `lab rack "7"`; got["sysLocation.0"] != want {
		t.Errorf("got sysLocation %q, want %q", got["sysLocation.0"], want)
	}
	if got["SNMPv2-MIB::sysDescr.99"] != NoSuchInstance {
		t.Errorf("got sysDescr.99 %q, want %q", got["SNMPv2-MIB::sysDescr.99"], NoSuchInstance)
	}
	if v := c.GetValue(t, "sysContact.0"); v != "two" {
		t.Errorf("got sysContact %q, want \"two\"", v)
	}

	for _, walk := range []struct {
		name string
		fn   func(testing.TB, string) []VarBind
	}{{"getnext", c.Walk}, {"getbulk", c.BulkWalk}} {
		t.Run(walk.name, func(t *testing.T) {
			vars := walk.fn(t, "SNMPv2-MIB::system")
			if len(vars) < 5 {
				t.Fatalf("got %d variables under system, want at least 5: %v", len(vars), vars)
			}
			if vars[0].OID != "1.3.6.1.2.1.1.1.0" {
				t.Errorf("got first OID %q, want 1.3.6.1.2.1.1.1.0 (sysDescr.0)", vars[0].OID)
			}
			for _, v := range vars {
				if !strings.HasPrefix(v.OID, "1.3.6.1.2.1.1.") {
					t.Errorf("got %s outside system", v.OID)
				}
			}
		})
	}

	out, err := c.Set(t, "sysContact.0", "s", "nobody")
	if err == nil {
		t.Fatalf("set on a read-only community succeeded: %s", out)
	}
	if !strings.Contains(out, "noAccess") && !strings.Contains(out, "notWritable") && !strings.Contains(out, "authorization") {
		t.Errorf("got set output %q, want an SNMP error status", out)
	}
}

func TestSNMPEnvResolvesIADMIB(t *testing.T) {
	if _, err := os.Stat(filepath.Join(RepoRoot(t), "mib", "IAD-UPGRADE-MIB.txt")); err != nil {
		t.Fatalf("mib/IAD-UPGRADE-MIB.txt: %v", err)
	}
	var c SNMP
	if got := c.Translate(t, "IAD-UPGRADE-MIB::iadOpRowStatus"); !strings.HasPrefix(got, "1.3.6.1.4.1.") {
		t.Errorf("got iadOpRowStatus = %q, want an OID under enterprises", got)
	}
	if got := c.Translate(t, "SNMPv2-MIB::sysUpTime.0"); got != "1.3.6.1.2.1.1.3.0" {
		t.Errorf("got sysUpTime.0 = %q, want 1.3.6.1.2.1.1.3.0", got)
	}
}

func TestAgentLifecycleWithStandIn(t *testing.T) {
	RequireTool(t, "snmpd")
	bin := BuildCommand(t, "./agent/itest/testdata/fakeagent")
	a := startAgentBin(t, bin, "", "-ro-community", "itest-ro")
	if a.Community != "itest-ro" {
		t.Fatalf("got probe community %q, want itest-ro", a.Community)
	}
	pid := a.PID
	a.WaitLog(t, 0, "fakeagent: starting snmpd")

	if up := a.Uptime(t); up < 0 {
		t.Fatalf("got sysUpTime %d, want >= 0", up)
	}
	logSize := a.LogSize()
	a.Kill9(t)
	if gone, _ := a.Exited(); !gone {
		t.Fatalf("agent still running after Kill9")
	}
	a.Restart(t)
	if a.PID == pid {
		t.Errorf("got the same PID %d after Restart, want a new process", pid)
	}
	a.WaitLog(t, logSize, "fakeagent: starting snmpd")
	a.WaitRestarted(t, 1<<62)
	if got := a.SNMP("").GetValue(t, "sysUpTime.0"); got == "" {
		t.Errorf("got empty sysUpTime from the restarted agent")
	}

	a.Stop(t)
	if gone, _ := a.Exited(); !gone {
		t.Fatalf("agent still running after Stop")
	}
}

func TestFlagValue(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "def"},
		{[]string{"-ro-community", "x"}, "x"},
		{[]string{"--ro-community=y"}, "y"},
		{[]string{"-rw-community", "z"}, "def"},
		{[]string{"-ro-community"}, "def"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			if got := flagValue(tt.args, "ro-community", "def"); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMain(m *testing.M) { os.Exit(Main(m)) }
