package itest

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/iadsafe/iad-agent/image"
	"github.com/iadsafe/iad-agent/mib"
)

// TestFailures drives every failure path the operator can meet: each gets
// the right iadOpFailCause, a completed notification, and leaves the
// running bank and the live configuration untouched.
func TestFailures(t *testing.T) {
	r := newRig(t, rigOptions{})
	os.WriteFile(filepath.Join(r.liveDir(), "sip-accounts.conf"), []byte("line1 = 1001\n"), 0o600)
	config := configDigest(t, r.liveDir())
	before := r.sw(t)

	good := r.image(t, "good.img", "2.0.0", testHW, r.key, 1<<20)
	goodBytes, err := os.ReadFile(filepath.Join(r.tftp.Dir, good))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(name string, off int) string {
		b := bytes.Clone(goodBytes)
		b[off] ^= 0x01
		r.put(t, name, b)
		return name
	}
	r.image(t, "untrusted.img", "2.0.0", testHW, r.other, 1<<20)
	r.image(t, "wronghw.img", "2.0.0", "iad-other-board", r.key, 1<<20)
	r.image(t, "huge.img", "2.0.0", testHW, r.key, 9<<20) // slot is 8 MiB
	r.put(t, "truncated.img", goodBytes[:len(goodBytes)-4096])
	r.put(t, "corrupt-backup.tar", bytes.Repeat([]byte("not a tar archive "), 100))
	// A real backup with one byte changed inside a file: the manifest
	// catches it.
	r.mustSucceed(t, 90, "backupConfig", "tftp", "real-backup.tar")
	real, err := os.ReadFile(filepath.Join(r.tftp.Dir, "real-backup.tar"))
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.Index(real, []byte("line1 = 1001")); i > 0 {
		real[i] = 'X'
	} else {
		t.Fatal("test bug: backup does not contain the sip account file")
	}
	r.put(t, "tampered-backup.tar", real)
	deadPort := strconv.Itoa(FreeUDPPort(t))

	cases := []struct {
		name  string
		cause mib.FailCause
		typ   string
		proto string
		file  string
		extra []string
		text  string // a fragment iadOpFailText must contain
	}{
		{"tftp file not found", mib.FailFileNotFound, "upgrade", "tftp", "missing.img", nil, "not found"},
		{"ftp file not found", mib.FailFileNotFound, "restoreConfig", "ftp", "missing.tar", nil, "not found"},
		{"tftp server not listening", mib.FailTimeout, "upgrade", "tftp", "good.img", []string{"iadOpServerPort", "u", deadPort, "iadOpTimeout", "u", "2"}, ""},
		{"ftp wrong password", mib.FailAuthFailed, "upgrade", "ftp", "good.img", []string{"iadOpPassword", "s", "wrong-password"}, ""},
		{"header byte changed", mib.FailSignatureInvalid, "upgrade", "tftp", flip("badhdr.img", 78), nil, "signature"},
		{"signature byte changed", mib.FailSignatureInvalid, "upgrade", "ftp", flip("badsig.img", image.HeaderSize+5), nil, "signature"},
		{"untrusted key", mib.FailUntrustedKey, "upgrade", "tftp", "untrusted.img", nil, ""},
		{"wrong hardware", mib.FailImageIncompatible, "upgrade", "tftp", "wronghw.img", nil, "iad-other-board"},
		{"truncated image", mib.FailImageCorrupt, "upgrade", "tftp", "truncated.img", nil, ""},
		{"payload bit flip", mib.FailImageCorrupt, "upgrade", "ftp", flip("bitflip.img", image.PayloadOffset+12345), nil, ""},
		{"image larger than the slot", mib.FailNoSpace, "upgrade", "tftp", "huge.img", nil, ""},
		{"corrupt backup archive", mib.FailConfigInvalid, "restoreConfig", "tftp", "corrupt-backup.tar", nil, ""},
		{"tampered backup archive", mib.FailConfigInvalid, "restoreConfig", "ftp", "tampered-backup.tar", nil, ""},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			idx := 100 + i
			res := r.mustFail(t, idx, c.cause, c.typ, c.proto, c.file, c.extra...)
			if c.text != "" && !strings.Contains(res.text, c.text) {
				t.Errorf("iadOpFailText: got %q, want it to mention %q", res.text, c.text)
			}
			r.waitEvents(t, event{oid: mib.IadOpCompletedNotify, index: idx, state: mib.OpFailed, cause: c.cause})
			if got := r.sw(t); got.version != before.version || got.activeBank != before.activeBank || got.stateA != before.stateA || got.nextBank != before.nextBank {
				t.Errorf("software after the failure: got %+v, want %+v", got, before)
			}
			if got := configDigest(t, r.liveDir()); got != config {
				t.Errorf("live configuration changed")
			}
		})
	}

	t.Run("second operation while one runs", func(t *testing.T) {
		// The first one waits on a server that never answers.
		r.op(t, 200, "upgrade", "tftp", "good.img", "iadOpServerPort", "u", deadPort, "iadOpTimeout", "u", "5")
		r.mustFail(t, 201, mib.FailBusy, "backupConfig", "tftp", "b.tar")
		r.waitEvents(t, event{oid: mib.IadOpCompletedNotify, index: 201, state: mib.OpFailed, cause: mib.FailBusy})
		if res := r.wait(t, 200); res.cause != strconv.Itoa(int(mib.FailTimeout)) {
			t.Errorf("first operation: got cause %s, want timeout", mib.FailCause(atoi(res.cause)))
		}
	})

	t.Run("bad SETs", func(t *testing.T) {
		for _, c := range []struct {
			name string
			args []string
			want string // net-snmp's name for the error-status
		}{
			{"wrong type", []string{"iadOpType.300", "s", "upgrade", "iadOpRowStatus.300", "i", "createAndGo"}, "wrongType"},
			{"out of range enum", []string{"iadOpType.301", "i", "9", "iadOpRowStatus.301", "i", "createAndGo"}, "wrongValue"},
			{"out of range timeout", []string{"iadOpType.302", "i", "reset", "iadOpTimeout.302", "u", "90000", "iadOpRowStatus.302", "i", "createAndGo"}, "wrongValue"},
			{"file name too long", []string{"iadOpType.303", "i", "upgrade", "iadOpFileName.303", "s", strings.Repeat("f", 300), "iadOpRowStatus.303", "i", "createAndGo"}, "wrongLength"},
			{"read-only column", []string{"iadOpState.304", "i", "3"}, "notWritable"},
			{"read-only scalar", []string{"iadSwCurrentVersion.0", "s", "9.9.9"}, "notWritable"},
			{"incomplete row", []string{"iadOpType.305", "i", "upgrade", "iadOpRowStatus.305", "i", "createAndGo"}, "inconsistentValue"},
			{"boot limit out of range", []string{"iadSwBootLimit.0", "u", "0"}, "wrongValue"},
		} {
			t.Run(c.name, func(t *testing.T) {
				// -Ir: let net-snmp send what its MIB check would refuse,
				// so the agent's own checks are what is tested.
				args := append([]string{"-Ir", "-v2c", "-c", "private", "-t", "2", "-r", "0", r.agent.Target()}, c.args...)
				out, err := r.rw.Run(t, "snmpset", args...)
				if err != nil {
					out += err.Error()
				}
				if err == nil || !strings.Contains(out, c.want) {
					t.Fatalf("snmpset %v: got err=%v output %q, want error %s", c.args, err, out, c.want)
				}
			})
		}
		// Nothing of a rejected PDU was created or started.
		for _, idx := range []string{"300", "301", "302", "303", "304", "305"} {
			if v := r.ro.GetValue(t, "iadOpState."+idx); v != NoSuchInstance {
				t.Errorf("row %s after a rejected SET: iadOpState reads %q, want no such instance", idx, v)
			}
		}
		if v := r.ro.GetValue(t, "iadSwBootLimit.0"); v != "3" {
			t.Errorf("iadSwBootLimit after a rejected SET: got %s, want 3", v)
		}
		// The read-only community cannot SET at all (no answer: a timeout).
		if out, err := r.ro.Set(t, "iadSwBootLimit.0", "u", "5"); err == nil {
			t.Errorf("SET with the read-only community succeeded: %s", out)
		}
	})

	if got := r.sw(t); got != before {
		t.Errorf("software at the end: got %+v, want %+v", got, before)
	}
	if got := configDigest(t, r.liveDir()); got != config {
		t.Errorf("live configuration changed")
	}
}
