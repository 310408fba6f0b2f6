package device_test

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/iadsafe/iad-agent/mib"
	"github.com/iadsafe/iad-agent/scripts/vm/firmware"
)

// populate gives the factory software a configuration of its own: what
// the device's other software writes into the live directory.
func (s *scenario) populate() map[string]string {
	s.t.Helper()
	// A file of the voice software's own (not a model file: the agent
	// carries it unchecked) and site values in a model file (validated on
	// backup and restore).
	s.run(`cd ` + configDir + ` && printf 'line.1.sip = 2001@sip.example\nline.2.sip = 2102@sip.example\n' > sip-accounts.conf && ` +
		`sed -i -e 's/^line[.]2[.]number = .*/line.2.number = 2102/' -e 's/^line[.]2[.]display-name = .*/line.2.display-name = Reception/' users.conf && ` +
		`grep -q '^line.2.number = 2102$' users.conf && sync`)
	cfg := s.guestConfig()
	if _, ok := cfg["sip-accounts.conf"]; !ok {
		s.fatalf("populated configuration lacks sip-accounts.conf:\n%s", configString(cfg))
	}
	return cfg
}

// change alters the live configuration, as the new software running
// without the old configuration would.
func (s *scenario) change(before map[string]string) {
	s.t.Helper()
	s.run(`cd ` + configDir + ` && rm -f sip-accounts.conf && printf 'format-version = 1\n# factory\n' > users.conf && sync`)
	if sameConfig(s.guestConfig(), before) {
		s.fatalf("test bug: the configuration did not change")
	}
}

// goldenPath runs the method on a device that runs Factory from bank A:
// backup, upgrade to Second, reset into bank B on trial, commit, restore;
// the restored configuration must equal the backup, and the
// notifications must arrive in order. idx is the first row index.
func (s *scenario) goldenPath(proto string, idx int) {
	s.t.Helper()
	if got := s.sw(); got.version != firmware.Factory || got.activeBank != "1" || got.stateA != itoa(mib.BankActive) {
		s.fatalf("factory state: got %v, want %s running from bank A", got, firmware.Factory)
	}
	s.checkRoot("/dev/vda2")
	traps0 := len(s.traps.Traps())
	populated := s.populate()
	s.logf("v%s on bank A with a populated configuration:\n%s", firmware.Factory, configString(populated))

	// a. backup to the host
	backup := "backup-" + proto + ".tar"
	s.mustSucceed(idx, "backupConfig", proto, backup)
	dir := s.tftp.Dir
	if proto == "ftp" {
		dir = s.ftp.Dir
	}
	if saved := backupConfig(s.t, filepath.Join(dir, backup)); !sameConfig(saved, populated) {
		s.fatalf("the backup on the host differs from the guest's configuration:\nbackup:\n%sguest:\n%s", configString(saved), configString(populated))
	}

	// b. upgrade into the inactive bank B
	s.put(firmware.Second, "v2.img")
	s.mustSucceed(idx+1, "upgrade", proto, "v2.img")
	if got := s.sw(); got.version != firmware.Factory || got.nextBank != "2" || got.stateB != itoa(mib.BankTrial) {
		s.fatalf("after the upgrade: got %v, want still %s, bank B armed for a trial", got, firmware.Factory)
	}
	want := s.fw.Banks[firmware.Second]
	if got := s.bankSHA256("B", want.Size); got != hexSum(want.SHA256) {
		s.fatalf("bank B in the guest hashes to %s, want the payload of v%s %s", got, firmware.Second, hexSum(want.SHA256))
	}

	// reset: a real reboot; iad-boot (or U-Boot) boots bank B on trial
	s.reset(idx + 2)
	if got := s.sw(); got.version != firmware.Second || got.activeBank != "2" {
		s.fatalf("after the reset: got %v, want %s from bank B", got, firmware.Second)
	}
	s.checkRoot("/dev/vda3")
	s.waitBankState(2, mib.BankActive) // the health check committed it
	if got := s.sw(); got.stateA != itoa(mib.BankValid) {
		s.fatalf("bank A after the commit: got %v, want valid (the previous software, kept)", got)
	}
	if vbs := s.ro.Walk(s.t, "iadBankTable"); len(vbs) != 2*4 {
		s.fatalf("snmpwalk iadBankTable: got %d variables, want 8: %v", len(vbs), vbs)
	}

	// c. the new software runs without the old configuration; restore
	s.change(populated)
	s.mustSucceed(idx+3, "restoreConfig", proto, backup)
	if got := s.guestConfig(); !sameConfig(got, populated) {
		s.fatalf("configuration after the restore:\n%swant the backup:\n%s", configString(got), configString(populated))
	}

	ok := mib.OpSuccessful
	prog, done := mib.IadOpProgressNotify, mib.IadOpCompletedNotify
	s.waitEvents(traps0,
		event{oid: prog, index: idx, state: mib.OpRunning}, event{oid: done, index: idx, state: ok, cause: mib.FailNone},
		event{oid: prog, index: idx + 1, state: mib.OpRunning}, event{oid: done, index: idx + 1, state: ok, cause: mib.FailNone},
		event{oid: prog, index: idx + 2, state: mib.OpRunning},
		event{oid: mib.ColdStart}, event{oid: done, index: idx + 2, state: ok, cause: mib.FailNone},
		event{oid: mib.IadBootCommittedNotify},
		event{oid: prog, index: idx + 3, state: mib.OpRunning}, event{oid: done, index: idx + 3, state: ok, cause: mib.FailNone},
	)
	s.logf("golden path over %s: the restored configuration equals the backup, notifications in order", proto)
}

// TestGoldenPathTFTPAndBadSoftware is the method over TFTP on the device
// VM (iad-boot counts the tries), then bad software on the same device:
// version Crash's agent crashes at start, the start-up script restarts
// the device each time, iad-boot spends the trial's two tries and returns
// to the previous bank, whose agent reports iadBootRevertedNotify.
func TestGoldenPathTFTPAndBadSoftware(t *testing.T) {
	s := newScenario(t, scenarioOptions{})
	s.powerOn()
	s.goldenPath("tftp", 1)
	s.summary("golden path over TFTP")

	s.badSoftware(5, iadBootCounts)
	s.summary("golden path over TFTP + bad software")
}

// Console lines that show who counted the tries of the bad software.
var (
	iadBootCounts = tryCounter{
		trial:  regexp.MustCompile(`msg="iad-boot: chose bank" bank=A trial=true`),
		revert: regexp.MustCompile(`msg="iad-boot: chose bank" bank=B trial=false reverted=true failed_bank=A`),
	}
	ubootCounts = tryCounter{
		trial:  regexp.MustCompile(`^IAD-UBOOT: trial bank A, try [12] of 2$`),
		revert: regexp.MustCompile(`^IAD-UBOOT: trial bank A spent 2 tries: back to bank B$`),
	}
)

type tryCounter struct{ trial, revert *regexp.Regexp }

// badSoftware upgrades a device running Second from bank B to Crash,
// whose agent crashes at start, with two tries: the start-up script
// restarts the device each time, the boot stage (iad-boot or U-Boot)
// spends the tries and returns to bank B, whose agent reports
// iadBootRevertedNotify; the configuration is intact. idx is the first
// row index.
func (s *scenario) badSoftware(idx int, counts tryCounter) {
	s.t.Helper()
	t := s.t
	badStart := s.d.BootCount()
	restored := s.guestConfig()
	traps0 := len(s.traps.Traps())
	if out, err := s.rw.Set(t, "iadSwBootLimit.0", "u", "2"); err != nil {
		s.fatalf("snmpset iadSwBootLimit.0: %v\n%s", err, out)
	}
	s.put(firmware.Crash, "v3.img")
	s.mustSucceed(idx, "upgrade", "tftp", "v3.img")
	if got := s.sw(); got.nextBank != "1" || got.stateA != itoa(mib.BankTrial) {
		s.fatalf("after the upgrade to v%s: got %v, want bank A armed", firmware.Crash, got)
	}
	if got := s.ro.GetValue(t, "iadSwTrialTriesLeft.0"); got != "2" {
		s.fatalf("iadSwTrialTriesLeft.0: got %s, want 2", got)
	}
	n := s.reset(idx + 1)
	if got := s.sw(); got.version != firmware.Second || got.activeBank != "2" || got.stateA != itoa(mib.BankBad) {
		s.fatalf("after the bad software: got %v, want %s from bank B, bank A bad", got, firmware.Second)
	}
	// The boots in between: two trials of bank A whose agent crashed,
	// then the revert.
	trials, crashes, reverts := 0, 0, 0
	for _, l := range s.linesSince(badStart + 1) {
		switch {
		case counts.trial.MatchString(l):
			trials++
		case strings.HasPrefix(l, "IAD-VM-AGENT-EXIT"):
			crashes++
		case counts.revert.MatchString(l):
			reverts++
		}
	}
	if trials != 2 || crashes != 2 || reverts != 1 || n != badStart+3 {
		s.fatalf("bad software: %d trial boots of bank A, %d agent crashes, %d reverts in boots %d..%d; want 2, 2, 1 in 3 boots", trials, crashes, reverts, badStart+1, n)
	}
	s.waitEvents(traps0,
		event{oid: mib.IadOpCompletedNotify, index: idx, state: mib.OpSuccessful},
		event{oid: mib.ColdStart},
		event{oid: mib.IadBootRevertedNotify},
	)
	if got := s.guestConfig(); !sameConfig(got, restored) {
		s.fatalf("configuration after the revert:\n%swant it intact:\n%s", configString(got), configString(restored))
	}
	s.logf("bad software: 2 tries spent in boots %d and %d, boot %d reverted to v%s, configuration intact", badStart+1, badStart+2, n, firmware.Second)
}

// checkRoot insists the running software's root is the bank at dev,
// mounted read-only as squashfs by the boot stage's switch of root.
func (s *scenario) checkRoot(dev string) {
	s.t.Helper()
	mounts := s.run("cat /proc/mounts")
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(dev) + ` / squashfs ro[, ]`).MatchString(mounts) {
		s.fatalf("the root is not %s (squashfs, read-only):\n%s", dev, mounts)
	}
}

// linesSince returns the console lines of boots numbered from boot on.
func (s *scenario) linesSince(boot int) []string {
	var out []string
	for _, b := range s.d.Boots() {
		if b.N < boot {
			continue
		}
		out = append(out, readLog(s.t, b.Log)...)
	}
	return out
}

func readLog(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("console log: %v", err)
	}
	return strings.Split(string(b), "\n")
}

func itoa[T ~int | ~int32](v T) string { return strconv.Itoa(int(v)) }

func hexSum(b [32]byte) string { return hex.EncodeToString(b[:]) }
