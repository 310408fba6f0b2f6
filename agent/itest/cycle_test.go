package itest

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/iadsafe/iad-agent/mib"
)

// TestFullCycle is the method end to end, driven by net-snmp's tools by
// object name: backup over TFTP and FTP, upgrade with a signed image over
// FTP, reset (the agent re-executes itself), the trial bank commits,
// upgrade again over TFTP, reset, restore from each backup, and the
// notifications arrive in order.
func TestFullCycle(t *testing.T) {
	fullCycle(t, newRig(t, rigOptions{}))
}

// TestFullCycleAgentX is the same cycle with the agent as an AgentX
// sub-agent of a real snmpd: every request and every notification passes
// through the master, and the reset re-executes the agent, which
// registers again.
func TestFullCycleAgentX(t *testing.T) {
	fullCycle(t, newRig(t, rigOptions{agentx: true}))
}

func fullCycle(t *testing.T, r *rig) {
	// The device's other software keeps configuration in the live
	// directory; give it something of its own to lose.
	if err := os.WriteFile(filepath.Join(r.liveDir(), "sip-accounts.conf"), []byte("line1 = 1001@sip.example\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	original := configDigest(t, r.liveDir())
	if got := r.sw(t); got.version != "1.0.0" || got.activeBank != "1" || got.stateA != "5" || got.stateB != "1" {
		t.Fatalf("factory state: got %+v, want version 1.0.0, bank A active, bank B empty", got)
	}

	// a. backup, over both protocols
	r.mustSucceed(t, 1, "backupConfig", "tftp", "backup-tftp.tar")
	r.mustSucceed(t, 2, "backupConfig", "ftp", "backup-ftp.tar")
	for _, p := range []string{filepath.Join(r.tftp.Dir, "backup-tftp.tar"), filepath.Join(r.ftp.Dir, "backup-ftp.tar")} {
		if fi, err := os.Stat(p); err != nil || fi.Size() == 0 {
			t.Fatalf("backup %s on the server: %v", p, err)
		}
	}

	// b. upgrade over FTP, then reset into the trial bank
	r.image(t, "v2.img", "2.0.0", testHW, r.key, 3<<20)
	r.mustSucceed(t, 3, "upgrade", "ftp", "v2.img")
	if got := r.sw(t); got.version != "1.0.0" || got.nextBank != "2" || got.stateB != strconv.Itoa(int(mib.BankTrial)) {
		t.Fatalf("after upgrade: got %+v, want still 1.0.0, next bank B armed (trial)", got)
	}
	if n := r.ro.GetValue(t, "iadOpBytes.3"); atoi(n) < 3<<20 {
		t.Errorf("iadOpBytes.3: got %s, want at least %d", n, 3<<20)
	}
	r.reset(t, 4)
	if got := r.sw(t); got.version != "2.0.0" || got.activeBank != "2" {
		t.Fatalf("after reset: got %+v, want 2.0.0 from bank B", got)
	}
	r.waitBankState(t, 2, mib.BankActive) // the health check committed it
	if vbs := r.ro.Walk(t, "iadBankTable"); len(vbs) != 2*4 {
		t.Errorf("snmpwalk iadBankTable: got %d variables, want 8 (2 banks x 4 columns): %v", len(vbs), vbs)
	}
	if got := r.sw(t); got.stateA != strconv.Itoa(int(mib.BankValid)) {
		t.Errorf("bank A after commit: got state %s, want valid (kept as the previous software)", got.stateA)
	}

	// The configuration changes while the new software runs...
	os.Remove(filepath.Join(r.liveDir(), "sip-accounts.conf"))
	if err := os.WriteFile(filepath.Join(r.liveDir(), "users.conf"), []byte("format-version = 1\n# emptied\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if configDigest(t, r.liveDir()) == original {
		t.Fatal("test bug: the configuration did not change")
	}
	// c. ...and restore brings back exactly what was backed up.
	r.mustSucceed(t, 5, "restoreConfig", "tftp", "backup-tftp.tar")
	if got := configDigest(t, r.liveDir()); got != original {
		t.Fatalf("config after TFTP restore: digest %s, want %s", got, original)
	}

	// A second upgrade, over TFTP, proves the banks alternate.
	r.image(t, "v3.img", "3.0.0", testHW, r.key, 2<<20+77)
	r.mustSucceed(t, 6, "upgrade", "tftp", "v3.img")
	r.reset(t, 7)
	if got := r.sw(t); got.version != "3.0.0" || got.activeBank != "1" {
		t.Fatalf("after second reset: got %+v, want 3.0.0 from bank A", got)
	}
	r.waitBankState(t, 1, mib.BankActive)
	os.WriteFile(filepath.Join(r.liveDir(), "ports.conf"), []byte("format-version = 1\n"), 0o644)
	r.mustSucceed(t, 8, "restoreConfig", "ftp", "backup-ftp.tar")
	if got := configDigest(t, r.liveDir()); got != original {
		t.Fatalf("config after FTP restore: digest %s, want %s", got, original)
	}

	ok, fail := mib.OpSuccessful, mib.OpFailed
	_ = fail
	prog, done := mib.IadOpProgressNotify, mib.IadOpCompletedNotify
	r.waitEvents(t,
		event{oid: mib.ColdStart},
		event{oid: prog, index: 1, state: mib.OpRunning}, event{oid: done, index: 1, state: ok, cause: mib.FailNone},
		event{oid: prog, index: 2, state: mib.OpRunning}, event{oid: done, index: 2, state: ok},
		event{oid: prog, index: 3, state: mib.OpRunning}, event{oid: done, index: 3, state: ok},
		event{oid: prog, index: 4, state: mib.OpRunning},
		event{oid: mib.ColdStart}, event{oid: done, index: 4, state: ok},
		event{oid: mib.IadBootCommittedNotify},
		event{oid: prog, index: 5, state: mib.OpRunning}, event{oid: done, index: 5, state: ok},
		event{oid: prog, index: 6, state: mib.OpRunning}, event{oid: done, index: 6, state: ok},
		event{oid: prog, index: 7, state: mib.OpRunning},
		event{oid: mib.ColdStart}, event{oid: done, index: 7, state: ok},
		event{oid: mib.IadBootCommittedNotify},
		event{oid: prog, index: 8, state: mib.OpRunning}, event{oid: done, index: 8, state: ok},
	)

	// The whole table reads back over GetBulk; passwords never do.
	rows := r.ro.BulkWalk(t, "iadOpTable")
	if len(rows) != 8*18 {
		t.Errorf("bulkwalk iadOpTable: got %d variables, want %d (8 rows x 18 columns)", len(rows), 8*18)
	}
	for _, vb := range rows {
		if len(vb.OID) > len(mib.IadOpPassword.String()) && vb.OID[:len(mib.IadOpPassword.String())+1] == mib.IadOpPassword.String()+"." && vb.Value != "" {
			t.Errorf("%s: password reads back as %q, want empty", vb.OID, vb.Value)
		}
	}
}

// TestIPv6Servers runs backup, upgrade and restore against servers on ::1,
// named by a 16-octet InetAddress.
func TestIPv6Servers(t *testing.T) {
	r := newRig(t, rigOptions{noFTP: true})
	tftpDir := t.TempDir()
	tftp6 := StartTFTPOn(t, "::1", tftpDir, true)
	ftpDir, err := os.MkdirTemp("", "iad-ftp6-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(ftpDir) })
	ftp6 := StartFTPOn(t, "::1", ftpDir)
	v6 := func(port int) []string {
		return []string{"iadOpServerAddressType", "i", "ipv6", "iadOpServerAddress", "x", "00000000000000000000000000000001", "iadOpServerPort", "u", strconv.Itoa(port)}
	}
	original := configDigest(t, r.liveDir())
	r.mustSucceed(t, 1, "backupConfig", "tftp", "backup6.tar", v6(tftp6.Port)...)
	r.image(t, "v2.img", "2.0.0", testHW, r.key, 1<<20)
	img, err := os.ReadFile(filepath.Join(r.tftp.Dir, "v2.img"))
	if err != nil {
		t.Fatal(err)
	}
	ftp6.WriteFile(t, "v2.img", img)
	r.mustSucceed(t, 2, "upgrade", "ftp", "v2.img", append(v6(ftp6.Port),
		"iadOpUserName", "s", ftp6.User, "iadOpPassword", "s", ftp6.Password)...)
	if got := r.sw(t); got.nextBank != "2" {
		t.Fatalf("after an upgrade from [::1]: got %+v, want bank B armed", got)
	}
	os.WriteFile(filepath.Join(r.liveDir(), "users.conf"), []byte("format-version = 1\n"), 0o644)
	r.mustSucceed(t, 3, "restoreConfig", "tftp", "backup6.tar", v6(tftp6.Port)...)
	if got := configDigest(t, r.liveDir()); got != original {
		t.Fatalf("config after restore from [::1]: digest %s, want %s", got, original)
	}
}
