package itest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/image"
	"github.com/iadsafe/iad-agent/mib"
)

// testHW is the hardware string the rig's agents accept.
const testHW = "iad-itest"

// opWait bounds how long an operation may take before the test gives up
// (a failure, not a timing assertion: operations here take well under a
// second on loopback).
const opWait = 90 * time.Second

// rig is one agent with its own TFTP server, FTP server and trap receiver.
type rig struct {
	agent *Agent
	tftp  *TFTPServer
	ftp   *FTPServer
	traps *TrapReceiver
	// master is snmpd when the agent runs as its AgentX sub-agent; rw and
	// ro then talk to the master.
	master *SNMPD
	rw     SNMP
	ro     SNMP
	key    string // path prefix of the trusted key pair
	other  string // a key pair the agent does not trust
	data   string
}

type rigOptions struct {
	noFTP bool
	args  []string // extra agent flags
	// agentx runs the agent as an AgentX sub-agent of a real snmpd, which
	// also forwards its notifications to the trap receiver.
	agentx bool
}

func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	keys := t.TempDir()
	r := &rig{key: filepath.Join(keys, "dev"), other: filepath.Join(keys, "other"), data: t.TempDir()}
	for _, k := range []string{r.key, r.other} {
		if err := image.GenerateKey(k); err != nil {
			t.Fatal(err)
		}
	}
	r.traps = StartTrapReceiver(t)
	tftpDir, err := os.MkdirTemp("", "iad-tftp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tftpDir) })
	os.Chmod(tftpDir, 0o777)
	r.tftp = StartTFTP(t, tftpDir, true)
	if !o.noFTP {
		ftpDir, err := os.MkdirTemp("", "iad-ftp-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(ftpDir) })
		r.ftp = StartFTP(t, ftpDir)
	}
	args := []string{
		"-trust", r.key + ".pub",
		"-hw", testHW,
		"-commit-after", "1s",
		"-slot-size", "8MiB",
	}
	if o.agentx {
		r.master = StartSNMPDMaster(t, "trap2sink "+r.traps.Target()+" public")
		r.agent = StartSubAgent(t, r.master, r.data, append(args, o.args...)...)
	} else {
		args = append(args, "-rw-community", "private", "-trap", r.traps.Target())
		r.agent = StartAgent(t, r.data, append(args, o.args...)...)
	}
	r.rw = r.agent.SNMP("private")
	r.ro = r.agent.SNMP("public")
	return r
}

// image builds a signed image with a random payload of size bytes into
// both servers' directories and returns its file name. Its software uses
// configuration format 1, as the factory software does.
func (r *rig) image(t *testing.T, name, version, hw, keyPrefix string, size int) string {
	t.Helper()
	return r.imageFormat(t, name, version, hw, keyPrefix, size, 1)
}

// imageFormat is image for software that uses configuration format
// configFormat (the image header says so).
func (r *rig) imageFormat(t *testing.T, name, version, hw, keyPrefix string, size int, configFormat uint32) string {
	t.Helper()
	payload := make([]byte, size)
	rng := rand.New(rand.NewPCG(uint64(size), 7))
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	key, err := image.LoadPrivateKey(keyPrefix + ".key")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(payload)
	h := image.Header{Hardware: hw, Version: version, ConfigFormat: configFormat, PayloadSize: int64(size), PayloadSHA256: sum, Created: time.Now()}
	var buf bytes.Buffer
	if err := image.Build(&buf, h, bytes.NewReader(payload), key); err != nil {
		t.Fatal(err)
	}
	r.put(t, name, buf.Bytes())
	return name
}

// put stores a file on both servers.
func (r *rig) put(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(r.tftp.Dir, name), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if r.ftp != nil {
		r.ftp.WriteFile(t, name, data)
	}
}

// op starts an operation with one SET (createAndGo) and returns the
// snmpset output.
func (r *rig) op(t *testing.T, idx int, typ, proto, file string, extra ...string) {
	t.Helper()
	out, err := r.rw.Set(t, r.opArgs(idx, typ, proto, file, extra...)...)
	if err != nil {
		t.Fatalf("starting %s #%d: %v\n%s", typ, idx, err, out)
	}
}

func (r *rig) opArgs(idx int, typ, proto, file string, extra ...string) []string {
	i := "." + strconv.Itoa(idx)
	// extra holds (column, type, value) triples that override the defaults.
	override := map[string]bool{}
	for j := 0; j+3 <= len(extra); j += 3 {
		override[extra[j]] = true
	}
	var args []string
	add := func(col, typ, val string) {
		if !override[col] {
			args = append(args, col+i, typ, val)
		}
	}
	add("iadOpType", "i", typ)
	if proto != "" {
		port := 0
		switch {
		case proto == "tftp" && r.tftp != nil:
			port = r.tftp.Port
		case proto == "ftp" && r.ftp != nil:
			port = r.ftp.Port
			add("iadOpUserName", "s", r.ftp.User)
			add("iadOpPassword", "s", r.ftp.Password)
		}
		add("iadOpProtocol", "i", proto)
		add("iadOpServerAddressType", "i", "ipv4")
		add("iadOpServerAddress", "x", "7F000001")
		add("iadOpServerPort", "u", strconv.Itoa(port))
		add("iadOpFileName", "s", file)
	}
	for j := 0; j+3 <= len(extra); j += 3 {
		args = append(args, extra[j]+i, extra[j+1], extra[j+2])
	}
	return append(args, "iadOpRowStatus"+i, "i", "createAndGo")
}

// opResult is what a completed row reads.
type opResult struct {
	state, cause, text string
}

// wait polls the row until it completes.
func (r *rig) wait(t *testing.T, idx int) opResult {
	t.Helper()
	i := "." + strconv.Itoa(idx)
	deadline := time.Now().Add(opWait)
	for {
		v := r.ro.Get(t, "iadOpState"+i, "iadOpFailCause"+i, "iadOpFailText"+i)
		st := v["iadOpState"+i]
		if st == strconv.Itoa(int(mib.OpSuccessful)) || st == strconv.Itoa(int(mib.OpFailed)) {
			return opResult{state: st, cause: v["iadOpFailCause"+i], text: v["iadOpFailText"+i]}
		}
		if time.Now().After(deadline) {
			t.Fatalf("operation %d still in state %s after %v", idx, st, opWait)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// mustSucceed runs an operation to successful completion.
func (r *rig) mustSucceed(t *testing.T, idx int, typ, proto, file string, extra ...string) {
	t.Helper()
	r.op(t, idx, typ, proto, file, extra...)
	if res := r.wait(t, idx); res.state != strconv.Itoa(int(mib.OpSuccessful)) {
		t.Fatalf("%s #%d over %s: got state %s cause %s (%s), want successful", typ, idx, proto, res.state, mib.FailCause(atoi(res.cause)), res.text)
	}
}

// mustFail runs an operation that must fail with cause.
func (r *rig) mustFail(t *testing.T, idx int, cause mib.FailCause, typ, proto, file string, extra ...string) opResult {
	t.Helper()
	r.op(t, idx, typ, proto, file, extra...)
	res := r.wait(t, idx)
	if res.state != strconv.Itoa(int(mib.OpFailed)) || res.cause != strconv.Itoa(int(cause)) {
		t.Fatalf("%s #%d: got state %s cause %s (%q), want failed/%s", typ, idx, res.state, mib.FailCause(atoi(res.cause)), res.text, cause)
	}
	if res.text == "" {
		t.Errorf("%s #%d: iadOpFailText is empty", typ, idx)
	}
	return res
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// liveDir is the agent's live configuration directory.
func (r *rig) liveDir() string { return filepath.Join(r.data, "config", "live") }

// configDigest hashes every file of the live configuration (names and
// contents), independently of the agent's code.
func configDigest(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir+"/", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s\x00%d\x00", rel, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		t.Fatalf("hashing %s: %v", dir, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// sw is the agent's software summary.
type sw struct{ version, activeBank, nextBank, stateA, stateB string }

func (r *rig) sw(t *testing.T) sw {
	t.Helper()
	v := r.ro.Get(t, "iadSwCurrentVersion.0", "iadSwActiveBank.0", "iadSwNextBank.0", "iadBankState.1", "iadBankState.2")
	return sw{v["iadSwCurrentVersion.0"], v["iadSwActiveBank.0"], v["iadSwNextBank.0"], v["iadBankState.1"], v["iadBankState.2"]}
}

// waitBankState polls until bank idx reads want.
func (r *rig) waitBankState(t *testing.T, idx int, want mib.BankState) {
	t.Helper()
	deadline := time.Now().Add(opWait)
	obj := "iadBankState." + strconv.Itoa(idx)
	for {
		got := r.ro.GetValue(t, obj)
		if got == strconv.Itoa(int(want)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: got %s, want %s", obj, mib.BankState(atoi(got)), want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// reset runs a reset operation and waits for the agent to come back.
func (r *rig) reset(t *testing.T, idx int) {
	t.Helper()
	mark := r.agent.MarkRestart(t)
	r.op(t, idx, "reset", "", "")
	r.agent.WaitRestartedSince(t, mark)
	if res := r.wait(t, idx); res.state != strconv.Itoa(int(mib.OpSuccessful)) {
		t.Fatalf("reset #%d after restart: got %+v, want successful", idx, res)
	}
}

// event is one expected notification: its OID and, for operation
// notifications, the row index and the value of iadOpState.
type event struct {
	oid   mib.OID
	index int // 0: any / not an operation notification
	state mib.OpState
	cause mib.FailCause // checked when non-zero
}

func (e event) String() string {
	name := e.oid.String()
	for n, o := range mib.Names {
		if o.Equal(e.oid) {
			name = n
		}
	}
	if e.oid.Equal(mib.ColdStart) {
		name = "coldStart"
	}
	if e.index == 0 {
		return name
	}
	return fmt.Sprintf("%s(#%d %s %s)", name, e.index, e.state, e.cause)
}

func (e event) match(tr Trap) bool {
	if tr.TrapOID != e.oid.String() {
		return false
	}
	if e.index == 0 {
		return true
	}
	suffix := "." + strconv.Itoa(e.index)
	st, ok := tr.Var(mib.IadOpState.String() + suffix)
	if !ok || st != strconv.Itoa(int(e.state)) {
		return false
	}
	if e.cause != 0 {
		c, ok := tr.Var(mib.IadOpFailCause.String() + suffix)
		if !ok || c != strconv.Itoa(int(e.cause)) {
			return false
		}
	}
	return true
}

// waitEvents waits until the notifications received contain want as an
// ordered subsequence (others may come in between: progress notifications
// are rate-limited, not counted).
func (r *rig) waitEvents(t *testing.T, want ...event) {
	t.Helper()
	matched := func(traps []Trap) int {
		i := 0
		for _, tr := range traps {
			if i < len(want) && want[i].match(tr) {
				i++
			}
		}
		return i
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		traps := r.traps.Traps()
		n := matched(traps)
		if n == len(want) {
			return
		}
		if time.Now().After(deadline) {
			var seen []string
			for _, tr := range traps {
				seen = append(seen, tr.String())
			}
			t.Fatalf("notifications: matched %d of %d; first missing %v\nwant: %v\nseen:\n%s", n, len(want), want[n], want, strings.Join(seen, "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
