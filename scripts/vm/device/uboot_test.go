package device_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/iadsafe/iad-agent/scripts/vm/firmware"
)

// TestUBoot runs the device through a real U-Boot (Debian's u-boot-qemu,
// qemu_arm): its boot.scr makes the A/B choice and counts the trial's
// tries in iadstate.txt on the FAT partition (env import/export -t,
// fatwrite), and the agent's uboot-text backend reads and writes that
// same file. The golden path over TFTP, then bad software that U-Boot
// reverts after two tries.
func TestUBoot(t *testing.T) {
	s := newScenario(t, scenarioOptions{uboot: true})
	s.powerOn()
	if !strings.Contains(strings.Join(s.linesSince(1), "\n"), "IAD-UBOOT: booting bank A") {
		s.fatalf("boot 1 did not go through boot.scr")
	}
	s.goldenPath("tftp", 1)
	// U-Boot counted the trial boot into bank B, the agent committed it
	// in the same file.
	if !regexp.MustCompile(`(?m)^IAD-UBOOT: trial bank B, try 1 of 3$`).MatchString(strings.Join(s.linesSince(2), "\n")) {
		s.fatalf("U-Boot did not count the trial boot of bank B")
	}
	state := s.run("cat /boot/iadstate.txt")
	for _, want := range []string{"boot_bank=B", "upgrade_available=0", "iad_active=B", "bootcount=0"} {
		if !regexp.MustCompile(`(?m)^` + want + `$`).MatchString(state) {
			s.fatalf("iadstate.txt after the commit lacks %q:\n%s", want, state)
		}
	}
	s.summary("golden path through U-Boot")
	s.badSoftware(5, ubootCounts)
	t.Logf("iadstate.txt after U-Boot's revert:\n%s", s.run("cat /boot/iadstate.txt"))
	s.summary("golden path + bad software through U-Boot")
	_ = firmware.Factory
}
