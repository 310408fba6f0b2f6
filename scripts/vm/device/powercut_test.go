package device_test

import (
	"context"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/mib"
	"github.com/iadsafe/iad-agent/scripts/vm/device"
	"github.com/iadsafe/iad-agent/scripts/vm/firmware"
)

// Power cuts of TestPowerCuts: at least minCuts in all and minPerKind of
// each kind.
const (
	minCuts    = 10
	minPerKind = 3
	// maxAttempts bounds the tries to land the cuts (a cut that falls
	// after the operation completed does not count).
	maxAttempts = 30
)

// Kinds of cut.
const (
	cutWrite   = "bank write"
	cutSwitch  = "boot-state switch"
	cutRestore = "restore apply"
)

var (
	reChose     = regexp.MustCompile(`msg="iad-boot: chose bank" bank=([AB]) trial=(true|false) reverted=(true|false)`)
	reStartBoot = regexp.MustCompile(`^IAD-VM-INITRAMFS: starting iad-boot$`)
)

// powerCutSeed is IAD_VM_POWERCUT_SEED, or a new seed each run; the test
// logs it, so a failing run's moments can be repeated.
func powerCutSeed(t *testing.T) uint64 {
	if s := os.Getenv("IAD_VM_POWERCUT_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("IAD_VM_POWERCUT_SEED=%q: %v", s, err)
		}
		return n
	}
	return uint64(time.Now().UnixNano())
}

// cutter is the power-cut scenario's state.
type cutter struct {
	*scenario
	rng *rand.Rand
	idx int
	// The two whole configurations the device may hold: the backup
	// (restored) and the changed one.
	restored, changed map[string]string
	// Measured on uncut runs, to place the cuts (the shortest seen, as
	// the machine's load varies): how long an upgrade of Second takes
	// from its last byte to its completion (read-back, record, arm), a
	// restore from its staged configuration to its completion (the
	// apply), and iad-boot from its start to its decision.
	tailUpgrade, applyTime, toDecision time.Duration
	cuts                               map[string]int
	log                                []string
}

// TestPowerCuts kills QEMU with SIGKILL (a power cut: the guest's page
// cache is lost, the disk keeps what was written) at seeded random
// moments: while an upgrade writes the inactive bank; around the
// boot-state switches (the verify-and-arm at the end of an upgrade,
// iad-boot spending a try at the next boot, the health check's commit);
// and while a restore applies a configuration. After every cut the next
// boot must come up on a bank whose content hashes (in the guest,
// independently of the agent) to the payload of the version it reports,
// with a whole configuration (the backup or the one before the restore),
// and a cut operation must read failed/interrupted (an upgrade cut after
// it armed the bank reads successful: the journal records the arming).
func TestPowerCuts(t *testing.T) {
	seed := powerCutSeed(t)
	t.Logf("power-cut seed %d (IAD_VM_POWERCUT_SEED=%d repeats these moments)", seed, seed)
	c := &cutter{scenario: newScenario(t, scenarioOptions{}), rng: rand.New(rand.NewPCG(seed, 0x1ad)), cuts: map[string]int{}}
	s := c.scenario
	mark := s.d.Mark()
	s.powerOn()
	c.decisionTime(mark)

	// A configuration worth restoring, with a 1 MiB file so a restore
	// takes long enough to be cut.
	s.populate()
	s.run(`dd if=/dev/urandom of=` + configDir + `/provisioning.bin bs=64k count=16 2>/dev/null && sync`)
	c.restored = s.guestConfig()
	s.put(firmware.Second, "v2.img")
	c.idx = 1
	s.mustSucceed(c.next(), "backupConfig", "tftp", "backup.tar")
	c.changeConfig()
	mark = s.d.Mark()
	idx := c.next()
	s.mustSucceed(idx, "restoreConfig", "tftp", "backup.tar")
	c.applyTime = c.between(mark, reStaged(idx), reDone(idx))
	c.checkConfig("after an uncut restore")
	// An uncut upgrade, to measure its tail; then boot it and commit.
	c.tailUpgrade = c.upgradeTail()
	mark = s.d.Mark()
	s.reset(c.next())
	c.decisionTime(mark)
	c.settle()
	t.Logf("measured: upgrade tail %v, restore apply %v, iad-boot to its decision %v", c.tailUpgrade, c.applyTime, c.toDecision)

	for attempt := 1; ; attempt++ {
		total := c.cuts[cutWrite] + c.cuts[cutSwitch] + c.cuts[cutRestore]
		if total >= minCuts && c.cuts[cutWrite] >= minPerKind && c.cuts[cutSwitch] >= minPerKind && c.cuts[cutRestore] >= minPerKind {
			break
		}
		if attempt > maxAttempts {
			s.fatalf("only %v cuts landed in %d attempts", c.cuts, maxAttempts)
		}
		var kinds []string
		for _, k := range []string{cutWrite, cutSwitch, cutRestore} {
			if c.cuts[k] < minPerKind || total >= 3*minPerKind {
				kinds = append(kinds, k)
			}
		}
		switch kinds[c.rng.IntN(len(kinds))] {
		case cutWrite:
			c.cutBankWrite()
		case cutSwitch:
			switch c.rng.IntN(3) {
			case 0:
				c.cutArm()
			case 1:
				c.cutBootDecision()
			default:
				c.cutCommit()
			}
		case cutRestore:
			c.cutRestore()
		}
		c.settle()
	}
	for _, l := range c.log {
		t.Log(l)
	}
	t.Logf("POWER CUTS: %d (%d %s, %d %s, %d %s), seed %d", c.cuts[cutWrite]+c.cuts[cutSwitch]+c.cuts[cutRestore],
		c.cuts[cutWrite], cutWrite, c.cuts[cutSwitch], cutSwitch, c.cuts[cutRestore], cutRestore, seed)
	s.summary("power cuts")
}

func (c *cutter) next() int { c.idx++; return c.idx - 1 }

// decisionTime measures, on the next boot mark sees, iad-boot's time
// from its start to its decision, keeping the shortest seen.
func (c *cutter) decisionTime(mark *device.Cursor) {
	c.scenario.t.Helper()
	d := c.between(mark, reStartBoot, reChose)
	if c.toDecision == 0 || d < c.toDecision {
		c.toDecision = d
	}
}

// between is the time between the next lines mark sees matching from
// and to.
func (c *cutter) between(mark *device.Cursor, from, to *regexp.Regexp) time.Duration {
	c.scenario.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, shortWait)
	defer cancel()
	a, _, err := mark.Wait(ctx, from)
	if err != nil {
		c.fatalf("no console line %q: %v", from, err)
	}
	b, _, err := mark.Wait(ctx, to)
	if err != nil {
		c.fatalf("no console line %q: %v", to, err)
	}
	return b.At.Sub(a.At)
}

// reStaged is the restore's "configuration staged" line (the agent logs
// it without the row index; one restore runs at a time).
func reStaged(int) *regexp.Regexp { return regexp.MustCompile(`msg="configuration staged"`) }

func reDone(idx int) *regexp.Regexp {
	return regexp.MustCompile(`msg="operation (successful|failed)" index=` + itoa(idx) + `\b`)
}

func (c *cutter) changeConfig() {
	c.scenario.t.Helper()
	c.run(`cd ` + configDir + ` && rm -f sip-accounts.conf && printf 'format-version = 1\n' > users.conf && sync`)
	c.changed = c.guestConfig()
	if sameConfig(c.changed, c.restored) {
		c.fatalf("test bug: the configuration did not change")
	}
}

// checkConfig insists the configuration is one of the two whole ones.
func (c *cutter) checkConfig(when string) string {
	c.scenario.t.Helper()
	got := c.guestConfig()
	switch {
	case sameConfig(got, c.restored):
		return "the backup"
	case sameConfig(got, c.changed):
		return "the configuration before the restore"
	}
	c.fatalf("%s: the configuration is neither whole one:\n%sbackup:\n%schanged:\n%s", when, configString(got), configString(c.restored), configString(c.changed))
	return ""
}

// upgradeTail runs an uncut upgrade of Second and returns the time from
// its last byte to its completion.
func (c *cutter) upgradeTail() time.Duration {
	c.scenario.t.Helper()
	idx := c.next()
	c.op(idx, "upgrade", "tftp", "v2.img")
	size := c.fw.Banks[firmware.Second].Size
	var last time.Time
	for {
		v := c.ro.Get(c.scenario.t, "iadOpState."+itoa(idx), "iadOpBytes."+itoa(idx))
		n, _ := strconv.ParseInt(v["iadOpBytes."+itoa(idx)], 10, 64)
		if n >= size && last.IsZero() {
			last = time.Now()
		}
		if v["iadOpState."+itoa(idx)] == itoa(mib.OpSuccessful) {
			if last.IsZero() {
				last = time.Now()
			}
			return time.Since(last) + 200*time.Millisecond
		}
		if v["iadOpState."+itoa(idx)] == itoa(mib.OpFailed) {
			c.fatalf("uncut upgrade #%d: %v", idx, c.wait(idx, shortWait))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// settle waits, after a boot, until the running bank is committed: an
// upgrade is refused while a trial runs.
func (c *cutter) settle() {
	c.scenario.t.Helper()
	running := c.ro.GetValue(c.scenario.t, "iadSwActiveBank.0")
	n, _ := strconv.Atoi(running)
	c.waitBankState(n, mib.BankActive)
}

// cutAt cuts the power at a moment and boots again; it returns the
// boot's iad-boot decision line.
func (c *cutter) cutAndBoot(kind, what string) []string {
	c.scenario.t.Helper()
	c.d.PowerCut()
	mark := c.d.Mark()
	n := c.powerOn()
	ctx, cancel := context.WithTimeout(c.ctx, shortWait)
	defer cancel()
	_, chose, err := mark.Wait(ctx, reChose)
	if err != nil {
		c.fatalf("after the cut (%s): no iad-boot decision in boot %d: %v", what, n, err)
	}
	c.checkBank(what)
	cfg := c.checkConfig("after the cut (" + what + ")")
	c.log = append(c.log, "cut "+strconv.Itoa(c.cuts[cutWrite]+c.cuts[cutSwitch]+c.cuts[cutRestore]+1)+" ("+kind+"): "+what+
		"; boot "+strconv.Itoa(n)+": iad-boot chose bank "+chose[1]+" (trial "+chose[2]+", reverted "+chose[3]+"), configuration is "+cfg)
	return chose
}

// checkBank insists the running bank holds, byte for byte, the payload
// of the version it reports.
func (c *cutter) checkBank(what string) {
	c.scenario.t.Helper()
	v := c.ro.Get(c.scenario.t, "iadSwActiveBank.0", "iadSwCurrentVersion.0")
	bank := map[string]string{"1": "A", "2": "B"}[v["iadSwActiveBank.0"]]
	ver := v["iadSwCurrentVersion.0"]
	payload, ok := c.fw.Banks[ver]
	if !ok || bank == "" {
		c.fatalf("after the cut (%s): running bank %q version %q", what, v["iadSwActiveBank.0"], ver)
	}
	if got := c.bankSHA256(bank, payload.Size); got != hexSum(payload.SHA256) {
		c.fatalf("after the cut (%s): bank %s runs v%s but hashes to %s, want %s", what, bank, ver, got, hexSum(payload.SHA256))
	}
}

// expectInterrupted reads the cut operation's row: failed/interrupted,
// or successful where allowed (the cut came after it completed). It
// reports whether the cut interrupted the operation.
func (c *cutter) expectInterrupted(idx int, successOK bool) bool {
	c.scenario.t.Helper()
	r := c.wait(idx, shortWait)
	switch {
	case r.state == itoa(mib.OpFailed) && r.cause == itoa(mib.FailInterrupted):
		return true
	case r.ok() && successOK:
		return false
	}
	c.fatalf("operation #%d after the cut: got %v, want failed/interrupted", idx, r)
	return false
}

// cutBankWrite cuts while an upgrade streams the image into the
// inactive bank, at a random fraction of its bytes. (Should the poll see
// the last byte already, the cut falls into the upgrade's tail: it then
// counts as a boot-state switch cut, where the upgrade may have armed.)
func (c *cutter) cutBankWrite() {
	c.scenario.t.Helper()
	before := c.sw()
	size := c.fw.Banks[firmware.Second].Size
	at := int64(float64(size) * (0.05 + 0.9*c.rng.Float64()))
	idx := c.next()
	c.op(idx, "upgrade", "tftp", "v2.img")
	var n int64
	for {
		v := c.ro.Get(c.scenario.t, "iadOpState."+itoa(idx), "iadOpBytes."+itoa(idx))
		n, _ = strconv.ParseInt(v["iadOpBytes."+itoa(idx)], 10, 64)
		if n >= at {
			break
		}
		if st := v["iadOpState."+itoa(idx)]; st != itoa(mib.OpRunning) && st != itoa(mib.OpWaiting) {
			c.fatalf("upgrade #%d ended before byte %d: %v", idx, at, c.wait(idx, shortWait))
		}
		time.Sleep(20 * time.Millisecond)
	}
	kind := cutWrite
	if n >= size {
		kind = cutSwitch
	}
	what := "upgrade #" + itoa(idx) + " at byte " + strconv.FormatInt(n, 10) + " of " + strconv.FormatInt(size, 10)
	chose := c.cutAndBoot(kind, what)
	if !c.expectInterrupted(idx, kind == cutSwitch) {
		if chose[2] != "true" {
			c.fatalf("after the cut (%s): the upgrade reads successful (armed) but iad-boot chose %v", what, chose[1:])
		}
	} else if got := c.sw(); got.activeBank != before.activeBank || got.version != before.version {
		c.fatalf("after the cut (%s): got %v, want still %v", what, got, before)
	}
	c.cuts[kind]++
}

// cutArm cuts between an upgrade's last byte and a moment after its
// completion: during the read-back, the recording of the bank as valid
// or the arming.
func (c *cutter) cutArm() {
	c.scenario.t.Helper()
	size := c.fw.Banks[firmware.Second].Size
	delay := time.Duration(c.rng.Float64() * float64(c.tailUpgrade))
	idx := c.next()
	c.op(idx, "upgrade", "tftp", "v2.img")
	for {
		v := c.ro.Get(c.scenario.t, "iadOpState."+itoa(idx), "iadOpBytes."+itoa(idx))
		n, _ := strconv.ParseInt(v["iadOpBytes."+itoa(idx)], 10, 64)
		if n >= size || v["iadOpState."+itoa(idx)] == itoa(mib.OpSuccessful) {
			break
		}
		if v["iadOpState."+itoa(idx)] == itoa(mib.OpFailed) {
			c.fatalf("upgrade #%d: %v", idx, c.wait(idx, shortWait))
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(delay)
	what := "upgrade #" + itoa(idx) + ", " + delay.Round(time.Millisecond).String() + " after its last byte"
	chose := c.cutAndBoot(cutSwitch, what)
	armed := !c.expectInterrupted(idx, true)
	// Armed: this boot is the trial of the upgraded bank.
	if armed != (chose[2] == "true") {
		c.fatalf("after the cut (%s): the upgrade reads armed=%v but iad-boot chose %v", what, armed, chose[1:])
	}
	c.cuts[cutSwitch]++
}

// cutBootDecision arms a trial, resets, and cuts the next boot at a
// random moment before or after iad-boot spends the try.
func (c *cutter) cutBootDecision() {
	c.scenario.t.Helper()
	c.mustSucceed(c.next(), "upgrade", "tftp", "v2.img")
	tries := c.ro.GetValue(c.scenario.t, "iadSwTrialTriesLeft.0")
	before := c.d.BootCount()
	mark := c.d.Mark()
	c.op(c.next(), "reset", "", "")
	ctx, cancel := context.WithTimeout(c.ctx, bootWait)
	defer cancel()
	l, _, err := mark.Wait(ctx, reStartBoot)
	if err != nil || l.Boot != before+1 {
		c.fatalf("reset: iad-boot did not start in boot %d: %v", before+1, err)
	}
	delay := time.Duration(2 * c.rng.Float64() * float64(c.toDecision))
	time.Sleep(time.Until(l.At.Add(delay)))
	decided := "before"
	if _, _, err := mark.Wait(expired(), reChose); err == nil {
		decided = "after"
	}
	what := "boot " + itoa(l.Boot) + " " + delay.Round(time.Millisecond).String() + " after iad-boot started, " + decided + " its decision was seen (the trial had " + tries + " tries)"
	mark = c.d.Mark()
	c.cutAndBoot(cutSwitch, what)
	c.decisionTime(mark)
	c.cuts[cutSwitch]++
}

// cutCommit cuts a trial boot at a random moment around the health
// check's commit.
func (c *cutter) cutCommit() {
	c.scenario.t.Helper()
	c.mustSucceed(c.next(), "upgrade", "tftp", "v2.img")
	c.reset(c.next())
	boots := c.d.Boots()
	ready := boots[len(boots)-1].Ready
	delay := time.Duration(c.rng.Float64() * float64(4*time.Second+2*time.Second))
	time.Sleep(time.Until(ready.Add(delay)))
	what := "trial boot " + itoa(len(boots)) + " " + delay.Round(time.Millisecond).String() + " after it served (commit after 4s)"
	c.cutAndBoot(cutSwitch, what)
	c.cuts[cutSwitch]++
}

// cutRestore cuts a restore at a random moment of its apply (from the
// staged configuration to the swap, as measured uncut); a cut that lands
// after the restore completed does not count.
func (c *cutter) cutRestore() {
	c.scenario.t.Helper()
	c.changeConfig()
	delay := time.Duration(c.rng.Float64() * float64(c.applyTime))
	idx := c.next()
	mark := c.d.Mark()
	c.op(idx, "restoreConfig", "tftp", "backup.tar")
	ctx, cancel := context.WithTimeout(c.ctx, shortWait)
	defer cancel()
	l, _, err := mark.Wait(ctx, reStaged(idx))
	if err != nil {
		c.fatalf("restore #%d: %v", idx, err)
	}
	time.Sleep(time.Until(l.At.Add(delay)))
	what := "restore #" + itoa(idx) + " " + delay.Round(time.Millisecond).String() + " after its configuration was staged"
	c.cutAndBoot(cutRestore, what)
	if c.expectInterrupted(idx, true) {
		c.cuts[cutRestore]++
	} else {
		c.log[len(c.log)-1] += " (the restore had completed: not counted)"
	}
}

// expired is a context that has ended: Wait then only scans.
func expired() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}
