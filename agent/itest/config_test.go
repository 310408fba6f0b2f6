package itest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/iadsafe/iad-agent/agent/iadconfig"
	"github.com/iadsafe/iad-agent/agent/iadconfig/iadconfigtest"
	"github.com/iadsafe/iad-agent/mib"
)

// goldenConfig reads one of the configuration model's golden directories.
func goldenConfig(t *testing.T, which string) map[string][]byte {
	t.Helper()
	dir := filepath.Join(RepoRoot(t), "agent", "iadconfig", "testdata", "convert", which)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

// setConfig is the device's own software rewriting its configuration:
// every file of the live directory is replaced by files.
func setConfig(t *testing.T, live string, files map[string][]byte) {
	t.Helper()
	entries, err := os.ReadDir(live + "/")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(live, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(live, n), b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
}

func liveFiles(t *testing.T, live string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(live + "/")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(live, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}

func decodeFiles(t *testing.T, files map[string][]byte) *iadconfig.Doc {
	t.Helper()
	d, err := iadconfig.Default().Decode(func(n string) ([]byte, error) {
		if b, ok := files[n]; ok {
			return b, nil
		}
		return nil, os.ErrNotExist
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func plus(a, b map[string][]byte) map[string][]byte {
	out := map[string][]byte{}
	for n, x := range a {
		out[n] = x
	}
	for n, x := range b {
		out[n] = x
	}
	return out
}

func equalFiles(t *testing.T, what string, got, want map[string][]byte) {
	t.Helper()
	for n, w := range want {
		if g, ok := got[n]; !ok {
			t.Errorf("%s: %s missing", what, n)
		} else if !bytes.Equal(g, w) {
			t.Errorf("%s: %s differs:\ngot:\n%s\nwant:\n%s", what, n, g, w)
		}
	}
	for n := range got {
		if _, ok := want[n]; !ok {
			t.Errorf("%s: unexpected file %s", what, n)
		}
	}
}

// configFormats reads iadConfigFormat.0 and iadConfigLiveFormat.0.
func (r *rig) configFormats(t *testing.T) (running, live string) {
	t.Helper()
	v := r.ro.Get(t, "iadConfigFormat.0", "iadConfigLiveFormat.0")
	return v["iadConfigFormat.0"], v["iadConfigLiveFormat.0"]
}

// reloadHook returns a -reload-cmd that logs each reload to a file and
// fails, printing the configuration's SIP passwords, while refuse exists.
func reloadHook(t *testing.T) (cmd, log, refuse string) {
	dir := t.TempDir()
	log, refuse = filepath.Join(dir, "reloads.log"), filepath.Join(dir, "refuse")
	cmd = `echo "$IAD_CONFIG_REASON $IAD_CONFIG_FORMAT" >> ` + log + `; ` +
		`if [ -e ` + refuse + ` ]; then grep -h sip.password "$IAD_CONFIG_DIR"/*.conf >&2; echo "voipd: cannot register line 2 with password $(sed -n 's/^line.2.sip.password = //p' "$IAD_CONFIG_DIR"/*.conf)" >&2; exit 3; fi`
	return cmd, log, refuse
}

// opaqueFile is configuration of the device's other software that the
// model does not know; it must travel through every conversion.
var opaqueFile = map[string][]byte{"sip-accounts.conf": []byte("# the voice software's own file\nline1 = 1001@sip.example\n")}

// TestConfigFormatUpgrade is the acceptance scenario: a device on
// configuration format 1 is backed up, upgraded to software whose image
// header says format 2, reset (the first start converts the live
// configuration), and restored from the format-1 backup: the format-2
// configuration holds every format-1 value. Reverted to the old bank, it
// runs on its format-1 configuration again, byte for byte.
func TestConfigFormatUpgrade(t *testing.T) {
	hook, reloads, _ := reloadHook(t)
	r := newRig(t, rigOptions{args: []string{"-reload-cmd", hook}})
	v1 := plus(goldenConfig(t, "1-2/full/in"), opaqueFile)
	setConfig(t, r.liveDir(), v1)
	original := configDigest(t, r.liveDir())
	if run, live := r.configFormats(t); run != "1" || live != "1" {
		t.Fatalf("factory: iadConfigFormat %s, iadConfigLiveFormat %s; want 1, 1", run, live)
	}

	// a. backup; the last-backup objects describe the file on the server.
	r.mustSucceed(t, 1, "backupConfig", "tftp", "v1-backup.tar")
	onServer, err := os.ReadFile(filepath.Join(r.tftp.Dir, "v1-backup.tar"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(onServer)
	lb := r.ro.Get(t, "iadConfigLastBackupDigest.0", "iadConfigLastBackupSize.0", "iadConfigLastBackupTime.0", "iadConfigBackupEncrypted.0")
	if got := strings.ToLower(strings.Join(strings.Fields(lb["iadConfigLastBackupDigest.0"]), "")); got != hex.EncodeToString(sum[:]) {
		t.Errorf("iadConfigLastBackupDigest: got %s, want %x", got, sum)
	}
	if lb["iadConfigLastBackupSize.0"] != strconv.Itoa(len(onServer)) {
		t.Errorf("iadConfigLastBackupSize: got %s, want %d", lb["iadConfigLastBackupSize.0"], len(onServer))
	}
	if strings.Trim(lb["iadConfigLastBackupTime.0"], "0 ") == "" || lb["iadConfigBackupEncrypted.0"] != "2" {
		t.Errorf("iadConfigLastBackupTime %q, iadConfigBackupEncrypted %q (want a time, false(2))", lb["iadConfigLastBackupTime.0"], lb["iadConfigBackupEncrypted.0"])
	}

	// b. upgrade to software of configuration format 2, reset.
	r.imageFormat(t, "v2.img", "2.0.0", testHW, r.key, 1<<20, 2)
	r.mustSucceed(t, 2, "upgrade", "ftp", "v2.img")
	r.reset(t, 3)
	if got := r.sw(t); got.version != "2.0.0" || got.activeBank != "2" {
		t.Fatalf("after reset: %+v, want 2.0.0 from bank B", got)
	}
	if run, live := r.configFormats(t); run != "2" || live != "2" {
		t.Fatalf("new software: iadConfigFormat %s, iadConfigLiveFormat %s; want 2, 2 (converted at its first start)", run, live)
	}
	v2 := plus(goldenConfig(t, "1-2/full/want"), opaqueFile)
	equalFiles(t, "converted at first start", liveFiles(t, r.liveDir()), v2)
	r.waitBankState(t, 2, mib.BankActive) // a usable configuration lets the trial commit

	// c. the configuration changes, then the format-1 backup is restored
	// into format 2.
	setConfig(t, r.liveDir(), plus(goldenConfig(t, "1-2/minimal/want"), nil))
	r.mustSucceed(t, 4, "restoreConfig", "tftp", "v1-backup.tar")
	got := liveFiles(t, r.liveDir())
	equalFiles(t, "restored and converted", got, v2)
	if lost := iadconfigtest.Lost(decodeFiles(t, v1), decodeFiles(t, got)); len(lost) > 0 {
		t.Errorf("the format-2 configuration lost format-1 values:\n%s", strings.Join(lost, "\n"))
	}

	// Revert to the old bank: it runs on its format-1 configuration again.
	r.mustSucceed(t, 5, "revert", "", "")
	r.reset(t, 6)
	if got := r.sw(t); got.version != "1.0.0" || got.activeBank != "1" {
		t.Fatalf("after revert and reset: %+v, want 1.0.0 from bank A", got)
	}
	if run, live := r.configFormats(t); run != "1" || live != "1" {
		t.Errorf("old software: iadConfigFormat %s, iadConfigLiveFormat %s; want 1, 1", run, live)
	}
	if got := configDigest(t, r.liveDir()); got != original {
		equalFiles(t, "after revert", liveFiles(t, r.liveDir()), v1)
		t.Fatalf("after revert: the configuration is not the format-1 original")
	}
	b, _ := os.ReadFile(reloads)
	if got, want := strings.Fields(string(b)), []string{"start", "2", "restore", "2", "start", "1"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("reload hook calls: got %q, want %q", got, want)
	}
}

// TestConfigRestoreRefusals drives every way a restore must be refused:
// each gets its fail cause and a text naming the problem, and leaves the
// live configuration byte-for-byte as it was. It also shows a failed
// conversion at start-up holding back the trial's commit until a forced
// restore brings a usable configuration.
func TestConfigRestoreRefusals(t *testing.T) {
	hook, _, refuse := reloadHook(t)
	r := newRig(t, rigOptions{noFTP: true, args: []string{"-reload-cmd", hook}})
	good := plus(goldenConfig(t, "1-2/full/in"), opaqueFile)
	shared := plus(good, map[string][]byte{"users.conf": bytes.Replace(good["users.conf"], []byte("line.10.port = fxs3"), []byte("line.10.port = fxs1"), 1)})
	invalid := plus(good, map[string][]byte{
		"users.conf":    append(bytes.Clone(good["users.conf"]), "line.11.number = 4930123457\nline.11.port = fxs9\n"...),
		"protocol.conf": bytes.Replace(good["protocol.conf"], []byte("mgmt.address = 2001:db8::100"), []byte("mgmt.address = 300.1.1.1"), 1),
	})
	secrets := decodeFiles(t, good).Secrets()

	setConfig(t, r.liveDir(), good)
	r.mustSucceed(t, 1, "backupConfig", "tftp", "good-v1.tar")
	setConfig(t, r.liveDir(), invalid)
	r.mustSucceed(t, 2, "backupConfig", "tftp", "invalid-v1.tar")
	setConfig(t, r.liveDir(), shared)
	r.mustSucceed(t, 3, "backupConfig", "tftp", "shared-v1.tar")
	sharedDigest := configDigest(t, r.liveDir())

	// The device runs on the shared-port configuration, which format 3
	// cannot express: its first start cannot convert it.
	r.imageFormat(t, "v3.img", "3.0.0", testHW, r.key, 1<<20, 3)
	r.mustSucceed(t, 4, "upgrade", "tftp", "v3.img")
	logFrom := r.agent.LogSize()
	r.reset(t, 5)
	r.agent.WaitLog(t, logFrom, "trial boot not committed")
	if run, live := r.configFormats(t); run != "3" || live != "1" {
		t.Fatalf("after a failed conversion: iadConfigFormat %s, iadConfigLiveFormat %s; want 3, 1", run, live)
	}
	if got := r.sw(t); got.stateB != strconv.Itoa(int(mib.BankTrial)) {
		t.Fatalf("bank B: %+v, want still on trial", got)
	}
	if configDigest(t, r.liveDir()) != sharedDigest {
		t.Fatal("a failed conversion at start-up changed the configuration")
	}

	texts := map[string]string{}
	refused := func(name string, idx int, cause mib.FailCause, file string, want []string, extra ...string) {
		t.Helper()
		before := configDigest(t, r.liveDir())
		res := r.mustFail(t, idx, cause, "restoreConfig", "tftp", file, extra...)
		texts[name] = res.text
		t.Logf("%s: iadOpFailCause %s, iadOpFailText %q", name, cause, res.text)
		for _, w := range want {
			if !strings.Contains(res.text, w) {
				t.Errorf("%s: iadOpFailText %q does not say %q", name, res.text, w)
			}
		}
		if configDigest(t, r.liveDir()) != before {
			t.Fatalf("%s: the live configuration changed", name)
		}
	}
	force := []string{"iadOpForce", "i", "1"}
	refused("major mismatch without force", 6, mib.FailConfigMajorMismatch, "good-v1.tar", []string{"format 1 (compat 1.0)", "format 3 (compat 2.0)"})

	// Forced, the backup converts and the trial can commit.
	r.mustSucceed(t, 7, "restoreConfig", "tftp", "good-v1.tar", force...)
	equalFiles(t, "forced restore", liveFiles(t, r.liveDir()), plus(goldenConfig(t, "2-3/full/want"), opaqueFile))
	r.waitBankState(t, 2, mib.BankActive)
	if v := r.ro.GetValue(t, "iadOpForce.7"); v != "1" {
		t.Errorf("iadOpForce.7 reads %q, want true(1)", v)
	}

	refused("major mismatch without force (v3 live)", 8, mib.FailConfigMajorMismatch, "good-v1.tar", nil)
	refused("converter fails mid-way", 9, mib.FailConfigConvertFailed, "shared-v1.tar",
		[]string{"format 2 to 3", "lines 1 and 10 both ring fxs1"}, force...)
	refused("validation errors", 10, mib.FailConfigInvalid, "invalid-v1.tar",
		[]string{"3 problems", "users.conf: line.11.number: 4930123457 is also the number of line.2", "users.conf: line.11.port: fxs9 is not defined in ports.conf", `protocol.conf: mgmt.address: "300.1.1.1" is not an IP address`}, force...)
	if err := os.WriteFile(refuse, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	refused("reload hook fails", 11, mib.FailApplyFailed, "good-v1.tar", []string{"exit status 3", "voipd: cannot register line 2 with password <redacted>"}, force...)
	os.Remove(refuse)

	// Back to the old software: it finds the format-1 configuration kept
	// by the forced restore, and refuses the newer backup.
	r.mustSucceed(t, 12, "backupConfig", "tftp", "v3.tar")
	r.mustSucceed(t, 13, "revert", "", "")
	r.reset(t, 14)
	equalFiles(t, "after revert", liveFiles(t, r.liveDir()), good)
	refused("archive from a newer format", 15, mib.FailConfigTooNew, "v3.tar", []string{"configuration is format 3, the running software uses format 1"})

	// No secret reached the log or any fail text.
	logText, _ := os.ReadFile(r.agent.LogPath)
	for _, s := range secrets {
		if bytes.Contains(logText, []byte(s)) {
			t.Errorf("the agent log contains a SIP password")
		}
		for name, text := range texts {
			if strings.Contains(text, s) {
				t.Errorf("%s: iadOpFailText contains a SIP password", name)
			}
		}
	}
}

// TestEncryptedBackups: with a device key (made by openssl), backups on
// the server are encrypted and restores accept only archives that
// authenticate under that key.
func TestEncryptedBackups(t *testing.T) {
	openssl := RequireTool(t, "openssl")
	keys := t.TempDir()
	for _, k := range []string{"device.key", "other.key"} {
		if out, err := exec.Command(openssl, "rand", "-hex", "-out", filepath.Join(keys, k), "32").CombinedOutput(); err != nil {
			t.Fatalf("openssl rand: %v\n%s", err, out)
		}
	}
	r := newRig(t, rigOptions{noFTP: true, args: []string{"-config-key", filepath.Join(keys, "device.key")}})
	good := plus(goldenConfig(t, "1-2/full/in"), opaqueFile)
	setConfig(t, r.liveDir(), good)
	original := configDigest(t, r.liveDir())
	r.mustSucceed(t, 1, "backupConfig", "tftp", "enc.tar")
	enc, err := os.ReadFile(filepath.Join(r.tftp.Dir, "enc.tar"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(enc, []byte("IADBKENC")) {
		t.Fatalf("backup on the server does not start with the encryption header: %q", enc[:16])
	}
	for _, s := range append(decodeFiles(t, good).Secrets(), "line.1.number", "MANIFEST.json") {
		if bytes.Contains(enc, []byte(s)) {
			t.Errorf("the encrypted backup shows %q", s)
		}
	}
	if v := r.ro.GetValue(t, "iadConfigBackupEncrypted.0"); v != "1" {
		t.Errorf("iadConfigBackupEncrypted: %s, want true(1)", v)
	}

	// Restores of archives that do not authenticate are refused.
	setConfig(t, r.liveDir(), plus(goldenConfig(t, "1-2/minimal/in"), nil))
	changed := configDigest(t, r.liveDir())
	tampered := bytes.Clone(enc)
	tampered[len(tampered)/2] ^= 0x01
	r.put(t, "tampered.tar", tampered)
	r.put(t, "truncated.tar", enc[:len(enc)/2])
	// An archive encrypted under another device's key, and a plain one.
	other := StartAgent(t, "", "-rw-community", "private", "-config-key", filepath.Join(keys, "other.key"))
	o := &rig{agent: other, tftp: r.tftp, rw: other.SNMP("private"), ro: other.SNMP("public")}
	o.mustSucceed(t, 1, "backupConfig", "tftp", "foreign.tar")
	other.Stop(t)
	other.Args = []string{"-rw-community", "private"}
	other.Restart(t)
	o.mustSucceed(t, 2, "backupConfig", "tftp", "plain.tar")
	other.Stop(t)

	for i, c := range []struct {
		file, text string
	}{
		{"tampered.tar", "does not authenticate"},
		{"truncated.tar", "encrypted backup"},
		{"foreign.tar", "another device key"},
		{"plain.tar", "accepts only archives encrypted under its key"},
	} {
		res := r.mustFail(t, 10+i, mib.FailConfigInvalid, "restoreConfig", "tftp", c.file)
		t.Logf("%s: iadOpFailText %q", c.file, res.text)
		if !strings.Contains(res.text, c.text) {
			t.Errorf("%s: iadOpFailText %q does not say %q", c.file, res.text, c.text)
		}
		if configDigest(t, r.liveDir()) != changed {
			t.Fatalf("%s: the live configuration changed", c.file)
		}
	}
	r.mustSucceed(t, 20, "restoreConfig", "tftp", "enc.tar")
	if configDigest(t, r.liveDir()) != original {
		t.Error("restoring the encrypted backup did not bring the configuration back")
	}
}
