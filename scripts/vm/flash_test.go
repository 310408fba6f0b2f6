package vm_test

import (
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/agent/itest"
	"github.com/iadsafe/iad-agent/scripts/vm"
)

// TestFlashInGuest boots the ARM guest whose init is flashguest: raw MTD
// slots on nandsim with injected bad blocks, and UBI volumes on nandsim,
// each upgraded, cut mid-write with SIGKILL at least five times (the boot
// selector must then refuse the partial bank), and finally upgraded,
// read back and verified.
func TestFlashInGuest(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a VM")
	}
	k := vm.RequireKernel(t)
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	guest := filepath.Join(dir, "flashguest")
	if err := vm.BuildGuest(ctx, itest.RepoRoot(t), "./scripts/vm/flashguest", guest); err != nil {
		t.Fatal(err)
	}
	rd := vm.NewInitramfs()
	if err := rd.HostFile("init", 0o755, guest); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"nandsim.ko", "ubi.ko"} {
		p, err := k.Module(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := rd.HostFile("lib/modules/"+m, 0o644, p); err != nil {
			t.Fatal(err)
		}
	}
	initrd := filepath.Join(dir, "initrd.gz")
	if err := rd.Write(initrd); err != nil {
		t.Fatal(err)
	}
	m, err := vm.Start(vm.Config{Kernel: k, Initrd: initrd, Append: "quiet", LogPath: filepath.Join(dir, "console.log")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Stop)

	res, err := m.WaitFor(ctx, regexp.MustCompile(`^IAD-VM-RESULT: (PASS|FAIL)(.*)$`))
	if err != nil {
		t.Fatalf("%v\n%s", err, m.Tail(80))
	}
	for _, l := range m.Lines() {
		if strings.HasPrefix(l, "IAD-VM-MARK:") {
			t.Log(strings.TrimPrefix(l, "IAD-VM-MARK: "))
		}
	}
	if res[1] != "PASS" {
		t.Fatalf("guest: %s%s\n%s", res[1], res[2], m.Tail(80))
	}
	t.Logf("guest: PASS%s", res[2])
	// At least one cut must have caught the UBI volume mid-update, where
	// the kernel itself refuses the volume.
	if c := regexp.MustCompile(`ubi_corrupted=(\d+)`).FindStringSubmatch(res[2]); c == nil || c[1] == "0" {
		t.Fatalf("no cut left the UBI volume marked corrupted: %s", res[2])
	}
	if err := m.Wait(ctx); err != nil {
		t.Fatalf("QEMU: %v\n%s", err, m.Tail(20))
	}
	if !strings.Contains(strings.Join(m.Lines(), "\n"), "reboot: Power down") {
		t.Fatalf("the guest did not power off\n%s", m.Tail(20))
	}
}
