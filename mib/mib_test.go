package mib

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const mibFile = "IAD-UPGRADE-MIB.txt"

// requireExternal skips when something outside the repository is missing,
// except in CI, where a missing tool must not silently turn the drift
// checks off.
func requireExternal(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		requireExternal(t, "%s not found: %v", name, err)
	}
	return p
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

// sharedMIBs returns the directory of the standard IETF modules: the
// shared folder beside the checkout, or $IAD_SHARED_MIBS.
func sharedMIBs(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("IAD_SHARED_MIBS")
	if dir == "" {
		dir = filepath.Join(repoRoot(t), "..", "shared", "mibs")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "SNMPv2-SMI.txt")); err != nil {
		requireExternal(t, "standard MIB modules not found (set IAD_SHARED_MIBS): %v", err)
	}
	return dir
}

func mibDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func loadMIB(t *testing.T, path string) *parsedMIB {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := parseMIB(string(src))
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return p
}

func TestNamesMatchMIB(t *testing.T) {
	p := loadMIB(t, mibFile)
	if len(p.nodes) < len(Names) {
		t.Errorf("got %d nodes in the MIB, want at least the %d of Names", len(p.nodes), len(Names))
	}
	for name, want := range p.nodes {
		got, ok := Names[name]
		switch {
		case !ok:
			t.Errorf("MIB node %s (%s) is missing from Names", name, want)
		case !got.Equal(want):
			t.Errorf("Names[%q] = %s, want %s as in the MIB", name, got, want)
		}
	}
	for name := range Names {
		if _, ok := p.nodes[name]; !ok {
			t.Errorf("Names[%q] is not a node of the MIB", name)
		}
	}
	if got, want := p.nodes["iadUpgradeMIB"], MustParseOID("1.3.6.1.4.1.32473"); !got.Equal(want) {
		t.Errorf("module root %s, want %s", got, want)
	}
}

func TestNamesUnique(t *testing.T) {
	for _, m := range []map[string]OID{Names, StdNames} {
		seen := map[string]string{}
		for name, o := range m {
			if other, dup := seen[o.String()]; dup {
				t.Errorf("%s and %s share OID %s", name, other, o)
			}
			seen[o.String()] = name
		}
	}
}

func asInts[T ~int32](m map[string]T) map[string]int {
	r := make(map[string]int, len(m))
	for k, v := range m {
		r[k] = int(v)
	}
	return r
}

func compareEnum(t *testing.T, mibLabels, goLabels map[string]int) {
	t.Helper()
	if mibLabels == nil {
		t.Fatal("no enumeration found in the MIB")
	}
	for label, want := range mibLabels {
		got, ok := goLabels[label]
		switch {
		case !ok:
			t.Errorf("MIB label %s(%d) missing in Go", label, want)
		case got != want:
			t.Errorf("Go %s = %d, want %d as in the MIB", label, got, want)
		}
	}
	for label, v := range goLabels {
		if _, ok := mibLabels[label]; !ok {
			t.Errorf("Go label %s(%d) not in the MIB", label, v)
		}
	}
}

func TestEnumsMatchMIB(t *testing.T) {
	p := loadMIB(t, mibFile)
	tests := []struct {
		mibName string
		labels  map[string]int
	}{
		{"IadBank", asInts(BankLabels())},
		{"IadFailCause", asInts(FailCauseLabels())},
		{"iadBankState", asInts(BankStateLabels())},
		{"iadOpType", asInts(OpTypeLabels())},
		{"iadOpProtocol", asInts(ProtocolLabels())},
		{"iadOpState", asInts(OpStateLabels())},
	}
	for _, tt := range tests {
		t.Run(tt.mibName, func(t *testing.T) {
			compareEnum(t, p.enums[tt.mibName], tt.labels)
		})
	}
}

func TestStdEnumsMatchMIB(t *testing.T) {
	shared := sharedMIBs(t)
	tests := []struct {
		file, tc string
		labels   map[string]int
	}{
		{"SNMPv2-TC.txt", "RowStatus", asInts(RowStatusLabels())},
		{"INET-ADDRESS-MIB.txt", "InetAddressType", asInts(InetAddressTypeLabels())},
	}
	for _, tt := range tests {
		t.Run(tt.tc, func(t *testing.T) {
			p := loadMIB(t, filepath.Join(shared, tt.file))
			compareEnum(t, p.enums[tt.tc], tt.labels)
		})
	}
}

// translate resolves names with one snmptranslate run and returns their
// numeric OIDs in order.
func translate(t *testing.T, names []string) []OID {
	t.Helper()
	bin := needTool(t, "snmptranslate")
	args := []string{"-M", "+" + sharedMIBs(t) + ":" + mibDir(t), "-m", "+IAD-UPGRADE-MIB", "-On"}
	cmd := exec.Command(bin, append(args, names...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("snmptranslate: %v: %s", err, stderr.Bytes())
	}
	var oids []OID
	for _, line := range strings.Split(string(out), "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		o, err := ParseOID(line)
		if err != nil {
			t.Fatalf("snmptranslate output %q: %v", line, err)
		}
		oids = append(oids, o)
	}
	if len(oids) != len(names) {
		t.Fatalf("snmptranslate resolved %d names, want %d; output:\n%s\nstderr:\n%s", len(oids), len(names), out, stderr.Bytes())
	}
	return oids
}

func TestSnmptranslate(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		names  map[string]OID
	}{
		{"IAD-UPGRADE-MIB", "IAD-UPGRADE-MIB::", Names},
		{"standard", "", StdNames},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var names []string
			for name := range tt.names {
				names = append(names, name)
			}
			slices.Sort(names)
			args := make([]string, len(names))
			for i, name := range names {
				args[i] = tt.prefix + name
			}
			got := translate(t, args)
			for i, name := range names {
				if want := tt.names[name]; !got[i].Equal(want) {
					t.Errorf("snmptranslate %s = %s, want %s", args[i], got[i], want)
				}
			}
		})
	}
}

// smilintLine matches "file:line: [severity] message" as printed with -s.
var smilintLine = regexp.MustCompile(`^(.*):(\d+): \[(\d+)\] (.*)$`)

// smilintProblems runs smilint at its most pedantic level and returns the
// lines at error or warning severity (0 to 4); levels 5 and 6 are style
// notes, which it logs.
func smilintProblems(t *testing.T, path string) []string {
	t.Helper()
	bin := needTool(t, "smilint")
	cmd := exec.Command(bin, "-l", "6", "-s", path)
	cmd.Env = append(os.Environ(), "SMIPATH="+sharedMIBs(t)+":"+mibDir(t))
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("smilint: %v", err)
	}
	var problems []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		m := smilintLine.FindStringSubmatch(line)
		if m == nil {
			problems = append(problems, "unrecognised output: "+line)
			continue
		}
		sev, _ := strconv.Atoi(m[3])
		if sev <= 4 {
			problems = append(problems, line)
		} else {
			t.Logf("smilint note: %s", line)
		}
	}
	return problems
}

func TestSmilint(t *testing.T) {
	for _, p := range smilintProblems(t, mibFile) {
		t.Errorf("smilint: %s", p)
	}
}

// TestSmilintCatchesDefects proves the check above can fail: a copy of
// the MIB that leaves an object out of every group must be reported.
func TestSmilintCatchesDefects(t *testing.T) {
	src, err := os.ReadFile(mibFile)
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(src), "iadOpBytes,\n", "", 1)
	if broken == string(src) {
		t.Fatal("could not break the MIB copy: iadOpBytes not found in a group")
	}
	path := filepath.Join(t.TempDir(), mibFile)
	if err := os.WriteFile(path, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := smilintProblems(t, path); len(got) == 0 {
		t.Error("got no smilint problems for a MIB with an object outside every group, want one")
	}
}

func TestParseMIB(t *testing.T) {
	const src = `X-MIB DEFINITIONS ::= BEGIN
IMPORTS enterprises FROM SNMPv2-SMI;
-- a comment with a fake { assignment } ::= { iso 9 }
xRoot MODULE-IDENTITY
    DESCRIPTION "a string with -- dashes and
                 ::= { xRoot 99 } inside"
    ::= { enterprises 32473 }
Colour ::= TEXTUAL-CONVENTION
    STATUS current
    DESCRIPTION "say ""red"""
    SYNTAX INTEGER { red(1), blue(2) }
xObjects OBJECT IDENTIFIER ::= { xRoot 1 } -- trailing comment
xDeep OBJECT IDENTIFIER ::= { xObjects 2 3 }
xState OBJECT-TYPE
    SYNTAX INTEGER { on(1), off(2) } -- not { x(9) }
    DEFVAL { on }
    ::= { xObjects 1 }
xBits OBJECT-TYPE
    SYNTAX OCTET STRING (SIZE (0 | 32))
    DEFVAL { '00'H }
    ::= { xObjects 4 }
END`
	p, err := parseMIB(src)
	if err != nil {
		t.Fatal(err)
	}
	wantNodes := map[string]string{
		"xRoot":    "1.3.6.1.4.1.32473",
		"xObjects": "1.3.6.1.4.1.32473.1",
		"xDeep":    "1.3.6.1.4.1.32473.1.2.3",
		"xState":   "1.3.6.1.4.1.32473.1.1",
		"xBits":    "1.3.6.1.4.1.32473.1.4",
	}
	if len(p.nodes) != len(wantNodes) {
		t.Errorf("got %d nodes %v, want %d", len(p.nodes), p.nodes, len(wantNodes))
	}
	for name, want := range wantNodes {
		if got := p.nodes[name].String(); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	t.Run("enums", func(t *testing.T) {
		compareEnum(t, p.enums["Colour"], map[string]int{"red": 1, "blue": 2})
		compareEnum(t, p.enums["xState"], map[string]int{"on": 1, "off": 2})
		if e, ok := p.enums["xBits"]; ok {
			t.Errorf("xBits enums = %v, want none", e)
		}
	})

	bad := []struct{ name, src string }{
		{"unknown parent", "a OBJECT IDENTIFIER ::= { nowhere 1 }"},
		{"loop", "a OBJECT IDENTIFIER ::= { b 1 }\nb OBJECT IDENTIFIER ::= { a 1 }"},
		{"twice", "a OBJECT IDENTIFIER ::= { iso 1 }\na OBJECT IDENTIFIER ::= { iso 2 }"},
		{"named number", "a OBJECT IDENTIFIER ::= { iso org(3) }"},
		{"unterminated string", `a OBJECT-TYPE DESCRIPTION "x ::= { iso 1 }`},
		{"bad enum", "a OBJECT-TYPE SYNTAX INTEGER { x(1) y(2) } ::= { iso 1 }"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := parseMIB(tt.src); err == nil {
				t.Errorf("got nodes %v and no error, want an error", p.nodes)
			}
		})
	}
}
