package itest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Trap is one notification snmptrapd received.
type Trap struct {
	// TrapOID is snmpTrapOID.0, numeric without the leading dot. For an
	// SNMPv1 trap it is derived as RFC 3584 does.
	TrapOID string
	// Vars are the variable bindings in order, without sysUpTime.0 and
	// snmpTrapOID.0.
	Vars []VarBind
	// Version is 0 (v1), 1 (v2c) or 2 (v3); Security is the community or
	// the v3 user name.
	Version  int
	Security string
	// Raw is the log record the trap was parsed from.
	Raw string
}

// Var returns the value of the first variable whose OID is oid or starts
// with oid followed by a dot, and whether there is one.
func (tr Trap) Var(oid string) (string, bool) {
	oid = strings.TrimPrefix(oid, ".")
	for _, v := range tr.Vars {
		if v.OID == oid || strings.HasPrefix(v.OID, oid+".") {
			return v.Value, true
		}
	}
	return "", false
}

// VarBind is one variable: OID numeric without the leading dot; Value as
// net-snmp prints it with numeric enums and timeticks, strings unquoted,
// OID values without the leading dot; Type is net-snmp's type label
// ("STRING", "INTEGER", "Gauge32", "OID", …) where the tool printed one.
type VarBind struct {
	OID, Value string
	Type       string
}

const (
	sysUpTimeOID   = "1.3.6.1.2.1.1.3.0"
	snmpTrapOIDOID = "1.3.6.1.6.3.1.1.4.1.0"
	// probeTrapOID is under the documentation enterprise (RFC 5612), in an
	// arc the IAD MIB does not use; Traps never returns these.
	probeTrapOID = "1.3.6.1.4.1.32473.9999.1"
	probeVarOID  = "1.3.6.1.4.1.32473.9999.2"
)

// TrapReceiver is a running snmptrapd on 127.0.0.1:Port that logs each
// notification as one parseable record.
type TrapReceiver struct {
	Port    int
	PID     int
	LogPath string
	// ConfPath is snmptrapd's configuration (extra lines come from
	// StartTrapReceiverConf).
	ConfPath string

	procMu sync.Mutex
	proc   *process
	argv   []string
	env    []string
	mu     sync.Mutex
	// earlier are the logs of runs before a Restart: snmptrapd truncates
	// its log file when it starts.
	earlier []string
}

// Target is "127.0.0.1:Port", the agent's -trap argument.
func (r *TrapReceiver) Target() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// The log record: fields separated by 0x1F (unit separator), which no
// printable value contains, so tabs and newlines inside strings survive.
const (
	fieldSep  = "\x1f"
	recordEnd = fieldSep + "IADEND\n"
	// format2 is v2c/v3: version, security name, varbinds.
	format2 = "IADTRAP" + fieldSep + "%s" + fieldSep + "%u" + fieldSep + "%V" + fieldSep + "%v" + fieldSep + "IADEND\\n"
	// format1 is v1: version, community, enterprise, generic, specific,
	// varbinds.
	format1 = "IADTRAP1" + fieldSep + "%s" + fieldSep + "%u" + fieldSep + "%N" + fieldSep + "%w" + fieldSep + "%q" +
		fieldSep + "%V" + fieldSep + "%v" + fieldSep + "IADEND\\n"
)

// StartTrapReceiver starts snmptrapd accepting v1/v2c notifications with
// any community, and waits until a probe trap shows up in its log.
func StartTrapReceiver(t testing.TB) *TrapReceiver {
	t.Helper()
	return StartTrapReceiverConf(t, "")
}

// StartTrapReceiverConf is StartTrapReceiver with extra snmptrapd.conf
// lines (e.g. "createUser -e 0x8000… user SHA pass AES pass" for v3).
func StartTrapReceiverConf(t testing.TB, extraConf string) *TrapReceiver {
	t.Helper()
	bin := RequireTool(t, "snmptrapd")
	work := t.TempDir()
	confPath := filepath.Join(work, "snmptrapd.conf")
	conf := "disableAuthorization yes\n" +
		"doNotRetainNotificationLogs yes\n" +
		"format2 " + format2 + "\n" +
		"format1 " + format1 + "\n" +
		extraConf + "\n"
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(work, "snmptrapd.log")
	// The persistent directory keeps snmptrapd's engine ID and boots out
	// of /var/lib/snmp, and apart from the configuration: snmptrapd
	// rewrites $SNMP_PERSISTENT_DIR/snmptrapd.conf.
	persist := filepath.Join(work, "persist")
	if err := os.MkdirAll(persist, 0o700); err != nil {
		t.Fatal(err)
	}
	// Reading the persistent directory too keeps snmptrapd's engine ID
	// and boots across Restart, as on a real receiver.
	env := append(SNMP{}.Env(t), "SNMP_PERSISTENT_DIR="+persist, "SNMPCONFPATH="+work+":"+persist)
	var lastErr error
	for range 3 {
		port := FreeUDPPort(t)
		// -On numeric OIDs, -Oe numeric enums, -Ot raw timeticks: stable to
		// parse whatever MIBs are loaded; -X no AgentX; -n no DNS.
		// No -C: it would keep snmptrapd from reading its persistent file
		// too. SNMPCONFPATH confines the configuration to work (ConfPath)
		// and persist; nothing of /etc/snmp or ~/.snmp is read.
		r := &TrapReceiver{Port: port, LogPath: logPath, ConfPath: confPath, env: env,
			argv: []string{bin, "-f", "-Lf", logPath,
				"-On", "-Oe", "-Ot", "-OU", "-n", "-X", "udp:127.0.0.1:" + strconv.Itoa(port)}}
		if lastErr = r.launch(t); lastErr == nil {
			t.Cleanup(r.Stop)
			return r
		}
	}
	t.Fatalf("snmptrapd did not start: %v\nlog %s:\n%s", lastErr, logPath, logTail(logPath, tailLines))
	return nil
}

// launch starts snmptrapd with the saved command line and waits until a
// probe trap shows up in its log; on failure it is stopped again.
func (r *TrapReceiver) launch(t testing.TB) error {
	t.Helper()
	p, err := launch("snmptrapd", r.LogPath, r.env, r.argv...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	r.procMu.Lock()
	r.proc, r.PID = p, p.pid()
	r.procMu.Unlock()
	nonce := randomHex()
	err = p.waitStarted(startTimeout, func() error {
		if r.sawProbe(nonce) {
			return nil
		}
		_, err := SNMP{}.Run(t, "snmptrap", "-v2c", "-c", "public", r.Target(), "",
			probeTrapOID, probeVarOID, "s", nonce)
		if err != nil {
			return err
		}
		// The trap is fire-and-forget; give the log a moment before
		// the next send.
		return poll(300*time.Millisecond, func() (bool, error) {
			return r.sawProbe(nonce), errProbeNotLogged
		})
	})
	if err != nil {
		p.terminate(stopGrace)
	}
	return err
}

// Restart starts snmptrapd again on the same port with the same
// configuration and persistent state (after Stop) and waits until it logs.
func (r *TrapReceiver) Restart(t testing.TB) {
	t.Helper()
	r.Stop()
	r.mu.Lock()
	old := r.LogPath + "." + strconv.Itoa(len(r.earlier)+1)
	err := os.Rename(r.LogPath, old)
	if err == nil {
		r.earlier = append(r.earlier, old)
	}
	r.mu.Unlock()
	if err != nil {
		t.Fatalf("keeping the snmptrapd log: %v", err)
	}
	if err := r.launch(t); err != nil {
		t.Fatalf("snmptrapd did not restart: %v\nlog %s:\n%s", err, r.LogPath, logTail(r.LogPath, tailLines))
	}
}

var errProbeNotLogged = fmt.Errorf("itest: probe trap not logged yet")

func randomHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (r *TrapReceiver) sawProbe(nonce string) bool {
	for _, tr := range r.all() {
		if tr.TrapOID == probeTrapOID {
			if v, _ := tr.Var(probeVarOID); v == nonce {
				return true
			}
		}
	}
	return false
}

// Stop kills snmptrapd and waits. Idempotent.
func (r *TrapReceiver) Stop() {
	r.procMu.Lock()
	p := r.proc
	r.procMu.Unlock()
	p.terminate(stopGrace)
}

// Traps returns the notifications logged so far, oldest first, without
// the receiver's own start-up probes.
func (r *TrapReceiver) Traps() []Trap {
	var out []Trap
	for _, tr := range r.all() {
		if tr.TrapOID != probeTrapOID {
			out = append(out, tr)
		}
	}
	return out
}

// all parses the whole log; it is small, and re-reading keeps the
// receiver free of a background reader.
func (r *TrapReceiver) all() []Trap {
	r.mu.Lock()
	defer r.mu.Unlock()
	var traps []Trap
	for _, p := range append(append([]string(nil), r.earlier...), r.LogPath) {
		if b, err := os.ReadFile(p); err == nil {
			traps = append(traps, parseTrapLog(string(b))...)
		}
	}
	return traps
}

// WaitFor polls the log until pred accepts the traps received so far and
// returns them; on timeout it fails the test listing what arrived.
func (r *TrapReceiver) WaitFor(t testing.TB, timeout time.Duration, pred func([]Trap) bool) []Trap {
	t.Helper()
	var got []Trap
	err := poll(timeout, func() (bool, error) {
		got = r.Traps()
		return pred(got), nil
	})
	if err != nil {
		var b strings.Builder
		for i, tr := range got {
			fmt.Fprintf(&b, "  %d: %s\n", i, tr)
		}
		if len(got) == 0 {
			b.WriteString("  (none)\n")
		}
		t.Fatalf("traps: condition not met within %v; received:\n%slog %s:\n%s",
			timeout, b.String(), r.LogPath, logTail(r.LogPath, tailLines))
	}
	return got
}

// String is a one-line summary for failure messages.
func (tr Trap) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "TRAP %s", tr.TrapOID)
	for _, v := range tr.Vars {
		fmt.Fprintf(&b, " | %s=%q", v.OID, v.Value)
	}
	return b.String()
}

// parseTrapLog extracts the records of format1/format2 from the log,
// ignoring snmptrapd's own messages between them.
func parseTrapLog(log string) []Trap {
	var traps []Trap
	for {
		end := strings.Index(log, recordEnd)
		if end < 0 {
			return traps // an incomplete record is still being written
		}
		rec := log[:end]
		log = log[end+len(recordEnd):]
		start := strings.LastIndex(rec, "IADTRAP")
		if start < 0 {
			continue
		}
		rec = rec[start:]
		if tr, ok := parseTrapRecord(rec); ok {
			traps = append(traps, tr)
		}
	}
}

func parseTrapRecord(rec string) (Trap, bool) {
	f := strings.Split(rec, fieldSep)
	tr := Trap{Raw: rec}
	var vbs []string
	switch {
	case f[0] == "IADTRAP" && len(f) >= 3:
		tr.Version, _ = strconv.Atoi(f[1])
		tr.Security = f[2]
		vbs = f[3:]
	case f[0] == "IADTRAP1" && len(f) >= 6:
		tr.Version, _ = strconv.Atoi(f[1])
		tr.Security = f[2]
		tr.TrapOID = v1TrapOID(f[3], f[4], f[5])
		vbs = f[6:]
	default:
		return Trap{}, false
	}
	for _, s := range vbs {
		if s == "" {
			continue
		}
		vb, ok := parseLoggedVarBind(s)
		if !ok {
			continue
		}
		switch vb.OID {
		case sysUpTimeOID:
			continue
		case snmpTrapOIDOID:
			tr.TrapOID = vb.Value
			continue
		}
		tr.Vars = append(tr.Vars, vb)
	}
	return tr, tr.TrapOID != ""
}

// v1TrapOID maps a v1 trap to snmpTrapOID as RFC 3584 section 3.1 does.
func v1TrapOID(enterprise, generic, specific string) string {
	enterprise = strings.TrimPrefix(strings.TrimSpace(enterprise), ".")
	g, _ := strconv.Atoi(strings.TrimSpace(generic))
	if g != 6 {
		return "1.3.6.1.6.3.1.1.5." + strconv.Itoa(g+1)
	}
	return enterprise + ".0." + strings.TrimPrefix(strings.TrimSpace(specific), ".")
}

// loggedVarBind is "OID = TYPE: value" or, for types -Ot/-OQ strip and
// empty strings, "OID = value".
var (
	loggedVarBind = regexp.MustCompile(`(?s)^\.?([0-9]+(?:\.[0-9]+)*) = (.*)$`)
	typePrefix    = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9-]*(?: [A-Za-z]+)?): `)
)

func parseLoggedVarBind(s string) (VarBind, bool) {
	m := loggedVarBind.FindStringSubmatch(s)
	if m == nil {
		return VarBind{}, false
	}
	vb := VarBind{OID: m[1]}
	val := m[2]
	if tm := typePrefix.FindStringSubmatch(val); tm != nil {
		vb.Type = tm[1]
		val = val[len(tm[0]):]
	}
	vb.Value = cleanValue(val)
	return vb, true
}
