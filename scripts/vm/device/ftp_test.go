package device_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/agent/itest"
	"github.com/iadsafe/iad-agent/mib"
	"github.com/iadsafe/iad-agent/scripts/vm/firmware"
)

// maxAgentHWM bounds the agent's peak resident memory (VmHWM) in the
// guest during the 32 MiB upgrade: the image streams through a 1 MiB
// buffer, so the peak must stay far below the image's size plus the
// agent's own ~10 MiB.
const maxAgentHWM = 32 << 10 // KiB

// TestGoldenPathFTPAndHostileNetwork is the method over FTP (vsftpd on
// the host's loopback, reached from the guest as 10.0.2.2), then a
// hostile network on the same device: the TFTP server is killed while
// the guest downloads the 32 MiB version Big, the operation fails with
// cause timeout and its notification, and a retry from a restarted
// server succeeds. The agent's memory is read from the guest's /proc
// during and after that upgrade.
func TestGoldenPathFTPAndHostileNetwork(t *testing.T) {
	s := newScenario(t, scenarioOptions{ftp: true})
	s.powerOn()
	s.goldenPath("ftp", 1)
	s.summary("golden path over FTP")

	hostileStart := time.Now()
	big := s.fw.Banks[firmware.Big]
	s.put(firmware.Big, "v4.img")
	traps0 := len(s.traps.Traps())
	s.op(5, "upgrade", "tftp", "v4.img")
	// Kill the server once a quarter of the image has arrived.
	var got int64
	for deadline := time.Now().Add(opWait); got < big.Size/4; {
		v := s.ro.Get(t, "iadOpBytes.5", "iadOpState.5")
		got, _ = strconv.ParseInt(v["iadOpBytes.5"], 10, 64)
		if v["iadOpState.5"] != itoa(mib.OpRunning) || time.Now().After(deadline) {
			s.fatalf("upgrade #5 before a quarter arrived: %s bytes, state %s", v["iadOpBytes.5"], v["iadOpState.5"])
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.tftp.Stop()
	s.logf("TFTP server (pid %d) killed after %d of %d bytes", s.tftp.PID, got, big.Size)
	r := s.wait(5, opWait)
	if r.state != itoa(mib.OpFailed) || r.cause != itoa(mib.FailTimeout) {
		s.fatalf("upgrade #5 with the server gone: got %v, want failed/timeout", r)
	}
	s.waitEvents(traps0, event{oid: mib.IadOpCompletedNotify, index: 5, state: mib.OpFailed, cause: mib.FailTimeout})
	if w := s.sw(); w.version != firmware.Second || w.activeBank != "2" || w.nextBank != "2" || w.stateA == itoa(mib.BankValid) {
		s.fatalf("after the failed upgrade: got %v, want %s still running and booting next from bank B, bank A not valid", w, firmware.Second)
	}
	s.logf("upgrade #5 failed with %v", r)

	// The retry, from a restarted server (on a new port).
	s.tftp = itest.StartTFTP(t, s.tftp.Dir, true)
	traps0 = len(s.traps.Traps())
	start := time.Now()
	s.op(6, "upgrade", "tftp", "v4.img")
	var samples []string
	peakRSS := 0
	for {
		v := s.ro.Get(t, "iadOpState.6", "iadOpBytes.6")
		if v["iadOpState.6"] != itoa(mib.OpRunning) && v["iadOpState.6"] != itoa(mib.OpWaiting) {
			break
		}
		rss, hwm := s.agentMemory()
		peakRSS = max(peakRSS, rss)
		samples = append(samples, fmt.Sprintf("%s bytes: VmRSS %d KiB, VmHWM %d KiB", v["iadOpBytes.6"], rss, hwm))
		if time.Since(start) > opWait {
			s.fatalf("upgrade #6 still running after %v", opWait)
		}
		// Each sample runs processes in the emulated guest, which
		// slows the transfer it measures: a few samples are enough,
		// VmHWM afterwards is the peak.
		time.Sleep(2 * time.Second)
	}
	if r := s.wait(6, opWait); !r.ok() {
		s.fatalf("the retry: got %v, want successful", r)
	}
	s.waitEvents(traps0, event{oid: mib.IadOpCompletedNotify, index: 6, state: mib.OpSuccessful, cause: mib.FailNone})
	rss, hwm := s.agentMemory()
	t.Logf("agent memory in the guest during the %d-byte upgrade (from /proc/PID/status):", big.Size)
	for _, l := range samples {
		t.Logf("  %s", l)
	}
	t.Logf("AGENT MEMORY: %d-byte upgrade over TFTP in the guest: peak VmRSS sampled %d KiB, VmHWM %d KiB after it (VmRSS now %d KiB)", big.Size, peakRSS, hwm, rss)
	if hwm > maxAgentHWM {
		s.fatalf("agent VmHWM %d KiB after a %d-byte upgrade: want at most %d KiB (is the image buffered whole?)", hwm, big.Size, maxAgentHWM)
	}
	if got := s.bankSHA256("A", big.Size); got != hexSum(big.SHA256) {
		s.fatalf("bank A hashes to %s after the retry, want v%s's %s", got, firmware.Big, hexSum(big.SHA256))
	}
	if w := s.sw(); w.nextBank != "1" || w.stateA != itoa(mib.BankTrial) {
		s.fatalf("after the retry: got %v, want bank A armed", w)
	}
	s.logf("hostile network: the retry succeeded in %v", time.Since(start).Round(100*time.Millisecond))
	t.Logf("SCENARIO hostile network: 0 boots, wall time %v", time.Since(hostileStart).Round(100*time.Millisecond))
	s.summary("golden path over FTP + hostile network")
}
