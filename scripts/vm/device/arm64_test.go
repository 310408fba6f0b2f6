package device_test

import (
	"testing"

	"github.com/iadsafe/iad-agent/scripts/vm"
)

// TestARM64GoldenPath is the golden path over TFTP on a 64-bit device:
// qemu-system-aarch64 -M virt with Debian's arm64 kernel, the agent and
// iad-boot cross-built for linux/arm64.
func TestARM64GoldenPath(t *testing.T) {
	s := newScenario(t, scenarioOptions{arch: vm.Arm64})
	s.powerOn()
	if got := s.run("uname -m"); got != "aarch64" {
		s.fatalf("uname -m in the guest: %q, want aarch64", got)
	}
	s.goldenPath("tftp", 1)
	s.summary("arm64 golden path over TFTP")
}
