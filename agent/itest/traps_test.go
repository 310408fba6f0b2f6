package itest

import (
	"reflect"
	"testing"
	"time"
)

func TestTrapReceiverParsesNotifications(t *testing.T) {
	r := StartTrapReceiver(t)
	if got := r.Traps(); len(got) != 0 {
		t.Fatalf("got %d traps before sending any (probe not filtered?): %v", len(got), got)
	}

	var c SNMP
	if _, err := c.Run(t, "snmptrap", "-v2c", "-c", "secret", r.Target(), "",
		"1.3.6.1.4.1.32473.9998.0.7",
		"1.3.6.1.4.1.32473.9998.1.1.3.7", "i", "4",
		"1.3.6.1.4.1.32473.9998.1.1.9.7", "s", "tab\there, \"quoted\"\nsecond line",
		"1.3.6.1.4.1.32473.9998.1.1.2.7", "u", "12",
		"1.3.6.1.4.1.32473.9998.1.1.4.7", "o", "1.3.6.1.2.1.1",
		"1.3.6.1.4.1.32473.9998.1.1.5.7", "x", "0102FF",
		"1.3.6.1.4.1.32473.9998.1.1.6.7", "s", "",
	); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Run(t, "snmptrap", "-v1", "-c", "public", r.Target(),
		"1.3.6.1.4.1.32473.9998", "127.0.0.1", "6", "3", "",
		"1.3.6.1.4.1.32473.9998.1.1.3.8", "i", "2"); err != nil {
		t.Fatal(err)
	}

	got := r.WaitFor(t, 10*time.Second, func(tr []Trap) bool { return len(tr) >= 2 })
	if len(got) != 2 {
		t.Fatalf("got %d traps, want 2: %v", len(got), got)
	}
	want := []VarBind{
		{OID: "1.3.6.1.4.1.32473.9998.1.1.3.7", Type: "INTEGER", Value: "4"},
		{OID: "1.3.6.1.4.1.32473.9998.1.1.9.7", Type: "STRING", Value: "tab\there, \"quoted\"\nsecond line"},
		{OID: "1.3.6.1.4.1.32473.9998.1.1.2.7", Type: "Gauge32", Value: "12"},
		{OID: "1.3.6.1.4.1.32473.9998.1.1.4.7", Type: "OID", Value: "1.3.6.1.2.1.1"},
		{OID: "1.3.6.1.4.1.32473.9998.1.1.5.7", Type: "Hex-STRING", Value: "01 02 FF"},
		{OID: "1.3.6.1.4.1.32473.9998.1.1.6.7", Value: ""},
	}
	v2 := got[0]
	if v2.TrapOID != "1.3.6.1.4.1.32473.9998.0.7" {
		t.Errorf("got trap OID %q, want 1.3.6.1.4.1.32473.9998.0.7", v2.TrapOID)
	}
	if v2.Version != 1 || v2.Security != "secret" {
		t.Errorf("got version %d security %q, want 1 \"secret\"", v2.Version, v2.Security)
	}
	if !reflect.DeepEqual(v2.Vars, want) {
		t.Errorf("got vars\n%#v\nwant\n%#v", v2.Vars, want)
	}
	if v, ok := v2.Var("1.3.6.1.4.1.32473.9998.1.1.2"); !ok || v != "12" {
		t.Errorf("got Var(column 2) %q %v, want \"12\" true", v, ok)
	}

	v1 := got[1]
	if v1.TrapOID != "1.3.6.1.4.1.32473.9998.0.3" || v1.Version != 0 {
		t.Errorf("got v1 trap OID %q version %d, want 1.3.6.1.4.1.32473.9998.0.3 0", v1.TrapOID, v1.Version)
	}
	if len(v1.Vars) != 1 || v1.Vars[0].Value != "2" {
		t.Errorf("got v1 vars %v, want one with value 2", v1.Vars)
	}
}

func TestParseTrapLogSkipsNoiseAndPartialRecords(t *testing.T) {
	log := "NET-SNMP version 5.9.3\n" +
		"IADTRAP\x1f1\x1fpublic\x1f.1.3.6.1.2.1.1.3.0 = 5\x1f.1.3.6.1.6.3.1.1.4.1.0 = OID: .1.3.6.1.4.1.32473.1.0.1\x1f.1.3.6.1.4.1.32473.1.1.0 = STRING: \"a\"\x1fIADEND\n" +
		"some warning\n" +
		"IADTRAP\x1f1\x1fpublic\x1f.1.3.6.1.2.1.1.3.0 = 5" // still being written
	got := parseTrapLog(log)
	if len(got) != 1 {
		t.Fatalf("got %d traps, want 1", len(got))
	}
	if got[0].TrapOID != "1.3.6.1.4.1.32473.1.0.1" || len(got[0].Vars) != 1 || got[0].Vars[0].Value != "a" {
		t.Errorf("got %v, want TRAP 1.3.6.1.4.1.32473.1.0.1 | 1.3.6.1.4.1.32473.1.1.0=\"a\"", got[0])
	}
}
