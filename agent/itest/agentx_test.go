package itest

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/mib"
)

// subAgent starts snmpd as AgentX master and the agent as its sub-agent.
func subAgent(t *testing.T, extraConf string, args ...string) (*SNMPD, *Agent) {
	t.Helper()
	master := StartSNMPDMaster(t, extraConf)
	return master, StartSubAgent(t, master, "", append([]string{"-slot-size", "1MiB"}, args...)...)
}

// TestAgentXSetAtomicity: a SET whose varbinds span the master and the
// sub-agent changes nothing unless every TestSet passes, whichever side
// fails.
func TestAgentXSetAtomicity(t *testing.T) {
	master, a := subAgent(t, "")
	rw, ro := a.SNMP("private"), a.SNMP("public")
	state := func() (limit, location, row9, row10 string) {
		v := ro.Get(t, "iadSwBootLimit.0", "SNMPv2-MIB::sysLocation.0", "iadOpRowStatus.9", "iadOpRowStatus.10")
		return v["iadSwBootLimit.0"], v["SNMPv2-MIB::sysLocation.0"], v["iadOpRowStatus.9"], v["iadOpRowStatus.10"]
	}
	limit0, loc0, _, _ := state()

	for _, tt := range []struct {
		name   string
		args   []string
		status string
	}{
		{"both in the sub-agent, the second fails", []string{
			"iadSwBootLimit.0", "u", "7", "iadOpType.9", "i", "99", "iadOpRowStatus.9", "i", "createAndGo"}, "wrongValue"},
		{"sub-agent passes, master fails", []string{
			"iadSwBootLimit.0", "u", "7", "iadOpType.10", "i", "revert", "iadOpRowStatus.10", "i", "createAndGo",
			"SNMPv2-MIB::sysLocation.0", "i", "5"}, "wrongType"},
		{"master passes, sub-agent fails", []string{
			"SNMPv2-MIB::sysLocation.0", "s", "rack-9", "iadSwBootLimit.0", "u", "99"}, "wrongValue"},
		{"a read-only object of the sub-agent", []string{
			"SNMPv2-MIB::sysLocation.0", "s", "rack-9", "iadSwHardware.0", "s", "other"}, "notWritable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// -Ir: let the wrong type through to the agents instead of
			// refusing it in snmpset.
			stdout, stderr, err := rw.run(t, "snmpset", append(append(rw.common(), "-Ir", a.Target()), tt.args...)...)
			out := stdout + stderr
			if err == nil || !strings.Contains(out, tt.status) {
				t.Fatalf("snmpset through %v: err %v, output %q, want %s", master, err, out, tt.status)
			}
			limit, loc, row9, row10 := state()
			if limit != limit0 || loc != loc0 || row9 != NoSuchInstance || row10 != NoSuchInstance {
				t.Errorf("after the failed SET: iadSwBootLimit %s (was %s), sysLocation %q (was %q), rows 9/10 %q/%q (want none): something was applied",
					limit, limit0, loc, loc0, row9, row10)
			}
		})
	}

	// And one that spans both and passes: both sides apply it.
	if out, err := rw.Set(t, "SNMPv2-MIB::sysLocation.0", "s", "rack-9", "iadSwBootLimit.0", "u", "6"); err != nil {
		t.Fatalf("good SET across master and sub-agent: %v\n%s", err, out)
	}
	if limit, loc, _, _ := state(); limit != "6" || loc != "rack-9" {
		t.Errorf("after a good SET: iadSwBootLimit %s, sysLocation %q; want 6 and rack-9", limit, loc)
	}
}

// isIncreasing reports the first pair of OIDs out of strict order.
func isIncreasing(vbs []VarBind) (int, bool) {
	for i := 1; i < len(vbs); i++ {
		a, errA := mib.ParseOID(vbs[i-1].OID)
		b, errB := mib.ParseOID(vbs[i].OID)
		if errA != nil || errB != nil || a.Compare(b) >= 0 {
			return i, false
		}
	}
	return 0, true
}

// TestAgentXWalkAcrossBoundary: walks that enter and leave the
// sub-agent's subtree see every object once, in order, with the master's
// objects on either side.
func TestAgentXWalkAcrossBoundary(t *testing.T) {
	_, a := subAgent(t, "")
	ro := a.SNMP("public")
	ours := mib.IadUpgradeMIB.String() + "."
	first := mib.IadSwCurrentVersion.Append(0).String()
	last := mib.IadConfigBackupEncrypted.Append(0).String()

	// The subtree alone: 6 iadSw scalars, 2 banks x 4 columns, 6 iadConfig
	// scalars (no operation rows yet).
	const want = 6 + 2*4 + 6
	for _, vbs := range [][]VarBind{ro.Walk(t, "iadUpgradeMIB"), ro.BulkWalk(t, "iadUpgradeMIB")} {
		if len(vbs) != want || vbs[0].OID != first || vbs[want-1].OID != last {
			t.Fatalf("walk of iadUpgradeMIB: %d variables from %v to %v, want %d from %s to %s", len(vbs), vbs[0], vbs[len(vbs)-1], want, first, last)
		}
	}

	// GetNext at both edges.
	out, err := ro.Run(t, "snmpgetnext", append(append(ro.common(), valueOpts...), a.Target(), "1.3.6.1.4.1.32472.999", last)...)
	if err != nil {
		t.Fatal(err)
	}
	edge := parseAnswer(out)
	if len(edge) != 2 || edge[0].OID != first {
		t.Fatalf("getnext before the subtree: %v, want %s", edge, first)
	}
	if after := edge[1].OID; strings.HasPrefix(after, ours) || mib.MustParseOID(after).Compare(mib.MustParseOID(last)) <= 0 {
		t.Errorf("getnext after the last object: %s, want the master's next object beyond %s", after, ours)
	}

	// Walks from the master's objects through ours and out again.
	check := func(tool string, vbs []VarBind) {
		t.Helper()
		if i, ok := isIncreasing(vbs); !ok {
			t.Fatalf("%s: OIDs not increasing at %d: %s then %s", tool, i, vbs[i-1].OID, vbs[i].OID)
		}
		var n, before, after int
		for _, vb := range vbs {
			switch {
			case strings.HasPrefix(vb.OID, ours):
				n++
			case n == 0:
				before++
			default:
				after++
			}
		}
		if n != want || before == 0 || after == 0 {
			t.Errorf("%s: %d of our objects with %d of the master's before and %d after, want %d with some on both sides", tool, n, before, after, want)
		}
		t.Logf("%s: %d variables, %d of them the sub-agent's", tool, len(vbs), n)
	}
	out, err = ro.Run(t, "snmpwalk", append(append(ro.common(), valueOpts...), "-CE", "1.3.6.1.6.3.16", a.Target(), "1.3.6.1.4.1")...)
	if err != nil {
		t.Fatal(err)
	}
	check("snmpwalk", parseAnswer(out))
	out, err = ro.Run(t, "snmpbulkwalk", append(append(ro.common(), valueOpts...), "-Cr7", a.Target(), "1.3.6.1.4.1")...)
	if err != nil {
		t.Fatal(err)
	}
	// snmpbulkwalk of enterprises ends at the end of that subtree; go on
	// from its last object into the snmpModules after it.
	bulk := parseAnswer(out)
	out, err = ro.Run(t, "snmpbulkwalk", append(append(ro.common(), valueOpts...), "-Cr7", a.Target(), "1.3.6.1.6.3.1")...)
	if err != nil {
		t.Fatal(err)
	}
	check("snmpbulkwalk", append(bulk, parseAnswer(out)...))
}

// TestAgentXMasterRestart: when snmpd crashes or is restarted, the
// sub-agent connects again and registers within seconds, and its
// notifications flow through the new master.
func TestAgentXMasterRestart(t *testing.T) {
	traps := StartTrapReceiver(t)
	master, a := subAgent(t, "trap2sink "+traps.Target()+" public")
	ro := a.SNMP("public")
	obj := mib.IadSwHardware.Append(0).String()

	for _, how := range []string{"kill -9", "stop"} {
		from := a.LogSize()
		if how == "kill -9" {
			master.Kill9(t)
		} else {
			master.Stop()
		}
		master.Restart(t)
		start := time.Now()
		a.WaitRestartedSince(t, RestartMark{logSize: from})
		t.Logf("after snmpd %s and restart: registered again and answering after %v", how, time.Since(start).Round(time.Millisecond))
		if got := ro.GetValue(t, obj); got != "iad-generic" {
			t.Fatalf("%s through the restarted master: %q", obj, got)
		}
	}
	if exited, err := a.Exited(); exited {
		t.Fatalf("the agent exited while its master restarted: %v", err)
	}

	// A notification after the restarts goes through the new master: a
	// revert with nothing to revert to fails at once and says so.
	rw := a.SNMP("private")
	if out, err := rw.Set(t, "iadOpType.3", "i", "revert", "iadOpRowStatus.3", "i", "createAndGo"); err != nil {
		t.Fatalf("starting a revert: %v\n%s", err, out)
	}
	traps.WaitFor(t, 30*time.Second, func(got []Trap) bool {
		for _, tr := range got {
			if tr.TrapOID == mib.IadOpCompletedNotify.String() {
				if st, _ := tr.Var(mib.IadOpState.Append(3).String()); st == strconv.Itoa(int(mib.OpFailed)) {
					return true
				}
			}
		}
		return false
	})
}
