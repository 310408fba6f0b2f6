package itest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iadsafe/iad-agent/mib"
)

// TestUpgradeOnNANDWithUBootEnv runs the agent on a bank configuration:
// simulated NAND slots with bad blocks and the boot state in a redundant
// U-Boot environment, which Debian's fw_printenv reads at every step of
// an upgrade, the trial boot and the commit.
func TestUpgradeOnNANDWithUBootEnv(t *testing.T) {
	printenv := RequireTool(t, "fw_printenv")
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("env0", strings.Repeat("\xff", 0x4000))
	write("env1", strings.Repeat("\xff", 0x4000))
	fwcfg := filepath.Join(dir, "fw_env.config")
	write("fw_env.config", filepath.Join(dir, "env0")+" 0x0 0x4000\n"+filepath.Join(dir, "env1")+" 0x0 0x4000\n")
	write("u-boot-initial-env", "bootcmd=run iad_boot\n")
	slot := "type = mtd-sim\npath = %s.flash\nflash = nand\nsize = 8MiB\nerase_size = 128KiB\npage_size = 2KiB\nbad_blocks = %s\n"
	write("bank.conf", "[slot A]\n"+fmt.Sprintf(slot, "a", "2")+"[slot B]\n"+fmt.Sprintf(slot, "b", "0, 9")+
		"[state]\ntype = uboot\nfw_env_config = fw_env.config\ndefault_env = u-boot-initial-env\nlock_file = -\nboot_counter = agent\n")

	env := func(want map[string]string) {
		t.Helper()
		var out, errb bytes.Buffer
		cmd := exec.Command(printenv, "-c", fwcfg)
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil || strings.Contains(errb.String(), "Cannot read") {
			t.Fatalf("fw_printenv: %v %s", err, errb.String())
		}
		got := map[string]string{}
		for _, l := range strings.Split(out.String(), "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				got[k] = v
			}
		}
		for k, v := range want {
			if got[k] != v {
				t.Fatalf("fw_printenv %s=%q, want %q (all: %v)", k, got[k], v, got)
			}
		}
	}

	r := newRig(t, rigOptions{noFTP: true, args: []string{"-bank-config", filepath.Join(dir, "bank.conf")}})
	env(map[string]string{"boot_bank": "A", "upgrade_available": "0", "bootcount": "0", "bootcmd": "run iad_boot"})

	r.image(t, "v2.img", "2.0.0", testHW, r.key, 3<<20)
	r.mustSucceed(t, 1, "upgrade", "tftp", "v2.img")
	env(map[string]string{"boot_bank": "B", "upgrade_available": "1", "bootcount": "0", "bootlimit": "3", "iad_active": "A"})

	r.reset(t, 2)
	if got := r.sw(t); got.version != "2.0.0" || got.activeBank != "2" {
		t.Fatalf("after the reset: %+v, want 2.0.0 on bank B", got)
	}
	r.waitBankState(t, 2, mib.BankActive)
	env(map[string]string{"boot_bank": "B", "upgrade_available": "0", "bootcount": "0", "iad_active": "B", "bootcmd": "run iad_boot"})
}
