package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iadsafe/iad-agent/cmd/iadms/internal/convert"
	"github.com/iadsafe/iad-agent/mib"
)

// TestSingleSteps runs each step on its own: backup, restore, status,
// revert (with its reset), reset, and watch.
func TestSingleSteps(t *testing.T) {
	s := newStation(t)
	a := s.agent(t, agentOpts{})
	users := filepath.Join(liveDir(a), "users.conf")
	orig, err := os.ReadFile(users)
	if err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(s.dir, "saved.tar")
	r := s.run(t, "backup", "--device", a.Target(), "--out", out)
	if r.code != 0 || !strings.Contains(r.stdout, "configuration format 1, software 1.0.0") {
		t.Fatalf("backup:\n%s", r)
	}
	fh, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	m, err := convert.ReadManifest(fh)
	fh.Close()
	if err != nil || m.SoftwareVersion != "1.0.0" || len(m.Files) == 0 {
		t.Fatalf("backup manifest: %+v, %v", m, err)
	}

	// The configuration changes; the restore brings the backup back.
	if err := os.WriteFile(users, []byte("# changed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = s.run(t, "restore", "--device", a.Target(), "--in", out)
	if r.code != 0 {
		t.Fatalf("restore:\n%s", r)
	}
	if got, _ := os.ReadFile(users); string(got) != string(orig) {
		t.Errorf("users.conf after restore: got %q, want the backed-up content", got)
	}

	r = s.run(t, "status", "--device", a.Target())
	for _, want := range []string{"software  1.0.0 from bankA (active)", "backupConfig  successful", "restoreConfig successful"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("status lacks %q:\n%s", want, r)
		}
	}

	img := s.image(t, "v2.img", "2.0.0", 1, 64<<10)
	if r := s.run(t, "upgrade", "--device", a.Target(), "--image", img); r.code != 0 {
		t.Fatalf("upgrade:\n%s", r)
	}
	r = s.run(t, "revert", "--device", a.Target(), "--reset")
	if r.code != 0 || !strings.Contains(r.stdout, "runs 1.0.0 from bankA") {
		t.Fatalf("revert --reset:\n%s", r)
	}
	wantRunning(t, a, "1.0.0", mib.BankA)

	// Only a restarted agent marks a reset row successful.
	resets := opCounts(t, a)["reset/successful"]
	r = s.run(t, "reset", "--device", a.Target())
	if r.code != 0 || !strings.Contains(r.stdout, "is back: running 1.0.0 from bankA") {
		t.Fatalf("reset:\n%s", r)
	}
	if n := opCounts(t, a)["reset/successful"]; n != resets+1 {
		t.Errorf("successful reset rows: %d after the reset, %d before", n, resets)
	}

	// watch shows an operation someone else starts, and its notifications.
	p := s.start(t, "watch", "--device", a.Target(), "--for", "20s")
	p.waitFor(t, "software 1.0.0 from bankA")
	if out, err := a.SNMP(rwCommunity).Set(t, "iadOpType.77", "i", "reset", "iadOpRowStatus.77", "i", "createAndGo"); err != nil {
		t.Fatalf("snmpset reset: %v\n%s", err, out)
	}
	p.waitFor(t, "notification coldStart from 127.0.0.1")
	p.waitFor(t, "op 77 reset         successful")
	p.kill9(t)
	noSecrets(t, []string{p.output(), r.stdout, r.stderr}, filepath.Join(s.state, "iadms.log"))
}

// TestCredentialsRefused: a credentials file others can read is refused,
// and secrets cannot be given on the command line.
func TestCredentialsRefused(t *testing.T) {
	s := newStation(t)
	a := s.agent(t, agentOpts{})
	if err := os.Chmod(s.creds, 0o644); err != nil {
		t.Fatal(err)
	}
	r := s.run(t, "status", "--device", a.Target())
	if r.code != 2 || !strings.Contains(r.stderr, "not private") || !strings.Contains(r.stderr, "chmod 600") {
		t.Errorf("world-readable credentials: want exit 2 and advice\n%s", r)
	}
	os.Chmod(s.creds, 0o600)
	r = s.run(t, "status", "--device", a.Target(), "--community", rwCommunity)
	if r.code != 2 || !strings.Contains(r.stderr, "flag provided but not defined: -community") {
		t.Errorf("--community: want a usage error\n%s", r)
	}
	r = s.run(t, "status", "--device", a.Target(), rwCommunity)
	if r.code != 2 || !strings.Contains(r.stderr, "secrets belong in the credentials file") {
		t.Errorf("a stray argument: want a usage error\n%s", r)
	}
	r = s.run(t, "status", "--device", a.Target(), "--cred", "nope")
	if r.code != 2 || !strings.Contains(r.stderr, `no such credentials entry: "nope"`) {
		t.Errorf("unknown entry: want a usage error\n%s", r)
	}
	// Read-only credentials are found out before anything starts.
	f, err := os.OpenFile(s.creds, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("readonly v2c community=" + roCommunity + "\n")
	f.Close()
	img := s.image(t, "v2.img", "2.0.0", 1, 64<<10)
	r = s.run(t, "upgrade", "--device", a.Target(), "--image", img, "--cred", "readonly")
	if r.code != 1 || !strings.Contains(r.stdout, "noWriteAccess") {
		t.Errorf("read-only credentials: want a failed preflight\n%s", r)
	}
	if n := len(opCounts(t, a)); n != 0 {
		t.Errorf("operations started with read-only credentials")
	}
	noSecrets(t, []string{r.stdout, r.stderr}, filepath.Join(s.state, "iadms.log"))
}

// TestTrustRefusesDamagedImage: with --trust, an image that does not
// verify is refused before anything is sent to the device.
func TestTrustRefusesDamagedImage(t *testing.T) {
	s := newStation(t)
	a := s.agent(t, agentOpts{})
	bad := damaged(t, s.image(t, "v2.img", "2.0.0", 1, 64<<10), filepath.Join(s.dir, "v2-damaged.img"))
	rep := filepath.Join(s.dir, "report.json")
	r := s.run(t, "upgrade", "--device", a.Target(), "--image", bad, "--trust", s.key+".pub", "--report", rep)
	if r.code != 1 || !strings.Contains(r.stderr, "does not verify") {
		t.Fatalf("want exit 1 and the image refused:\n%s", r)
	}
	if d := readReport(t, rep).Devices[0]; d.Status != "failed" || !strings.Contains(d.Reason, "hash mismatch") {
		t.Errorf("report: %+v", d)
	}
	if n := len(opCounts(t, a)); n != 0 {
		t.Errorf("%d kinds of operations on the device, want none", n)
	}
}
