package firmware

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/agent/itest"
	"github.com/iadsafe/iad-agent/bank"
	"github.com/iadsafe/iad-agent/bank/ubootenv"
	"github.com/iadsafe/iad-agent/scripts/vm"
)

// TestReproducible builds the firmware twice and compares every file.
func TestReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds and makes images")
	}
	k := vm.RequireKernelArch(t, vm.ArmHF)
	if err := RequireTools(vm.ArmHF); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var sums [2][]byte
	for i := range sums {
		out := filepath.Join(t.TempDir(), "fw")
		fw, err := Build(ctx, Options{Root: itest.RepoRoot(t), Out: out, Kernel: k, BigPayload: 4 << 20})
		if err != nil {
			t.Fatal(err)
		}
		if sums[i], err = os.ReadFile(filepath.Join(fw.Dir, "SHA256SUMS")); err != nil {
			t.Fatal(err)
		}
		if big := fw.Banks[Big]; big.Size < 4<<20 {
			t.Errorf("version %s payload: %d bytes, want at least %d", Big, big.Size, 4<<20)
		}
	}
	if !bytes.Equal(sums[0], sums[1]) {
		t.Fatalf("two builds differ:\n%s\n---\n%s", sums[0], sums[1])
	}
	for _, want := range []string{"disk.img", "disk-uboot.img", "initrd.gz", "vmlinuz", "images/v2.0.0.img", "banks/1.0.0.sqfs", "run-qemu.sh"} {
		if !bytes.Contains(sums[0], []byte("  "+want+"\n")) {
			t.Errorf("SHA256SUMS lacks %s:\n%s", want, sums[0])
		}
	}
}

func TestLayout(t *testing.T) {
	for _, uboot := range []bool{false, true} {
		parts := DefaultLayout.Partitions(uboot)
		sec := mbr(parts)
		if sec[510] != 0x55 || sec[511] != 0xaa {
			t.Fatal("no MBR signature")
		}
		end := int64(0)
		for i, p := range parts {
			e := sec[446+16*i:]
			if got := int64(binary.LittleEndian.Uint32(e[8:])) * 512; got != p.Offset || p.Offset%align != 0 || p.Offset < end {
				t.Errorf("uboot=%v partition %d at %d (table %d), previous end %d", uboot, i+1, p.Offset, got, end)
			}
			if got := int64(binary.LittleEndian.Uint32(e[12:])) * 512; got != p.Size {
				t.Errorf("uboot=%v partition %d size %d, table %d", uboot, i+1, p.Size, got)
			}
			if (e[0] == 0x80) != (uboot && i == 0) {
				t.Errorf("uboot=%v partition %d bootable flag %#x", uboot, i+1, e[0])
			}
			end = p.Offset + p.Size
		}
		if end != DefaultLayout.DiskSize(uboot) {
			t.Errorf("uboot=%v disk size %d, partitions end at %d", uboot, DefaultLayout.DiskSize(uboot), end)
		}
	}
	if 2*DefaultLayout.EnvSize > DefaultLayout.StateSize {
		t.Errorf("two environment copies of %d bytes do not fit the %d-byte boot-state area", DefaultLayout.EnvSize, DefaultLayout.StateSize)
	}
	if want := "/dev/vda1 0x0 0x10000\n/dev/vda1 0x10000 0x10000\n"; fwEnvConfig(DefaultLayout) != want {
		t.Errorf("fw_env.config %q, want %q", fwEnvConfig(DefaultLayout), want)
	}
}

// TestBootScript checks boot.scr against the agent's boot-state store:
// it must save every variable the store keeps (or a try it counts would
// drop the agent's records), and count every try up to the largest
// boot limit in decimal.
func TestBootScript(t *testing.T) {
	cmd, err := files.ReadFile("files/boot.cmd")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*env export -t \$\{iad_addr\} (.+)$`).FindSubmatch(cmd)
	if m == nil {
		t.Fatal("boot.cmd has no env export -t line")
	}
	exported := strings.Fields(string(m[1]))
	// What the store writes, from the store itself.
	dir := t.TempDir()
	text := ubootenv.OpenText(filepath.Join(dir, "state.txt"))
	store, err := ubootenv.NewStore(text, ubootenv.StoreOptions{Defaults: ubootenv.Vars{}})
	if err != nil {
		t.Fatal(err)
	}
	st := bank.State{Version: 1, Active: bank.SlotA, Trial: bank.SlotB, TriesLeft: 2, Armed: 3, BootLimit: 3, Seq: 7,
		Abandoned: bank.SlotB, AbandonReason: "a reason",
		Slots: map[bank.Slot]bank.SlotInfo{bank.SlotA: {State: bank.SlotValid}, bank.SlotB: {State: bank.SlotValid}}}
	if err := store.Save(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	vars, err := text.Read()
	if err != nil {
		t.Fatal(err)
	}
	for name := range vars {
		if !slices.Contains(exported, name) {
			t.Errorf("boot.cmd does not export %s, which the agent's store writes", name)
		}
	}
	for n := 0; n <= bank.MaxBootLimit; n++ {
		want := `test "${bootcount}" = "` + strconv.Itoa(n) + `"; then setenv bootcount ` + strconv.Itoa(n+1)
		if !bytes.Contains(cmd, []byte(want)) {
			t.Errorf("boot.cmd does not count try %d: no %q", n+1, want)
		}
	}
}

func TestSiteEnv(t *testing.T) {
	got := string(Site{Trap: "10.0.2.2:1162", CommitAfter: 4 * time.Second, TFTPBlockSize: 8192, AgentArgs: "-log-level debug"}.env())
	for _, want := range []string{"TRAP=10.0.2.2:1162\n", "COMMIT_AFTER=4s\n", "TFTP_BLKSIZE=8192\n", `AGENT_ARGS="-log-level debug"` + "\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("site.env lacks %q:\n%s", want, got)
		}
	}
	if got := string(Site{}.env()); strings.Contains(got, "TRAP=") {
		t.Errorf("empty site sets a trap:\n%s", got)
	}
}
