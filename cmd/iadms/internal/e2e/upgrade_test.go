package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iadsafe/iad-agent/agent/itest"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/journal"
	"github.com/iadsafe/iad-agent/mib"
)

// TestUpgradeGoldenPath is one device upgraded end to end with the
// embedded server, watched through notifications and polling: backup,
// upgrade, reset, boot on trial, commit, restore.
func TestUpgradeGoldenPath(t *testing.T) {
	s := newStation(t)
	a := s.agent(t, agentOpts{})
	img := s.image(t, "v2.img", "2.0.0", 1, 256<<10)
	before := configDigest(t, liveDir(a))
	gen, _ := os.Readlink(liveDir(a))
	rep := filepath.Join(s.dir, "report.json")
	r := s.run(t, "upgrade", "--device", a.Target(), "--image", img, "--report", rep)
	if r.code != 0 {
		t.Fatalf("upgrade failed:\n%s", r)
	}
	wantRunning(t, a, "2.0.0", mib.BankB)
	if after := configDigest(t, liveDir(a)); after != before {
		t.Errorf("configuration after the upgrade differs from before")
	}
	if now, _ := os.Readlink(liveDir(a)); now == gen {
		t.Errorf("live configuration still %s: the restore did not swap in a new generation", now)
	}
	got := readReport(t, rep)
	if len(got.Devices) != 1 {
		t.Fatalf("report: %d devices", len(got.Devices))
	}
	d := got.Devices[0]
	if d.Status != string(journal.Succeeded) || d.OldVersion != "1.0.0" || d.NewVersion != "2.0.0" {
		t.Errorf("report: got %+v", d)
	}
	var steps []string
	for _, st := range d.Steps {
		if !st.OK || st.Attempts != 1 {
			t.Errorf("step %s: %+v, want one successful attempt", st.Step, st)
		}
		steps = append(steps, st.Step)
	}
	if got, want := strings.Join(steps, ","), "preflight,backup,upgrade,reset,boot,commit,restore"; got != want {
		t.Errorf("steps: got %s, want %s", got, want)
	}
	for _, want := range []string{"notification: coldStart", "iadOpCompletedNotify", "iadBootCommittedNotify", "1.0.0 -> 2.0.0"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
	counts := opCounts(t, a)
	for _, k := range []string{"backupConfig/successful", "upgrade/successful", "reset/successful", "restoreConfig/successful"} {
		if counts[k] != 1 {
			t.Errorf("agent rows: %s = %d, want 1 (all: %v)", k, counts[k], counts)
		}
	}
	// A second run finds the device up to date and does nothing.
	r2 := s.run(t, "upgrade", "--device", a.Target(), "--image", img)
	if r2.code != 0 || !strings.Contains(r2.stdout, "up-to-date") {
		t.Errorf("second run: want up-to-date\n%s", r2)
	}
	noSecrets(t, []string{r.stdout, r.stderr, r2.stdout, r2.stderr},
		rep, filepath.Join(s.state, "iadms.log"), filepath.Join(s.state, "journal.db"))
}

// TestUpgradePollingOnly: no notification reaches iadms (the agent has no
// trap destination and iadms does not listen); polling alone completes
// the job.
func TestUpgradePollingOnly(t *testing.T) {
	s := newStation(t)
	a := s.agent(t, agentOpts{noTraps: true})
	img := s.image(t, "v2.img", "2.0.0", 1, 128<<10)
	r := s.run(t, "upgrade", "--device", a.Target(), "--image", img, "--trap-listen", "off")
	if r.code != 0 {
		t.Fatalf("upgrade failed:\n%s", r)
	}
	if !strings.Contains(r.stdout, "polling only") || strings.Contains(r.stdout, "notification:") {
		t.Errorf("want a polling-only run without notifications:\n%s", r.stdout)
	}
	wantRunning(t, a, "2.0.0", mib.BankB)
}

// TestUpgradeConvertsConfig: the new software expects configuration
// format 2, and the operator's converter (--convert) converts the backup
// (format 1) at the station before the restore. The converter fails on
// its first run; the unattended retry (--retries 1) converts again and
// restores. Its leading comment in defaults.conf shows that the live
// configuration is the station's conversion.
func TestUpgradeConvertsConfig(t *testing.T) {
	s := newStation(t)
	a := s.agent(t, agentOpts{})
	img := s.image(t, "v2.img", "2.0.0", 2, 128<<10)
	mark := filepath.Join(s.dir, "converter-ran-once")
	script := filepath.Join(s.dir, "convert.sh")
	// Format 1 to 2 for the factory configuration (docs/config-format.md):
	// one codec list instead of a preferred/fallback pair, lists of NTP
	// servers and trap targets.
	conv := `#!/bin/sh
set -e
from=$1 to=$2 dir=$3
if [ ! -e ` + mark + ` ]; then : > ` + mark + `; echo "converter: first run fails on purpose" >&2; exit 3; fi
cd "$dir"
sed -i "s/^format-version = $from\$/format-version = $to/" *.conf
sed -i -e '/^codec\.preferred/d' -e '/^codec\.fallback/d' defaults.conf
sed -i "1a # converted by the station from format $from" defaults.conf
echo 'codec.list = g711a,g729' >> defaults.conf
sed -i -e 's/^ntp\.server =/ntp.servers =/' -e 's/^mgmt\.trap-target =/mgmt.trap-targets =/' protocol.conf
`
	if err := os.WriteFile(script, []byte(conv), 0o755); err != nil {
		t.Fatal(err)
	}
	rep := filepath.Join(s.dir, "report.json")
	r := s.run(t, "upgrade", "--device", a.Target(), "--image", img, "--convert", script, "--retries", "1", "--report", rep)
	if r.code != 0 {
		t.Fatalf("upgrade failed:\n%s", r)
	}
	wantRunning(t, a, "2.0.0", mib.BankB)
	defaults, err := os.ReadFile(filepath.Join(liveDir(a), "defaults.conf"))
	if err != nil || !strings.HasPrefix(string(defaults), "format-version = 2\n# converted by the station from format 1\n") ||
		!strings.Contains(string(defaults), "codec.list = g711a,g729") {
		t.Errorf("defaults.conf is not the station's conversion: %v\n%s", err, defaults)
	}
	if v := a.SNMP(roCommunity).GetValue(t, "iadConfigLiveFormat.0"); v != "2" {
		t.Errorf("iadConfigLiveFormat.0 = %s, want 2", v)
	}
	d := readReport(t, rep).Devices[0]
	var restore string
	for _, st := range d.Steps {
		if st.Step == "restore" {
			restore = strings.Join(st.Failures, ";")
			if st.Attempts != 2 || !st.OK {
				t.Errorf("restore: got %+v, want ok at the second attempt", st)
			}
		}
	}
	if !strings.Contains(restore, "conversion") || !strings.Contains(restore, "first run fails on purpose") {
		t.Errorf("restore failure: got %q", restore)
	}
}

// TestUpgradeDeviceConverts: without a converter of the operator's, the
// device (which publishes iadConfigFormat) gets the format-1 backup as it
// is and converts it to its format 2 itself.
func TestUpgradeDeviceConverts(t *testing.T) {
	s := newStation(t)
	a := s.agent(t, agentOpts{})
	img := s.image(t, "v2.img", "2.0.0", 2, 128<<10)
	r := s.run(t, "upgrade", "--device", a.Target(), "--image", img)
	if r.code != 0 || !strings.Contains(r.stdout, "the device converts the backup from configuration format 1 to 2") {
		t.Fatalf("upgrade:\n%s", r)
	}
	wantRunning(t, a, "2.0.0", mib.BankB)
	v := a.SNMP(roCommunity).Get(t, "iadConfigFormat.0", "iadConfigLiveFormat.0")
	if v["iadConfigFormat.0"] != "2" || v["iadConfigLiveFormat.0"] != "2" {
		t.Errorf("config formats: %v, want 2 and 2", v)
	}
	defaults, _ := os.ReadFile(filepath.Join(liveDir(a), "defaults.conf"))
	if !strings.HasPrefix(string(defaults), "format-version = 2\n") || !strings.Contains(string(defaults), "codec.list") {
		t.Errorf("defaults.conf not in format 2:\n%s", defaults)
	}
}

// TestUpgradeMajorFormat: software of another major configuration format
// (3, compat 2.0): the device refuses the format-1 backup without the
// operator's consent, and iadms says how to give it; a restore with
// --force-convert then converts it.
func TestUpgradeMajorFormat(t *testing.T) {
	s := newStation(t)
	a := s.agent(t, agentOpts{})
	img := s.image(t, "v3.img", "3.0.0", 3, 128<<10)
	rep := filepath.Join(s.dir, "report.json")
	r := s.run(t, "upgrade", "--device", a.Target(), "--image", img, "--report", rep)
	if r.code != 1 {
		t.Fatalf("upgrade: want exit 1\n%s", r)
	}
	d := readReport(t, rep).Devices[0]
	if d.Status != string(journal.Failed) || !strings.Contains(d.Reason, "restore failed: configMajorMismatch") || !strings.Contains(d.Reason, "--force-convert") {
		t.Fatalf("report: %s %q", d.Status, d.Reason)
	}
	wantRunning(t, a, "3.0.0", mib.BankB)
	r = s.run(t, "restore", "--device", a.Target(), "--in", backupFile(t, s), "--force-convert")
	if r.code != 0 {
		t.Fatalf("forced restore:\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(liveDir(a), "subscribers.conf")); err != nil {
		t.Errorf("no subscribers.conf after the conversion to format 3: %v", err)
	}
}

// TestRevertedBySelfIsFailure: the new software never passes its health
// check (the device is killed before it, as a crash would), so once its
// trial boots run out the device goes back to the previous software. iadms
// must report a failed upgrade with the reason, never success.
func TestRevertedBySelfIsFailure(t *testing.T) {
	s := newStation(t)
	a := s.agent(t, agentOpts{commitAfter: "1h"})
	setBootLimit(t, a, 2)
	img := s.image(t, "v2.img", "2.0.0", 1, 128<<10)
	rep := filepath.Join(s.dir, "report.json")
	p := s.start(t, "upgrade", "--device", a.Target(), "--image", img, "--report", rep)
	p.waitFor(t, "waiting for the device to commit 2.0.0")
	crashUntilReverted(t, a, 2)
	if code := p.wait(t); code != 1 {
		t.Fatalf("exit code %d, want 1 (failed):\n%s", code, p.output())
	}
	d := readReport(t, rep).Devices[0]
	if d.Status != string(journal.Failed) || !strings.Contains(d.Reason, "reverted by itself") || !strings.Contains(d.Reason, "it runs 1.0.0 from bankA again") {
		t.Errorf("report: got status %s reason %q, want failed with the revert explained", d.Status, d.Reason)
	}
	if !strings.Contains(p.output(), "FAIL:reverted") {
		t.Errorf("table lacks FAIL:reverted:\n%s", p.output())
	}
	wantRunning(t, a, "1.0.0", mib.BankA)
	t.Logf("iadms output:\n%s", p.output())
}

// TestUpgradeExternalFTP runs the whole upgrade through an external FTP
// server (vsftpd) instead of the embedded one: the image is on the server,
// the backup goes there and comes back from there; the FTP login comes
// from the credentials file and never shows.
func TestUpgradeExternalFTP(t *testing.T) {
	s := newStation(t)
	ftpDir, err := os.MkdirTemp("", "iadms-ftp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(ftpDir) })
	srv := itest.StartFTP(t, ftpDir)
	f, err := os.OpenFile(s.creds, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, "files ftp user=%s password=%q\n", srv.User, srv.Password)
	f.Close()
	a := s.agent(t, agentOpts{})
	img := s.image(t, "v2.img", "2.0.0", 1, 256<<10)
	b, _ := os.ReadFile(img)
	srv.WriteFile(t, "v2.img", b)
	before := configDigest(t, liveDir(a))
	r := s.run(t, "upgrade", "--device", a.Target(), "--image", img,
		"--server", "ftp://"+srv.Addr(), "--server-cred", "files")
	if r.code != 0 {
		t.Fatalf("upgrade through FTP:\n%s", r)
	}
	wantRunning(t, a, "2.0.0", mib.BankB)
	if got := configDigest(t, liveDir(a)); got != before {
		t.Errorf("configuration after the upgrade differs from before")
	}
	backups, _ := filepath.Glob(filepath.Join(ftpDir, "*-backup-1.tar"))
	if len(backups) != 1 {
		t.Errorf("backups on the FTP server: %v, want one", backups)
	}
	for _, out := range []string{r.stdout, r.stderr} {
		if strings.Contains(out, srv.Password) {
			t.Errorf("the FTP password shows in the output")
		}
	}
	log, _ := os.ReadFile(filepath.Join(s.state, "iadms.log"))
	if strings.Contains(string(log), srv.Password) {
		t.Errorf("the FTP password shows in the log")
	}
}
