package itest

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/mib"
)

// trapFrom reports whether got holds the notification oid sent by the
// given security name (community or user), with the given row state when
// row is not 0.
func trapFrom(got []Trap, oid mib.OID, security string, row int, state mib.OpState) bool {
	for _, tr := range got {
		if tr.TrapOID != oid.String() || tr.Security != security {
			continue
		}
		if row == 0 {
			return true
		}
		if st, _ := tr.Var(mib.IadOpState.Append(uint32(row)).String()); st == strconv.Itoa(int(state)) {
			return true
		}
	}
	return false
}

// TestNotificationsV3AndInforms: snmptrapd, configured with the agent's
// users and engine ID, receives authPriv v3 traps, and acknowledges v3 and
// v2c informs; informs that could not be delivered while it was down
// arrive once it is back.
func TestNotificationsV3AndInforms(t *testing.T) {
	const engineID = "80007ed905a1b2c3d4e5f60718"
	trapd := StartTrapReceiverConf(t, strings.Join([]string{
		// Traps: the agent is the authoritative engine.
		"createUser -e 0x" + engineID + " trapper SHA-256 trapper-auth-pass AES-256 trapper-priv-pass",
		// Informs: snmptrapd is, with its own engine ID.
		"createUser informer SHA-512 informer-auth-pass AES informer-priv-pass",
	}, "\n"))
	conf := strings.Join([]string{
		"engine-id 0x" + engineID,
		"community public ro",
		"community private rw",
		"user trapper auth SHA-256 trapper-auth-pass priv AES-256 trapper-priv-pass",
		"user informer auth SHA-512 informer-auth-pass priv AES informer-priv-pass",
		"notify " + trapd.Target() + " v3 trap trapper",
		"notify " + trapd.Target() + " v3 inform informer",
		"notify " + trapd.Target() + " v2c inform public timeout 500ms",
	}, "\n") + "\n"
	a := StartAgent(t, "", "-snmp-config", writeSNMPConfig(t, conf), "-slot-size", "1MiB", "-log-level", "debug")

	// coldStart, three ways.
	got := trapd.WaitFor(t, 30*time.Second, func(got []Trap) bool {
		return trapFrom(got, mib.ColdStart, "trapper", 0, 0) && trapFrom(got, mib.ColdStart, "informer", 0, 0) &&
			trapFrom(got, mib.ColdStart, "public", 0, 0)
	})
	for _, tr := range got {
		if tr.Security == "trapper" || tr.Security == "informer" {
			if tr.Version != 3 {
				t.Errorf("notification from %s logged as version %d, want 3 (SNMPv3): %s", tr.Security, tr.Version, tr.Raw)
			}
		}
	}

	// snmptrapd goes away; an operation runs and ends meanwhile.
	trapd.Stop()
	from := a.LogSize()
	rw := a.SNMP("private")
	if out, err := rw.Set(t, "iadOpType.1", "i", "revert", "iadOpRowStatus.1", "i", "createAndGo"); err != nil {
		t.Fatalf("starting a revert: %v\n%s", err, out)
	}
	deadline := time.Now().Add(opWait)
	for a.SNMP("").GetValue(t, "iadOpState.1") != strconv.Itoa(int(mib.OpFailed)) {
		if time.Now().After(deadline) {
			t.Fatal("the revert did not fail (nothing to revert to)")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Both informs were tried and got no answer.
	a.WaitLog(t, from, "inform: retrying")

	trapd.Restart(t)
	trapd.WaitFor(t, 60*time.Second, func(got []Trap) bool {
		return trapFrom(got, mib.IadOpCompletedNotify, "informer", 1, mib.OpFailed) &&
			trapFrom(got, mib.IadOpCompletedNotify, "public", 1, mib.OpFailed)
	})
}

// TestAuthenticationFailureTrap: with authentication-traps on, a request
// with an unknown community and an SNMPv3 request with a wrong key each
// make an authenticationFailure notification, and snmpEnableAuthenTraps
// reads enabled(1).
func TestAuthenticationFailureTrap(t *testing.T) {
	traps := StartTrapReceiver(t)
	conf := "authentication-traps on\ncommunity public ro\nuser admin auth SHA admin-auth-pass priv AES admin-priv-pass rw\n"
	a := StartAgent(t, "", "-snmp-config", writeSNMPConfig(t, conf), "-trap", traps.Target(), "-slot-size", "1MiB")
	if got := a.SNMP("").GetValue(t, "SNMPv2-MIB::snmpEnableAuthenTraps.0"); got != "1" {
		t.Errorf("snmpEnableAuthenTraps: got %s, want 1 (enabled)", got)
	}
	count := func(got []Trap) int {
		n := 0
		for _, tr := range got {
			if tr.TrapOID == mib.AuthenticationFailure.String() {
				n++
			}
		}
		return n
	}
	bad := a.SNMP("not-the-community")
	bad.Retries, bad.Timeout = 0, 200*time.Millisecond
	if _, err := bad.Run(t, "snmpget", append(bad.common(), a.Target(), "1.3.6.1.2.1.1.3.0")...); err == nil {
		t.Fatal("a request with an unknown community was answered")
	}
	traps.WaitFor(t, 30*time.Second, func(got []Trap) bool { return count(got) >= 1 })

	// At most one per second: wait for the next second, then a wrong key.
	time.Sleep(1100 * time.Millisecond)
	wrong := a.SNMP("")
	wrong.Retries = 0
	wrong.V3 = &V3User{Name: "admin", Auth: "SHA", AuthPass: "not-the-pass-phrase", Priv: "AES", PrivPass: "admin-priv-pass"}
	if _, err := wrong.Run(t, "snmpget", append(wrong.common(), a.Target(), "1.3.6.1.2.1.1.3.0")...); err == nil {
		t.Fatal("a request with a wrong key was answered")
	}
	traps.WaitFor(t, 30*time.Second, func(got []Trap) bool { return count(got) >= 2 })
}
