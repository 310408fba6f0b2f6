package vm

import "testing"

// TestClassify tells how a run ended from its last console lines.
func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lines  []string
		killed bool
		want   End
	}{
		{"power-off", []string{"IAD-VM-RESULT: PASS", "[   12.1] reboot: Power down"}, false, PowerOff},
		{"reboot", []string{"reset: rebooting", "[    6.4] reboot: Restarting system"}, false, Reboot},
		{"U-Boot reset", []string{"=> reset", "resetting ..."}, false, Reboot},
		{"panic", []string{"[    2.0] Kernel panic - not syncing: Attempted to kill init! exitcode=0x00000100", "[    3.0] Rebooting in 1 seconds.."}, false, Panic},
		{"killed wins", []string{"reboot: Restarting system"}, true, Killed},
		{"QEMU failed", []string{"qemu-system-arm: -drive file=x: Could not open 'x'"}, false, Failed},
		{"nothing", nil, false, Failed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &Machine{lines: tc.lines, killed: tc.killed}
			if got := m.classify(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
