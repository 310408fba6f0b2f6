package ubootenv_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/iadsafe/iad-agent/bank"
	"github.com/iadsafe/iad-agent/bank/ubootenv"
)

func TestParseText(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want ubootenv.Vars
	}{
		{"export output", "boot_bank=A\nbootcount=0\n", ubootenv.Vars{"boot_bank": "A", "bootcount": "0"}},
		{"no final newline", "a=1\nb=2", ubootenv.Vars{"a": "1", "b": "2"}},
		{"comments and blanks", "# state\n\n  \ta=1\n#b=2\n", ubootenv.Vars{"a": "1"}},
		{"name= deletes", "a=1\nb=2\na=\n", ubootenv.Vars{"b": "2"}},
		{"bare name deletes", "a=1\na\nb=2", ubootenv.Vars{"b": "2"}},
		{"escaped newline and backslash", "a=x\\\ny\nb=c:\\\\d\n", ubootenv.Vars{"a": "x\ny", "b": `c:\d`}},
		{"equals in value", "bootargs=console=ttyAMA0 root=/dev/vda2\n", ubootenv.Vars{"bootargs": "console=ttyAMA0 root=/dev/vda2"}},
		{"NUL ends the text", "a=1\n\x00b=2\n", ubootenv.Vars{"a": "1"}},
		{"json value", `iad_slot_a={"state":"valid","size":3}` + "\n", ubootenv.Vars{"iad_slot_a": `{"state":"valid","size":3}`}},
		{"later wins", "a=1\na=2\n", ubootenv.Vars{"a": "2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ubootenv.ParseText([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if _, err := ubootenv.ParseText([]byte("=x\n")); !errors.Is(err, ubootenv.ErrBadVar) {
		t.Errorf("a value without a name: got %v, want ErrBadVar", err)
	}
}

func TestFormatText(t *testing.T) {
	got, err := ubootenv.FormatText(ubootenv.Vars{"b": "2", "a": "x\ny", "c": `p\q`, "empty": ""})
	if err != nil {
		t.Fatal(err)
	}
	if want := "a=x\\\ny\nb=2\nc=p\\\\q\n"; string(got) != want {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, bad := range []ubootenv.Vars{{"a b": "1"}, {"#a": "1"}, {"a=b": "1"}, {"a": "x\x00"}} {
		if _, err := ubootenv.FormatText(bad); !errors.Is(err, ubootenv.ErrBadVar) {
			t.Errorf("FormatText(%q): got %v, want ErrBadVar", bad, err)
		}
	}
}

func FuzzText(f *testing.F) {
	for _, s := range []string{"a=1\n", "a=x\\\ny\n#c\n b=\n", "=\n", "x\x00y=1", "a=\\"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ubootenv.ParseText(b)
		if err != nil {
			return
		}
		out, err := ubootenv.FormatText(v)
		if err != nil {
			return // names U-Boot reads but that cannot be written back as text
		}
		back, err := ubootenv.ParseText(out)
		if err != nil {
			t.Fatalf("re-parsing %q: %v", out, err)
		}
		for k, x := range v {
			if x == "" {
				delete(v, k)
			}
		}
		if !maps.Equal(back, v) {
			t.Fatalf("round trip of %q: got %q, want %q", b, back, v)
		}
	})
}

func TestTextFileReadWrite(t *testing.T) {
	p := filepath.Join(t.TempDir(), "iadstate.txt")
	f := ubootenv.OpenText(p)
	if _, err := f.Read(); !errors.Is(err, ubootenv.ErrNoEnv) {
		t.Fatalf("missing file: got %v, want ErrNoEnv", err)
	}
	if err := os.WriteFile(p, []byte("# nothing\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Read(); !errors.Is(err, ubootenv.ErrNoEnv) {
		t.Fatalf("file without variables: got %v, want ErrNoEnv", err)
	}
	want := ubootenv.Vars{"boot_bank": "B", "reason": "line1\nline2"}
	if err := f.Write(want); err != nil {
		t.Fatal(err)
	}
	got, err := f.Read()
	if err != nil || !maps.Equal(got, want) {
		t.Fatalf("read back: got %q, %v; want %q", got, err, want)
	}
	if _, err := os.Stat(p + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

// TestStoreOnTextFile runs the bank's boot state in a text file the way
// the VM's boot.scr (scripts/vm/firmware) treats it: U-Boot counts a try
// per boot while upgrade_available=1 and, past bootlimit, sets boot_bank
// back to iad_active and upgrade_available to 0.
func TestStoreOnTextFile(t *testing.T) {
	ctx := context.Background()
	p := filepath.Join(t.TempDir(), "iadstate.txt")
	text := ubootenv.OpenText(p)
	store, err := ubootenv.NewStore(text, ubootenv.StoreOptions{Defaults: ubootenv.Vars{}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	devs := map[bank.Slot]bank.Device{}
	for _, s := range []bank.Slot{bank.SlotA, bank.SlotB} {
		d, err := bank.OpenFile(filepath.Join(dir, s.String()), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		devs[s] = d
	}
	open := func() (*bank.Banks, bank.BootResult) {
		t.Helper()
		b, err := bank.New(ctx, bank.Options{Devices: devs, Store: store, Factory: bank.SlotInfo{Version: "1"}, BootCounted: true})
		if err != nil {
			t.Fatal(err)
		}
		res, err := b.Boot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return b, res
	}
	// What boot.scr does at each boot, on the file's variables.
	uboot := func() string {
		t.Helper()
		v, err := text.Read()
		if err != nil {
			t.Fatal(err)
		}
		if v["upgrade_available"] == "1" {
			n := atoi(t, v["bootcount"]) + 1
			v["bootcount"] = strconv.Itoa(n)
			if n > atoi(t, v["bootlimit"]) {
				v["boot_bank"] = v["iad_active"]
				v["upgrade_available"] = "0"
			}
			if err := text.Write(v); err != nil {
				t.Fatal(err)
			}
		}
		return v["boot_bank"]
	}

	b, res := open()
	if res.Slot != bank.SlotA || res.Trial {
		t.Fatalf("first boot: got %+v, want A", res)
	}
	if err := b.SetBootLimit(ctx, 2); err != nil {
		t.Fatal(err)
	}
	installVersion(t, b, "2")
	if err := b.Arm(ctx, bank.SlotB); err != nil {
		t.Fatal(err)
	}
	for boot := 1; boot <= 2; boot++ {
		if got := uboot(); got != "B" {
			t.Fatalf("trial boot %d: U-Boot boots %s, want B", boot, got)
		}
		if _, res = open(); res.Slot != bank.SlotB || !res.Trial {
			t.Fatalf("trial boot %d: got %+v, want B on trial", boot, res)
		}
	}
	// The third boot is past the limit: U-Boot goes back to A.
	if got := uboot(); got != "A" {
		t.Fatalf("after the tries: U-Boot boots %s, want A", got)
	}
	b, res = open()
	if res.Slot != bank.SlotA || !res.Reverted || res.FailedSlot != bank.SlotB {
		t.Fatalf("after the tries: got %+v, want A, reverted from B", res)
	}
	if st := b.Snapshot(); st.Slots[bank.SlotB].State != bank.SlotBad || st.Trial != 0 {
		t.Fatalf("after the revert: got slot B %s, trial %v; want bad, none", st.Slots[bank.SlotB].State, st.Trial)
	}
	// A commit path: arm again, one trial boot, commit.
	installVersion(t, b, "3")
	if err := b.Arm(ctx, bank.SlotB); err != nil {
		t.Fatal(err)
	}
	uboot()
	b, res = open()
	if ok, err := b.Commit(ctx); err != nil || !ok || res.Slot != bank.SlotB {
		t.Fatalf("commit on B: %v %v (boot %+v)", ok, err, res)
	}
	if got := uboot(); got != "B" {
		t.Fatalf("after the commit: U-Boot boots %s, want B", got)
	}
	v, _ := text.Read()
	if v["upgrade_available"] != "0" || v["iad_active"] != "B" {
		t.Errorf("after the commit: %q", v)
	}
}

func installVersion(t *testing.T, b *bank.Banks, version string) {
	t.Helper()
	data := []byte("payload of " + version)
	if _, err := b.Install(context.Background(), bank.SlotInfo{Version: version, Size: int64(len(data)), Digest: sha256.Sum256(data)}, bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q is not a decimal number", s)
	}
	return n
}
