package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestStaysSmall keeps the init-stage program free of the agent's
// network and database code.
func TestStaysSmall(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"/agent", "gosnmp", "bbolt", "tftp", "jlaffaye", "net/http"} {
			if strings.Contains(dep, banned) {
				t.Errorf("iad-boot depends on %s", dep)
			}
		}
	}
}

func TestBadConfig(t *testing.T) {
	if got := run([]string{"-config", "/nonexistent/bank.conf"}); got != 1 {
		t.Fatalf("exit %d, want 1", got)
	}
	if got := run([]string{"-bogus"}); got != 2 {
		t.Fatalf("exit %d, want 2", got)
	}
}

func TestMain(m *testing.M) {
	// The exec test runs this binary as iad-boot.
	if os.Getenv("IAD_BOOT_AS_MAIN") == "1" {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// TestExecsChosenBank runs iad-boot (not as PID 1) with exec targets: it
// must exec the chosen bank's program with IAD_BOOT_BANK set, and a
// second start must spend the next try.
func TestExecsChosenBank(t *testing.T) {
	env, err := exec.LookPath("env")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "bank.conf")
	text := "[slot A]\ntype = file\npath = a.img\nsize = 64KiB\n[slot B]\ntype = file\npath = b.img\nsize = 64KiB\n" +
		"[state]\npath = state.json\nboot_counter = bootloader\n[boot]\nexec_A = " + env + "\nexec_B = " + env + "\n"
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		cmd := exec.Command(self, "-config", conf)
		cmd.Env = append(os.Environ(), "IAD_BOOT_AS_MAIN=1")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("start %d: %v", i, err)
		}
		if !strings.Contains(string(out), "\nIAD_BOOT_BANK=A\n") && !strings.HasPrefix(string(out), "IAD_BOOT_BANK=A\n") {
			t.Fatalf("start %d: the exec'd program did not see IAD_BOOT_BANK=A:\n%s", i, out)
		}
	}
	st, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil || !strings.Contains(string(st), `"seq": 3`) {
		t.Fatalf("state after two starts (want seq 3: init + two boots): %s %v", st, err)
	}
}
