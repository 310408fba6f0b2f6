package itest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Values net-snmp prints for the v2c exceptions in a Get or Walk answer.
const (
	NoSuchObject   = "No Such Object available on this agent at this OID"
	NoSuchInstance = "No Such Instance currently exists at this OID"
	endOfMIBView   = "No more variables left in this MIB View"
)

// SNMP runs net-snmp's command-line tools (SNMPv2c) against Target with
// the IAD MIB loaded, so objects can be named ("iadOpState.7" or
// "IAD-UPGRADE-MIB::iadOpState.7").
type SNMP struct {
	// Target is "127.0.0.1:PORT" or "udp6:[::1]:PORT".
	Target string
	// Community defaults to "public".
	Community string
	// Timeout per try (default 1s) and Retries after the first try
	// (default 1).
	Timeout time.Duration
	Retries int
	// V3, when set, makes the tools speak SNMPv3 as this user instead of
	// v2c with Community.
	V3 *V3User
}

// V3User is an SNMPv3 identity for net-snmp's tools.
type V3User struct {
	Name string
	// Level is noAuthNoPriv, authNoPriv or authPriv; empty: the highest
	// the protocols below allow.
	Level string
	// Auth is MD5, SHA, SHA-224, SHA-256, SHA-384 or SHA-512 (empty: none);
	// Priv is DES, AES, AES-192 or AES-256 (empty: none).
	Auth, AuthPass string
	Priv, PrivPass string
	// Extra are further flags, e.g. "-e", ENGINEID, "-Z", "BOOTS,TIME".
	Extra []string
}

func (u *V3User) flags() []string {
	level := u.Level
	if level == "" {
		switch {
		case u.Priv != "":
			level = "authPriv"
		case u.Auth != "":
			level = "authNoPriv"
		default:
			level = "noAuthNoPriv"
		}
	}
	f := []string{"-v3", "-u", u.Name, "-l", level}
	if u.Auth != "" {
		f = append(f, "-a", u.Auth, "-A", u.AuthPass)
	}
	if u.Priv != "" {
		f = append(f, "-x", u.Priv, "-X", u.PrivPass)
	}
	return append(f, u.Extra...)
}

func (c SNMP) withDefaults() SNMP {
	if c.Community == "" {
		c.Community = "public"
	}
	if c.Timeout <= 0 {
		c.Timeout = time.Second
	}
	if c.Retries < 0 {
		c.Retries = 0
	}
	return c
}

// valueOpts make values easy to compare: no type prefix (Q), numeric
// enums (e), timeticks as a plain number (t), no units (U); OIDs are
// numeric (n) so each answer line can be told from a value's continuation
// line.
var valueOpts = []string{"-On", "-OQ", "-Oe", "-Ot", "-OU"}

// Env is the tools' environment: the test's environment with the MIB path
// (shared standard modules and the repository's mib directory), the IAD
// MIB loaded, and an empty configuration directory so no snmp.conf of the
// machine or of root changes the output.
func (c SNMP) Env(t testing.TB) []string {
	t.Helper()
	conf := confDir(t)
	var env []string
	for _, kv := range os.Environ() {
		switch k, _, _ := strings.Cut(kv, "="); k {
		case "MIBDIRS", "MIBS", "SNMPCONFPATH", "SNMP_PERSISTENT_DIR":
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"MIBDIRS=+"+MIBDirs(t),
		"MIBS=+IAD-UPGRADE-MIB",
		"SNMPCONFPATH="+conf,
		"SNMP_PERSISTENT_DIR="+conf,
	)
}

var (
	confDirsMu sync.Mutex
	confDirs   = map[testing.TB]string{}
)

// confDir is one empty directory per test for the tools' configuration
// and persistent files, so polling does not create a directory per call.
func confDir(t testing.TB) string {
	t.Helper()
	confDirsMu.Lock()
	defer confDirsMu.Unlock()
	if d, ok := confDirs[t]; ok {
		return d
	}
	d := t.TempDir()
	confDirs[t] = d
	t.Cleanup(func() {
		confDirsMu.Lock()
		delete(confDirs, t)
		confDirsMu.Unlock()
	})
	return d
}

// Run runs a net-snmp tool (snmpget, snmptranslate, …) with Env and the
// arguments as given, and returns its standard output and, on a non-zero
// exit, an error carrying its standard error.
func (c SNMP) Run(t testing.TB, tool string, args ...string) (string, error) {
	t.Helper()
	stdout, stderr, err := c.run(t, tool, args...)
	if err != nil {
		return stdout, fmt.Errorf("%s %s: %w: %s", tool, strings.Join(args, " "), err, strings.TrimSpace(stderr))
	}
	return stdout, nil
}

func (c SNMP) run(t testing.TB, tool string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	c = c.withDefaults()
	bin := RequireTool(t, tool)
	// A hung tool must not hang the test: bound it well beyond its own
	// timeout and retries.
	limit := c.Timeout*time.Duration(c.Retries+1) + 10*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = c.Env(t)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// common are the version, security and timing flags every request tool
// gets.
func (c SNMP) common() []string {
	c = c.withDefaults()
	timing := []string{"-t", strconv.FormatFloat(c.Timeout.Seconds(), 'f', -1, 64), "-r", strconv.Itoa(c.Retries)}
	if c.V3 != nil {
		return append(c.V3.flags(), timing...)
	}
	return append([]string{"-v2c", "-c", c.Community}, timing...)
}

// Get reads objects with one snmpget and returns their values keyed by
// the names as given. Values are printed without a type, enums as
// numbers, timeticks as hundredths, strings without their quotes;
// NoSuchObject and NoSuchInstance come back as values. A failed request
// fails the test.
func (c SNMP) Get(t testing.TB, objs ...string) map[string]string {
	t.Helper()
	if len(objs) == 0 {
		t.Fatalf("snmp get: no objects")
	}
	args := append(append(c.common(), valueOpts...), c.Target)
	args = append(args, objs...)
	stdout, stderr, err := c.run(t, "snmpget", args...)
	if err != nil {
		t.Fatalf("snmpget %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout, stderr)
	}
	vars := parseAnswer(stdout)
	// snmpget prints one answer per requested object, in order.
	if len(vars) != len(objs) {
		t.Fatalf("snmpget %s: got %d values, want %d\nstdout:\n%s\nstderr:\n%s",
			strings.Join(objs, " "), len(vars), len(objs), stdout, stderr)
	}
	m := make(map[string]string, len(objs))
	for i, o := range objs {
		m[o] = vars[i].Value
	}
	return m
}

// GetValue reads one object; see Get.
func (c SNMP) GetValue(t testing.TB, obj string) string {
	t.Helper()
	return c.Get(t, obj)[obj]
}

// Set runs snmpset with args ("iadOpRowStatus.7 i 4 iadOpType.7 i 2 …")
// and returns its combined output; a non-zero exit (an error status such
// as wrongType, or a timeout) is returned as an error for the caller to
// assert on.
func (c SNMP) Set(t testing.TB, args ...string) (string, error) {
	t.Helper()
	all := append(append(c.common(), c.Target), args...)
	stdout, stderr, err := c.run(t, "snmpset", all...)
	out := stdout + stderr
	if err != nil {
		return out, fmt.Errorf("snmpset %s: %w", strings.Join(args, " "), err)
	}
	return out, nil
}

// Walk runs snmpwalk (GetNext) under oid and returns the variables in the
// order received, OIDs numeric without the leading dot, values as in Get.
func (c SNMP) Walk(t testing.TB, oid string) []VarBind {
	t.Helper()
	return c.walk(t, "snmpwalk", oid)
}

// BulkWalk is Walk with GetBulk (snmpbulkwalk).
func (c SNMP) BulkWalk(t testing.TB, oid string) []VarBind {
	t.Helper()
	return c.walk(t, "snmpbulkwalk", oid)
}

func (c SNMP) walk(t testing.TB, tool, oid string) []VarBind {
	t.Helper()
	args := append(append(c.common(), valueOpts...), c.Target, oid)
	stdout, stderr, err := c.run(t, tool, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", tool, strings.Join(args, " "), err, stdout, stderr)
	}
	var out []VarBind
	for _, v := range parseAnswer(stdout) {
		if !strings.HasPrefix(v.Value, endOfMIBView) {
			out = append(out, v)
		}
	}
	return out
}

// Translate resolves a MIB name to its numeric OID (no leading dot) with
// snmptranslate, failing the test if the name does not resolve.
func (c SNMP) Translate(t testing.TB, name string) string {
	t.Helper()
	out, err := c.Run(t, "snmptranslate", "-On", name)
	if err != nil {
		t.Fatalf("translate %s: %v", name, err)
	}
	return strings.TrimPrefix(strings.TrimSpace(out), ".")
}

// answerLine matches the start of one variable in -On -OQ output.
var answerLine = regexp.MustCompile(`^\.?([0-9]+(?:\.[0-9]+)*) = (.*)$`)

// parseAnswer splits net-snmp's -On -OQ output into variables; lines that
// do not start a new variable continue a multi-line string value.
func parseAnswer(out string) []VarBind {
	var vars []VarBind
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if m := answerLine.FindStringSubmatch(line); m != nil {
			vars = append(vars, VarBind{OID: m[1], Value: m[2]})
			continue
		}
		if len(vars) > 0 {
			vars[len(vars)-1].Value += "\n" + line
		}
	}
	for i := range vars {
		vars[i].Value = cleanValue(vars[i].Value)
	}
	return vars
}

// cleanValue undoes net-snmp's quoting of strings and the leading dot of
// OID values.
func cleanValue(v string) string {
	v = strings.TrimRight(v, " ")
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return unescapeNetSNMP(v[1 : len(v)-1])
	}
	if strings.HasPrefix(v, ".") && answerOID.MatchString(v[1:]) {
		return v[1:]
	}
	return v
}

var answerOID = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*$`)

// unescapeNetSNMP reverses the backslash escaping net-snmp applies to '"'
// and '\' inside quoted strings.
func unescapeNetSNMP(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) && (s[i+1] == '"' || s[i+1] == '\\') {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// SNMPD is a throwaway net-snmp snmpd on loopback, for testing the harness,
// as a reference agent, and as the AgentX master of a sub-agent
// (StartSNMPDMaster).
type SNMPD struct {
	Port    int
	PID     int
	LogPath string
	// AgentX is the master's AgentX socket ("unix:/PATH") when started by
	// StartSNMPDMaster.
	AgentX string

	mu   sync.Mutex
	proc *process
	argv []string
	env  []string
}

// Target is "127.0.0.1:Port" for SNMP.Target.
func (d *SNMPD) Target() string { return "127.0.0.1:" + strconv.Itoa(d.Port) }

// StartSNMPD runs snmpd in the foreground on a free loopback UDP port with
// conf as its only configuration (e.g. "rocommunity public 127.0.0.1\n";
// empty means exactly that), and waits until it answers.
func StartSNMPD(t testing.TB, conf string) *SNMPD {
	t.Helper()
	if conf == "" {
		conf = "rocommunity public 127.0.0.1\n"
	}
	return startSNMPD(t, t.TempDir(), conf)
}

// startSNMPD writes conf into work/conf, keeps snmpd's persistent files in
// work/persist (snmpd rewrites $SNMP_PERSISTENT_DIR/snmpd.conf, which
// must not be the configuration) and starts it.
func startSNMPD(t testing.TB, work, conf string) *SNMPD {
	t.Helper()
	bin := RequireTool(t, "snmpd")
	confDir, persist := filepath.Join(work, "conf"), filepath.Join(work, "persist")
	for _, d := range []string{confDir, persist} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	confPath := filepath.Join(confDir, "snmpd.conf")
	// Logging every request would bury the interesting lines of the log.
	conf += "\ndontLogTCPWrappersConnects yes\n"
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(work, "snmpd.log")
	env := append(os.Environ(), "SNMP_PERSISTENT_DIR="+persist, "SNMPCONFPATH="+confDir)
	var lastErr error
	for range 3 {
		port := FreeUDPPort(t)
		d := &SNMPD{Port: port, LogPath: logPath, env: env,
			argv: []string{bin, "-f", "-Lf", logPath, "-C", "-c", confPath,
				"-M", MIBDirs(t) + ":/usr/share/snmp/mibs", "-m", "", "udp:127.0.0.1:" + strconv.Itoa(port)}}
		if lastErr = d.launch(t); lastErr == nil {
			t.Cleanup(d.Stop)
			return d
		}
	}
	t.Fatalf("snmpd did not start: %v\nlog %s:\n%s", lastErr, logPath, logTail(logPath, tailLines))
	return nil
}

// launch starts snmpd with the saved command line and waits until it
// answers; on failure it is stopped again.
func (d *SNMPD) launch(t testing.TB) error {
	t.Helper()
	p, err := launch("snmpd", d.LogPath, d.env, d.argv...)
	if err != nil {
		t.Fatalf("%v", err)
	}
	d.mu.Lock()
	d.proc, d.PID = p, p.pid()
	d.mu.Unlock()
	err = p.waitStarted(startTimeout, func() error {
		_, err := sysUpTime(t, d.Target(), "public")
		return err
	})
	if err != nil {
		p.terminate(stopGrace)
	}
	return err
}

func (d *SNMPD) current() *process {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.proc
}

// Stop kills snmpd and waits. Idempotent.
func (d *SNMPD) Stop() { d.current().terminate(stopGrace) }

var errNoUptime = errors.New("itest: no sysUpTime in answer")

// sysUpTime asks target once, quickly, for sysUpTime.0 by numeric OID (so
// it works without any MIB) and returns it in hundredths of a second.
func sysUpTime(t testing.TB, target, community string) (int64, error) {
	t.Helper()
	c := SNMP{Target: target, Community: community, Timeout: 300 * time.Millisecond, Retries: 0}
	args := append(append(c.common(), valueOpts...), target, "1.3.6.1.2.1.1.3.0")
	stdout, stderr, err := c.run(t, "snmpget", args...)
	if err != nil {
		return 0, fmt.Errorf("snmpget sysUpTime.0: %w: %s", err, strings.TrimSpace(stderr))
	}
	vars := parseAnswer(stdout)
	if len(vars) != 1 {
		return 0, fmt.Errorf("%w: %q", errNoUptime, stdout)
	}
	n, err := strconv.ParseInt(vars[0].Value, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", errNoUptime, stdout)
	}
	return n, nil
}
