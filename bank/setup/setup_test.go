package setup_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iadsafe/iad-agent/bank"
	"github.com/iadsafe/iad-agent/bank/setup"
)

// The README's examples are these files.
func TestExamples(t *testing.T) {
	tests := []struct {
		file    string
		types   [2]string
		state   string
		counted bool
	}{
		{"emmc.conf", [2]string{"block", "block"}, "uboot", true},
		{"nor.conf", [2]string{"mtd", "mtd"}, "uboot", true},
		{"nand.conf", [2]string{"ubi", "ubi"}, "uboot", true},
		{"dev.conf", [2]string{"file", "file"}, "file", false},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c, err := setup.ParseFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if c.Slots[bank.SlotA].Type != tt.types[0] || c.Slots[bank.SlotB].Type != tt.types[1] {
				t.Errorf("types %s %s, want %v", c.Slots[bank.SlotA].Type, c.Slots[bank.SlotB].Type, tt.types)
			}
			if c.State.Type != tt.state || c.CountedByBootloader() != tt.counted {
				t.Errorf("state %s counted %v, want %s %v", c.State.Type, c.CountedByBootloader(), tt.state, tt.counted)
			}
		})
	}
	c, _ := setup.ParseFile("testdata/nor.conf")
	if c.State.VarBootBank != "bootslot" || c.State.BankA != "0" || c.Slots[bank.SlotA].Name != "firmware-a" {
		t.Errorf("nor.conf: %+v", c)
	}
	c, _ = setup.ParseFile("testdata/dev.conf")
	if want, _ := filepath.Abs("testdata/bank/slot-A.img"); c.Slots[bank.SlotA].Path != filepath.Join("testdata", "bank/slot-A.img") && c.Slots[bank.SlotA].Path != want {
		t.Errorf("relative path %s", c.Slots[bank.SlotA].Path)
	}
	c, _ = setup.ParseFile("testdata/emmc.conf")
	if tg := c.Boot.Targets[bank.SlotB]; tg.Root != "/dev/mmcblk0p3" || tg.Init != "/sbin/init" || c.Boot.Fallback != bank.SlotA {
		t.Errorf("emmc.conf boot: %+v", c.Boot)
	}
}

func TestParseErrors(t *testing.T) {
	base := "[slot A]\ntype = file\npath = a\nsize = 1MiB\n[slot B]\ntype = file\npath = b\nsize = 1MiB\n[state]\npath = s\n"
	if _, err := setup.Parse(strings.NewReader(base), "x.conf"); err != nil {
		t.Fatalf("base: %v", err)
	}
	tests := []struct{ name, text, want string }{
		{"unknown key", strings.Replace(base, "size = 1MiB\n[slot B]", "size = 1MiB\ndevcie = x\n[slot B]", 1), `unknown slot key "devcie"`},
		{"unknown section", base + "[slot C]\n", "unknown section"},
		{"unknown type", strings.Replace(base, "type = file", "type = emmc", 1), `unknown type "emmc"`},
		{"missing slot", strings.Replace(base, "[slot B]", "[boot]", 1), ""},
		{"bad size", strings.Replace(base, "size = 1MiB", "size = lots", 1), "bad size"},
		{"key outside", "type = file\n" + base, "outside a section"},
		{"no equals", base + "oops\n", "not key = value"},
		{"same path", strings.Replace(base, "path = b", "path = a", 1), "same path"},
		{"bad counter", base + "boot_counter = uboot\n", "boot_counter"},
		{"bad limit", base + "boot_limit = 11\n", "boot_limit"},
		{"bad state type", base + "type = json\n", "want file, uboot or uboot-text"},
		{"uboot-text without path", strings.Replace(base, "[state]\npath = s\n", "[state]\ntype = uboot-text\n", 1), "uboot-text needs path"},
		{"boot without target", base + "[boot]\nfstype_A = ext4\n", "needs root_A or exec_A"},
		{"boot root and exec", base + "[boot]\nroot_A = /dev/x\nexec_A = /bin/x\n", "both root and exec"},
		{"bad boot key", base + "[boot]\nkernel_A = x\n", "unknown boot key"},
		{"twice", base + "[state]\n", "twice"},
		{"overlapping ranges", "[slot A]\ntype = block\npath = /dev/vda\noffset = 1MiB\nsize = 4MiB\n[slot B]\ntype = block\npath = /dev/vda\noffset = 4MiB\nsize = 4MiB\n[state]\npath = s\n", "overlapping"},
		{"open-ended range", "[slot A]\ntype = block\npath = /dev/vda\noffset = 1MiB\n[slot B]\ntype = block\npath = /dev/vda\noffset = 8MiB\nsize = 4MiB\n[state]\npath = s\n", "overlapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := setup.Parse(strings.NewReader(tt.text), "x.conf")
			if !errors.Is(err, setup.ErrConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want ErrConfig containing %q", err, tt.want)
			}
		})
	}
}

// TestOpenAndInstall opens simulated NAND slots and a U-Boot environment
// from a configuration file and runs an install through them.
func TestOpenAndInstall(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("env0", strings.Repeat("\xff", 0x4000))
	write("env1", strings.Repeat("\xff", 0x4000))
	write("fw_env.config", filepath.Join(dir, "env0")+" 0 0x4000\n"+filepath.Join(dir, "env1")+" 0 0x4000\n")
	write("defaults", "bootcmd=run bootbank\n")
	write("bank.conf", `
[slot A]
type = mtd-sim
path = a.flash
flash = nand
size = 2MiB
erase_size = 128KiB
page_size = 2KiB
bad_blocks = 1, 4
[slot B]
type = mtd-sim
path = b.flash
flash = nand
size = 2MiB
erase_size = 128KiB
page_size = 2KiB
bad_blocks = 0
[state]
type = uboot
fw_env_config = fw_env.config
default_env = defaults
lock_file = -
boot_counter = agent
boot_limit = 5
`)
	c, err := setup.ParseFile(filepath.Join(dir, "bank.conf"))
	if err != nil {
		t.Fatal(err)
	}
	o, err := c.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if got := o.Devices[bank.SlotA].Size(); got != 14*128<<10 {
		t.Fatalf("slot A usable size %d, want 14 good blocks", got)
	}
	ctx := context.Background()
	opts := o.Options(c)
	opts.Factory = bank.SlotInfo{Version: "1"}
	b, err := bank.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	if b.BootLimit() != 5 {
		t.Fatalf("boot limit %d, want 5", b.BootLimit())
	}
	data := bytes.Repeat([]byte{0xA5, 0x5A, 0}, 500_000)
	if _, err := b.Install(ctx, bank.SlotInfo{Version: "2", Size: int64(len(data)), Digest: sha256.Sum256(data)}, bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	v, err := o.Env.Read()
	if err != nil || v["bootcmd"] != "run bootbank" || v["boot_bank"] != "A" || !strings.Contains(v["iad_slot_b"], `"valid"`) {
		t.Fatalf("environment after install: %v %v", v, err)
	}
}

// TestOpenUBootText keeps the boot state in a text file as a U-Boot boot
// script imports it ("env import -t"): a blank device starts without a
// default environment, and the file reads back what was saved.
func TestOpenUBootText(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "bank.conf")
	if err := os.WriteFile(conf, []byte(`
[slot A]
type = file
path = a.img
size = 1MiB
[slot B]
type = file
path = b.img
size = 1MiB
[state]
type = uboot-text
path = iadstate.txt
boot_limit = 2
`), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := setup.ParseFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	if !c.CountedByBootloader() {
		t.Errorf("uboot-text: boot_counter %s, want bootloader by default", c.State.BootCounter)
	}
	o, err := c.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	ctx := context.Background()
	opts := o.Options(c)
	opts.Factory = bank.SlotInfo{Version: "1"}
	b, err := bank.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	data := []byte("software 2")
	if _, err := b.Install(ctx, bank.SlotInfo{Version: "2", Size: int64(len(data)), Digest: sha256.Sum256(data)}, bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Arm(ctx, bank.SlotB); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(dir, "iadstate.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"boot_bank=B\n", "upgrade_available=1\n", "bootcount=0\n", "bootlimit=2\n", "iad_active=A\n", "iad_trial=B\n"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("state file lacks %q:\n%s", want, text)
		}
	}
}
