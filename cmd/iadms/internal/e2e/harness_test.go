package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/agent/itest"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/fleet"
	"github.com/iadsafe/iad-agent/image"
	"github.com/iadsafe/iad-agent/mib"
)

func TestMain(m *testing.M) { os.Exit(itest.Main(m)) }

// The secrets of the test setup: distinctive, so a leak shows in a grep.
const (
	rwCommunity = "rw-S3CRET-c0mmunity"
	roCommunity = "ro-S3CRET-c0mmunity"
	testHW      = "iad-e2e"
)

// runWait bounds one iadms run: a failure bound, not a timing assertion.
const runWait = 3 * time.Minute

// station is one iadms set-up: its binary, credentials, state directory,
// embedded server and notification ports, and a signing key.
type station struct {
	bin   string
	dir   string
	creds string
	state string
	tftp  string
	traps string
	key   string
	// external is the directory of an external server a test started;
	// saved is a file a test keeps to put back.
	external string
	saved    []byte
}

func newStation(t *testing.T) *station {
	t.Helper()
	itest.RequireTool(t, "snmpget")
	dir := t.TempDir()
	s := &station{
		bin:   itest.BuildCommand(t, "./cmd/iadms"),
		dir:   dir,
		creds: filepath.Join(dir, "iadms.creds"),
		state: filepath.Join(dir, "state"),
		tftp:  "127.0.0.1:" + strconv.Itoa(itest.FreeUDPPort(t)),
		traps: "127.0.0.1:" + strconv.Itoa(itest.FreeUDPPort(t)),
		key:   filepath.Join(dir, "dev"),
	}
	creds := fmt.Sprintf("# e2e credentials\ndefault v2c community=%s read-community=%s\n", rwCommunity, roCommunity)
	if err := os.WriteFile(s.creds, []byte(creds), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := image.GenerateKey(s.key); err != nil {
		t.Fatal(err)
	}
	return s
}

// agentOpts shape an agent.
type agentOpts struct {
	noTraps     bool
	commitAfter string // default 1s
	extra       []string
}

// agent starts an iad-agent that trusts the station's key and sends its
// notifications to the station.
func (s *station) agent(t *testing.T, o agentOpts) *itest.Agent {
	t.Helper()
	if o.commitAfter == "" {
		o.commitAfter = "1s"
	}
	args := []string{
		"-ro-community", roCommunity, "-rw-community", rwCommunity,
		"-trust", s.key + ".pub", "-hw", testHW,
		"-commit-after", o.commitAfter, "-slot-size", "4MiB",
	}
	if !o.noTraps {
		args = append(args, "-trap", s.traps)
	}
	return itest.StartAgent(t, "", append(args, o.extra...)...)
}

// image builds a signed image of size random bytes into the station's
// directory and returns its path.
func (s *station) image(t testing.TB, name, version string, format uint32, size int) string {
	t.Helper()
	payload := make([]byte, size)
	rng := rand.New(rand.NewPCG(uint64(size), uint64(len(version))))
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}
	key, err := image.LoadPrivateKey(s.key + ".key")
	if err != nil {
		t.Fatal(err)
	}
	h := image.Header{Hardware: testHW, Version: version, ConfigFormat: format,
		PayloadSize: int64(size), PayloadSHA256: sha256.Sum256(payload), Created: time.Unix(1700000000, 0)}
	var buf bytes.Buffer
	if err := image.Build(&buf, h, bytes.NewReader(payload), key); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(s.dir, name)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// args are the flags every iadms command of the station gets.
func (s *station) args(cmd string, extra ...string) []string {
	a := []string{cmd, "--creds", s.creds, "--state", s.state, "--poll", "200ms", "--snmp-timeout", "500ms"}
	switch cmd {
	case "upgrade", "backup", "restore":
		a = append(a, "--tftp", s.tftp)
	}
	switch cmd {
	case "upgrade", "backup", "restore", "reset", "revert", "watch":
		if !contains(extra, "--trap-listen") {
			a = append(a, "--trap-listen", s.traps)
		}
	}
	return append(a, extra...)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// result is a finished iadms run.
type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// run runs iadms to the end.
func (s *station) run(t *testing.T, cmd string, extra ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runWait)
	defer cancel()
	c := exec.CommandContext(ctx, s.bin, s.args(cmd, extra...)...)
	c.Dir = s.dir
	var o, e bytes.Buffer
	c.Stdout, c.Stderr = &o, &e
	err := c.Run()
	r := result{stdout: o.String(), stderr: e.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("iadms %s: %v\n%s", cmd, err, r)
	}
	if ctx.Err() != nil {
		t.Fatalf("iadms %s did not finish within %v\n%s", cmd, runWait, r)
	}
	t.Logf("iadms %s: exit %d", strings.Join(s.args(cmd, extra...), " "), r.code)
	return r
}

// proc is an iadms running in the background, its output read line by
// line.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  strings.Builder
	done chan struct{}
	err  error
}

func (s *station) start(t *testing.T, cmd string, extra ...string) *proc {
	t.Helper()
	c := exec.Command(s.bin, s.args(cmd, extra...)...)
	c.Dir = s.dir
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	c.Stdout, c.Stderr = pw, pw
	p := &proc{cmd: c, done: make(chan struct{})}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			p.mu.Lock()
			p.out.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
	}()
	go func() {
		p.err = c.Wait()
		pw.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitFor waits until the output holds substr.
func (p *proc) waitFor(t *testing.T, substr string) {
	t.Helper()
	deadline := time.Now().Add(runWait)
	for !strings.Contains(p.output(), substr) {
		select {
		case <-p.done:
			if strings.Contains(p.output(), substr) {
				return
			}
			t.Fatalf("iadms ended (%v) without printing %q:\n%s", p.err, substr, p.output())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("iadms never printed %q within %v:\n%s", substr, runWait, p.output())
		}
	}
}

// kill9 kills iadms like a crash and waits for it.
func (p *proc) kill9(t *testing.T) {
	t.Helper()
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// interrupt sends SIGINT, as Ctrl-C on a terminal does.
func (p *proc) interrupt(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
}

// wait waits for iadms to end and returns its exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(runWait):
		t.Fatalf("iadms did not finish within %v:\n%s", runWait, p.output())
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("iadms: %v", p.err)
	}
	return 0
}

// report reads a JSON report.
func readReport(t *testing.T, path string) fleet.Report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r fleet.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("report %s: %v\n%s", path, err, b)
	}
	return r
}

// sw is what the agent runs, read with net-snmp's snmpget.
type sw struct{ version, active, next, stateA, stateB string }

func software(t *testing.T, a *itest.Agent) sw {
	t.Helper()
	v := a.SNMP(roCommunity).Get(t, "iadSwCurrentVersion.0", "iadSwActiveBank.0", "iadSwNextBank.0", "iadBankState.1", "iadBankState.2")
	return sw{v["iadSwCurrentVersion.0"], v["iadSwActiveBank.0"], v["iadSwNextBank.0"], v["iadBankState.1"], v["iadBankState.2"]}
}

func itoa[T ~int32](v T) string { return strconv.Itoa(int(v)) }

// wantRunning checks the agent runs version committed from bank.
func wantRunning(t *testing.T, a *itest.Agent, version string, bank mib.Bank) {
	t.Helper()
	got := software(t, a)
	state := got.stateA
	if bank == mib.BankB {
		state = got.stateB
	}
	if got.version != version || got.active != itoa(bank) || got.next != itoa(bank) || state != itoa(mib.BankActive) {
		t.Fatalf("agent: got %+v, want %s committed in %s", got, version, bank)
	}
}

// opCounts walks the agent's iadOpTable and counts rows per type and
// state ("upgrade/successful": 1).
func opCounts(t *testing.T, a *itest.Agent) map[string]int {
	t.Helper()
	vbs := a.SNMP(roCommunity).BulkWalk(t, "iadOpTable")
	types, states := map[string]string{}, map[string]string{}
	for _, vb := range vbs {
		o, err := mib.ParseOID(vb.OID)
		if err != nil || len(o) < 2 {
			continue
		}
		idx := strconv.FormatUint(uint64(o[len(o)-1]), 10)
		col := o[:len(o)-1]
		switch {
		case col.Equal(mib.IadOpType):
			n, _ := strconv.Atoi(vb.Value)
			types[idx] = mib.OpType(n).String()
		case col.Equal(mib.IadOpState):
			n, _ := strconv.Atoi(vb.Value)
			states[idx] = mib.OpState(n).String()
		}
	}
	out := map[string]int{}
	for idx, typ := range types {
		out[typ+"/"+states[idx]]++
	}
	return out
}

// liveDir is the agent's live configuration directory.
func liveDir(a *itest.Agent) string { return filepath.Join(a.DataDir, "config", "live") }

// configDigest hashes every file of a configuration directory (names and
// contents), independently of the agent's code.
func configDigest(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir+"/", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
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

// noSecrets fails if any of the texts or files holds a secret.
func noSecrets(t *testing.T, texts []string, files ...string) {
	t.Helper()
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("reading %s: %v", p, err)
		}
		texts = append(texts, string(b))
	}
	for i, s := range texts {
		for _, secret := range []string{rwCommunity, roCommunity, "S3CRET"} {
			if strings.Contains(s, secret) {
				t.Errorf("secret %q appears in output %d", secret, i)
			}
		}
	}
}

// setBootLimit sets iadSwBootLimit with net-snmp's snmpset.
func setBootLimit(t *testing.T, a *itest.Agent, n int) {
	t.Helper()
	if out, err := a.SNMP(rwCommunity).Set(t, "iadSwBootLimit.0", "u", strconv.Itoa(n)); err != nil {
		t.Fatalf("setting iadSwBootLimit: %v\n%s", err, out)
	}
}

// crashUntilReverted kills the agent n times before its health check, as
// a crash of the new software would, restarting it each time (the
// power comes back): with a boot limit of n the trial boots run out and
// the device boots its previous bank.
func crashUntilReverted(t *testing.T, a *itest.Agent, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if got := software(t, a); got.version != "2.0.0" || got.stateB != itoa(mib.BankTrial) {
			t.Fatalf("before crash %d: got %+v, want 2.0.0 on trial", i+1, got)
		}
		a.Kill9(t)
		a.Restart(t)
	}
	if got := software(t, a); got.version != "1.0.0" || got.stateB != itoa(mib.BankBad) {
		t.Fatalf("after %d crashes: got %+v, want 1.0.0 with bank B bad", n, got)
	}
}

// setCommitAfter changes the agent's health-check delay for its next
// start (a restart by the test; a reset re-executes with the arguments
// of the process that runs).
func setCommitAfter(a *itest.Agent, d string) {
	for i, arg := range a.Args {
		if arg == "-commit-after" && i+1 < len(a.Args) {
			a.Args[i+1] = d
		}
	}
}
