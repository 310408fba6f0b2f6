package device_test

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/agent/itest"
	"github.com/iadsafe/iad-agent/mib"
	"github.com/iadsafe/iad-agent/scripts/vm"
	"github.com/iadsafe/iad-agent/scripts/vm/device"
	"github.com/iadsafe/iad-agent/scripts/vm/firmware"
)

func TestMain(m *testing.M) {
	code := m.Run()
	fwMu.Lock()
	for _, b := range fwBuilds {
		os.RemoveAll(b.dir)
	}
	fwMu.Unlock()
	os.Exit(code)
}

// The firmware is built once per test binary and architecture.
var (
	fwMu     sync.Mutex
	fwBuilds = map[vm.Arch]*fwBuild{}
)

type fwBuild struct {
	once sync.Once
	dir  string
	fw   *firmware.Firmware
	err  error
}

// buildFirmware returns the firmware of arch, building it on first use.
func buildFirmware(t testing.TB, arch vm.Arch) *firmware.Firmware {
	t.Helper()
	k := vm.RequireKernelArch(t, arch)
	if err := firmware.RequireTools(arch); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	fwMu.Lock()
	b, ok := fwBuilds[arch]
	if !ok {
		b = &fwBuild{}
		fwBuilds[arch] = b
	}
	fwMu.Unlock()
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "iad-vm-firmware-"+string(arch)+"-")
		if b.err != nil {
			return
		}
		var log strings.Builder
		start := time.Now()
		b.fw, b.err = firmware.Build(context.Background(), firmware.Options{
			Root: itest.RepoRoot(t), Out: b.dir, Kernel: k, Log: &log,
		})
		t.Logf("firmware %s built in %v:\n%s", arch, time.Since(start).Round(time.Millisecond), log.String())
	})
	if b.err != nil {
		t.Fatalf("building the firmware: %v", b.err)
	}
	return b.fw
}

// guestAddr is 10.0.2.2 as an InetAddress: the host's loopback seen from
// QEMU's user-mode network.
const guestAddr = "0A000202"

// opWait bounds an operation; opWaitBig the 32 MiB upgrade. These are
// failure deadlines, not timing assertions.
const (
	opWait    = 3 * time.Minute
	bootWait  = 4 * time.Minute
	shortWait = 90 * time.Second
)

type scenarioOptions struct {
	arch        vm.Arch
	uboot       bool
	ftp         bool
	commitAfter time.Duration
}

// scenario is one device VM with its own trap receiver, TFTP server (and
// FTP server), driven by net-snmp's tools.
type scenario struct {
	t      testing.TB
	ctx    context.Context
	fw     *firmware.Firmware
	d      *device.Device
	dir    string
	traps  *itest.TrapReceiver
	tftp   *itest.TFTPServer
	ftp    *itest.FTPServer
	rw, ro itest.SNMP
	start  time.Time
	// reported is set once a failure message carried the console report.
	reported bool
}

func newScenario(t testing.TB, o scenarioOptions) *scenario {
	t.Helper()
	if testing.Short() {
		t.Skip("boots a VM")
	}
	if o.arch == "" {
		o.arch = vm.ArmHF
	}
	if o.commitAfter == 0 {
		o.commitAfter = 4 * time.Second
	}
	fw := buildFirmware(t, o.arch)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	t.Cleanup(cancel)
	s := &scenario{t: t, ctx: ctx, fw: fw, start: time.Now()}
	s.dir = artifactDir(t)
	s.traps = itest.StartTrapReceiver(t)
	tftpDir, err := os.MkdirTemp("", "iad-vm-tftp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tftpDir) })
	os.Chmod(tftpDir, 0o777)
	s.tftp = itest.StartTFTP(t, tftpDir, true)
	if o.ftp {
		ftpDir, err := os.MkdirTemp("", "iad-vm-ftp-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(ftpDir) })
		s.ftp = itest.StartFTP(t, ftpDir)
	}
	port := itest.FreeUDPPort(t)
	s.d, err = device.New(ctx, device.Options{
		Firmware: fw, UBoot: o.uboot, Dir: s.dir, SNMPPort: port,
		Site: firmware.Site{Trap: "10.0.2.2:" + strconv.Itoa(s.traps.Port), CommitAfter: o.commitAfter},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.d.Close()
		if t.Failed() {
			if !s.reported {
				t.Logf("%s", s.d.Report(40))
			}
			return
		}
		os.Remove(s.d.Disk)
		if os.Getenv("IAD_VM_ARTIFACTS") == "" {
			os.RemoveAll(s.dir)
		}
	})
	s.rw = itest.SNMP{Target: s.d.SNMPTarget(), Community: "private", Timeout: 3 * time.Second, Retries: 2}
	s.ro = itest.SNMP{Target: s.d.SNMPTarget(), Community: "public", Timeout: 3 * time.Second, Retries: 2}
	return s
}

// artifactDir is where a scenario keeps its disk and console logs:
// $IAD_VM_ARTIFACTS/TestName (kept), or a temporary directory kept only
// when the test fails (the failure message names it).
func artifactDir(t testing.TB) string {
	t.Helper()
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	if base := os.Getenv("IAD_VM_ARTIFACTS"); base != "" {
		dir, err := filepath.Abs(filepath.Join(base, name))
		if err != nil {
			t.Fatal(err)
		}
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	dir, err := os.MkdirTemp("", "iad-vm-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// fatalf fails the scenario with the console logs.
func (s *scenario) fatalf(format string, args ...any) {
	s.t.Helper()
	s.reported = true
	s.t.Fatalf("%s\n%s", fmt.Sprintf(format, args...), s.d.Report(60))
}

// logf records a step with the scenario's elapsed time and boot count.
func (s *scenario) logf(format string, args ...any) {
	s.t.Helper()
	s.t.Logf("[%6.1fs, boot %d] %s", time.Since(s.start).Seconds(), s.d.BootCount(), fmt.Sprintf(format, args...))
}

// powerOn boots the device and waits for the agent.
func (s *scenario) powerOn() int {
	s.t.Helper()
	min := s.d.BootCount() + 1
	if err := s.d.PowerOn(); err != nil {
		s.fatalf("power on: %v", err)
	}
	return s.waitReady(min)
}

func (s *scenario) waitReady(minBoot int) int {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, bootWait)
	defer cancel()
	n, err := s.d.WaitReady(ctx, minBoot)
	if err != nil {
		s.fatalf("%v", err)
	}
	return n
}

// run runs a shell command in the guest.
func (s *scenario) run(cmd string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.ctx, shortWait)
	defer cancel()
	out, err := s.d.Run(ctx, cmd)
	if err != nil {
		s.fatalf("guest command: %v", err)
	}
	return out
}

// put copies version's signed image to the servers as name.
func (s *scenario) put(version, name string) {
	s.t.Helper()
	data, err := os.ReadFile(s.fw.Banks[version].Image)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.tftp.Dir, name), data, 0o644); err != nil {
		s.t.Fatal(err)
	}
	if s.ftp != nil {
		s.ftp.WriteFile(s.t, name, data)
	}
}

// opArgs are the columns of one createAndGo SET; extra holds (column,
// type, value) triples that override the defaults.
func (s *scenario) opArgs(idx int, typ, proto, file string, extra ...string) []string {
	i := "." + strconv.Itoa(idx)
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
		port := s.tftp.Port
		if proto == "ftp" {
			port = s.ftp.Port
			add("iadOpUserName", "s", s.ftp.User)
			add("iadOpPassword", "s", s.ftp.Password)
		}
		add("iadOpProtocol", "i", proto)
		add("iadOpServerAddressType", "i", "ipv4")
		add("iadOpServerAddress", "x", guestAddr)
		add("iadOpServerPort", "u", strconv.Itoa(port))
		add("iadOpFileName", "s", file)
	}
	for j := 0; j+3 <= len(extra); j += 3 {
		args = append(args, extra[j]+i, extra[j+1], extra[j+2])
	}
	return append(args, "iadOpRowStatus"+i, "i", "createAndGo")
}

// op starts an operation with one snmpset.
func (s *scenario) op(idx int, typ, proto, file string, extra ...string) {
	s.t.Helper()
	if out, err := s.rw.Set(s.t, s.opArgs(idx, typ, proto, file, extra...)...); err != nil {
		s.fatalf("snmpset %s #%d: %v\n%s", typ, idx, err, out)
	}
}

type opResult struct{ state, cause, text string }

func (r opResult) ok() bool { return r.state == strconv.Itoa(int(mib.OpSuccessful)) }

func (r opResult) String() string {
	st, _ := strconv.Atoi(r.state)
	c, _ := strconv.Atoi(r.cause)
	return fmt.Sprintf("%s/%s (%q)", mib.OpState(st), mib.FailCause(c), r.text)
}

// wait polls the row until it completes.
func (s *scenario) wait(idx int, limit time.Duration) opResult {
	s.t.Helper()
	i := "." + strconv.Itoa(idx)
	deadline := time.Now().Add(limit)
	for {
		v := s.ro.Get(s.t, "iadOpState"+i, "iadOpFailCause"+i, "iadOpFailText"+i)
		st := v["iadOpState"+i]
		if st == strconv.Itoa(int(mib.OpSuccessful)) || st == strconv.Itoa(int(mib.OpFailed)) {
			return opResult{st, v["iadOpFailCause"+i], v["iadOpFailText"+i]}
		}
		if time.Now().After(deadline) {
			s.fatalf("operation %d still in state %s after %v", idx, st, limit)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (s *scenario) mustSucceed(idx int, typ, proto, file string, extra ...string) {
	s.t.Helper()
	start := time.Now()
	s.op(idx, typ, proto, file, extra...)
	if r := s.wait(idx, opWait); !r.ok() {
		s.fatalf("%s #%d over %s: got %v, want successful", typ, idx, proto, r)
	}
	s.logf("%s #%d over %s %s: successful in %v", typ, idx, proto, file, time.Since(start).Round(100*time.Millisecond))
}

// reset runs a reset operation; the guest restarts (a real VM reset),
// and the call returns when a later boot serves again (passing over
// boots whose software does not come up) and the row reads successful.
func (s *scenario) reset(idx int) int {
	s.t.Helper()
	before := s.d.BootCount()
	c := s.d.Mark()
	s.op(idx, "reset", "", "")
	ctx, cancel := context.WithTimeout(s.ctx, bootWait)
	defer cancel()
	if _, _, err := c.Wait(ctx, regexp.MustCompile(`reboot: Restarting system`)); err != nil {
		s.fatalf("reset #%d: the guest did not restart: %v", idx, err)
	}
	n := s.waitReady(before + 1)
	if r := s.wait(idx, opWait); !r.ok() {
		s.fatalf("reset #%d after the restart: got %v, want successful", idx, r)
	}
	s.logf("reset #%d: boot %d serves", idx, n)
	return n
}

type swState struct{ version, activeBank, nextBank, stateA, stateB string }

func (s *scenario) sw() swState {
	s.t.Helper()
	v := s.ro.Get(s.t, "iadSwCurrentVersion.0", "iadSwActiveBank.0", "iadSwNextBank.0", "iadBankState.1", "iadBankState.2")
	return swState{v["iadSwCurrentVersion.0"], v["iadSwActiveBank.0"], v["iadSwNextBank.0"], v["iadBankState.1"], v["iadBankState.2"]}
}

func (w swState) String() string {
	a, _ := strconv.Atoi(w.stateA)
	b, _ := strconv.Atoi(w.stateB)
	return fmt.Sprintf("version %s, running bank %s, next bank %s, bank A %s, bank B %s", w.version, w.activeBank, w.nextBank, mib.BankState(a), mib.BankState(b))
}

// waitBankState polls until bank idx reads want.
func (s *scenario) waitBankState(idx int, want mib.BankState) {
	s.t.Helper()
	deadline := time.Now().Add(shortWait)
	obj := "iadBankState." + strconv.Itoa(idx)
	for {
		got := s.ro.GetValue(s.t, obj)
		if got == strconv.Itoa(int(want)) {
			return
		}
		if time.Now().After(deadline) {
			n, _ := strconv.Atoi(got)
			s.fatalf("%s: got %s, want %s", obj, mib.BankState(n), want)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// configDir is the agent's live configuration in the guest.
const configDir = "/data/agent/config/live"

// guestConfig hashes every file of the live configuration in the guest:
// name (relative) to SHA-256.
func (s *scenario) guestConfig() map[string]string {
	s.t.Helper()
	out := s.run("cd " + configDir + " && find . -type f | sort | xargs -r sha256sum")
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 2 {
			m[strings.TrimPrefix(f[1], "./")] = f[0]
		}
	}
	if len(m) == 0 {
		s.fatalf("no configuration files in the guest's %s:\n%s", configDir, out)
	}
	return m
}

// backupConfig reads a backup archive from the host: file name to
// SHA-256, the manifest left out.
func backupConfig(t testing.TB, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("backup on the server: %v", err)
	}
	defer f.Close()
	m := map[string]string{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading backup %s: %v", path, err)
		}
		if h.Typeflag != tar.TypeReg || h.Name == "MANIFEST.json" {
			continue
		}
		sum := sha256.New()
		if _, err := io.Copy(sum, tr); err != nil {
			t.Fatal(err)
		}
		m[strings.TrimPrefix(h.Name, "./")] = hex.EncodeToString(sum.Sum(nil))
	}
	return m
}

func sameConfig(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func configString(m map[string]string) string {
	var names []string
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		fmt.Fprintf(&b, "  %s %s\n", m[k][:12], k)
	}
	return b.String()
}

// event is one expected notification: its OID and, for operation
// notifications, the row index and the value of iadOpState.
type event struct {
	oid   mib.OID
	index int
	state mib.OpState
	cause mib.FailCause
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

func (e event) match(tr itest.Trap) bool {
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

// waitEvents waits until the notifications received since from contain
// want as an ordered subsequence (others may come in between: progress
// notifications are rate-limited, not counted). It returns the count of
// notifications seen, for the next call's from.
func (s *scenario) waitEvents(from int, want ...event) int {
	s.t.Helper()
	deadline := time.Now().Add(shortWait)
	for {
		traps := s.traps.Traps()
		if from > len(traps) {
			from = len(traps)
		}
		i := 0
		for _, tr := range traps[from:] {
			if i < len(want) && want[i].match(tr) {
				i++
			}
		}
		if i == len(want) {
			return len(traps)
		}
		if time.Now().After(deadline) {
			var seen []string
			for _, tr := range traps[from:] {
				seen = append(seen, tr.String())
			}
			s.fatalf("notifications: matched %d of %d; first missing %v\nwant: %v\nseen:\n%s", i, len(want), want[i], want, strings.Join(seen, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// bankSHA256 hashes the first size bytes of a bank partition in the
// guest, independently of the agent.
func (s *scenario) bankSHA256(bank string, size int64) string {
	s.t.Helper()
	dev := map[string]string{"A": "/dev/vda2", "B": "/dev/vda3"}[bank]
	out := s.run(fmt.Sprintf("head -c %d %s | sha256sum", size, dev))
	f := strings.Fields(out)
	if len(f) == 0 {
		s.fatalf("sha256sum of %s: %q", dev, out)
	}
	return f[0]
}

// agentMemory reads the agent's VmRSS and VmHWM (peak) in KiB from the
// guest's /proc.
func (s *scenario) agentMemory() (rss, hwm int) {
	s.t.Helper()
	out := s.run(`grep -E '^(VmRSS|VmHWM):' /proc/$(pidof iad-agent)/status`)
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 {
			n, _ := strconv.Atoi(f[1])
			switch f[0] {
			case "VmRSS:":
				rss = n
			case "VmHWM:":
				hwm = n
			}
		}
	}
	if rss == 0 || hwm == 0 {
		s.fatalf("agent memory from /proc: %q", out)
	}
	return rss, hwm
}

// summary logs the scenario's wall time and boots, the closing note's
// figures.
func (s *scenario) summary(name string) {
	s.t.Helper()
	boots := s.d.Boots()
	var parts []string
	for _, b := range boots {
		end := b.Ended
		if end.IsZero() {
			end = time.Now()
		}
		ready := "never ready"
		if !b.Ready.IsZero() {
			ready = fmt.Sprintf("ready after %.1fs", b.Ready.Sub(b.Started).Seconds())
		}
		parts = append(parts, fmt.Sprintf("%d: %s, %s, %.1fs", b.N, ready, orRunning(b.End), end.Sub(b.Started).Seconds()))
	}
	s.t.Logf("SCENARIO %s: %d boots, wall time %v (boots: %s)", name, len(boots), time.Since(s.start).Round(100*time.Millisecond), strings.Join(parts, "; "))
}

func orRunning(e vm.End) string {
	if e == vm.Running {
		return "running"
	}
	return string(e)
}
