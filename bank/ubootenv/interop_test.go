package ubootenv_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iadsafe/iad-agent/agent/itest"
	"github.com/iadsafe/iad-agent/bank/ubootenv"
)

// The interop tests drive Debian's fw_printenv and fw_setenv (package
// libubootenv-tool) on the same image files as the package.

func printenv(t *testing.T, cfg string) ubootenv.Vars {
	t.Helper()
	bin := itest.RequireTool(t, "fw_printenv")
	var out, errb bytes.Buffer
	cmd := exec.Command(bin, "-c", cfg)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil || strings.Contains(errb.String(), "Cannot read") {
		t.Fatalf("fw_printenv -c %s: %v\n%s%s", cfg, err, out.String(), errb.String())
	}
	v := ubootenv.Vars{}
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("fw_printenv line %q", line)
		}
		v[name] = value
	}
	return v
}

func setenv(t *testing.T, cfg string, args ...string) {
	t.Helper()
	bin := itest.RequireTool(t, "fw_setenv")
	out, err := exec.Command(bin, append([]string{"-c", cfg}, args...)...).CombinedOutput()
	// With -f on a blank device "Cannot read environment, using default"
	// is expected; otherwise it means fw_setenv could not read ours.
	if err != nil || (args[0] != "-f" && strings.Contains(string(out), "Cannot read")) {
		t.Fatalf("fw_setenv %q: %v\n%s", args, err, out)
	}
}

func defaultsFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "defaults")
	writeFile(t, p, []byte("bootcmd=run distro_bootcmd\nbootdelay=2\n"))
	return p
}

func sameVars(t *testing.T, what string, got, want ubootenv.Vars) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d variables %v, want %d %v", what, len(got), got, len(want), want)
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Fatalf("%s: %s=%q, want %q (all: %v)", what, k, g, w, got)
		}
	}
}

// TestInteropBothWays alternates writers: fw_setenv creates the
// environment, we change it, fw_setenv changes it again, and each side
// reads exactly what the other wrote, for single and redundant copies.
func TestInteropBothWays(t *testing.T) {
	for _, n := range []int{1, 2} {
		t.Run(fmt.Sprintf("%d copies", n), func(t *testing.T) {
			cfg, paths := envFiles(t, n)
			setenv(t, cfg, "-f", defaultsFile(t), "serial#", "IAD-0001")
			e := openEnv(t, cfg)
			want := ubootenv.Vars{"bootcmd": "run distro_bootcmd", "bootdelay": "2", "serial#": "IAD-0001"}
			for round := range 4 {
				got, err := e.Read()
				if err != nil {
					t.Fatalf("round %d: our read: %v", round, err)
				}
				sameVars(t, fmt.Sprintf("round %d: we read fw_setenv's", round), got, want)

				want["ours"] = fmt.Sprintf("value %d with = and spaces", round)
				want["bootdelay"] = fmt.Sprint(round)
				if err := e.Write(want.Clone()); err != nil {
					t.Fatal(err)
				}
				sameVars(t, fmt.Sprintf("round %d: fw_printenv reads ours", round), printenv(t, cfg), want)

				want["theirs"] = fmt.Sprint(round)
				setenv(t, cfg, "theirs", fmt.Sprint(round))
			}
			if n == 2 {
				a, b := readFile(t, paths[0])[4], readFile(t, paths[1])[4]
				if d := a - b; d != 1 && d != 0xFF {
					t.Fatalf("flags %d and %d after alternating writes, want neighbours", a, b)
				}
			}
		})
	}
}

// TestInteropCorruptCopy flips a byte in the current copy: both readers
// fall back to the other copy, and the next write (by either side) goes
// over the corrupted copy.
func TestInteropCorruptCopy(t *testing.T) {
	for _, writer := range []string{"fw_setenv", "ours"} {
		t.Run("then "+writer+" writes", func(t *testing.T) {
			cfg, paths := envFiles(t, 2)
			setenv(t, cfg, "-f", defaultsFile(t), "gen", "1")
			setenv(t, cfg, "gen", "2") // copy 0 holds gen=2 (flags 1), copy 1 gen=1 (flags 0)
			img := readFile(t, paths[0])
			if img[4] != 1 {
				t.Fatalf("copy 0 flags %d, want 1", img[4])
			}
			img[20] ^= 0x55
			writeFile(t, paths[0], img)

			e := openEnv(t, cfg)
			v, err := e.Read()
			if err != nil || v["gen"] != "1" {
				t.Fatalf("our read with copy 0 corrupt: %v %v, want gen=1", v, err)
			}
			if p := printenv(t, cfg); p["gen"] != "1" {
				t.Fatalf("fw_printenv with copy 0 corrupt: gen=%q, want 1", p["gen"])
			}
			if writer == "ours" {
				v["gen"] = "3"
				if err := e.Write(v); err != nil {
					t.Fatal(err)
				}
			} else {
				setenv(t, cfg, "gen", "3")
			}
			if img := readFile(t, paths[0]); img[4] != 1 {
				t.Fatalf("rewritten copy 0 flags %d, want 1 (copy 1's 0 plus one)", img[4])
			}
			if p := printenv(t, cfg); p["gen"] != "3" {
				t.Fatalf("fw_printenv: gen=%q, want 3", p["gen"])
			}
			if v, err := e.Read(); err != nil || v["gen"] != "3" {
				t.Fatalf("our read: %v %v, want gen=3", v, err)
			}
		})
	}
}

// TestInteropFlagWrap starts the copies at flags 0xFE and 0xFD and lets
// the two sides alternate across the wrap from 0xFF to 0x00.
func TestInteropFlagWrap(t *testing.T) {
	cfg, paths := envFiles(t, 2)
	writeFile(t, paths[0], image(t, true, 0xFE, "n=0\x00bootcmd=boot\x00\x00"))
	writeFile(t, paths[1], image(t, true, 0xFD, "n=old\x00bootcmd=boot\x00\x00"))
	e := openEnv(t, cfg)
	wantFlags := []byte{0xFF, 0x00, 0x01, 0x02}
	for i, wf := range wantFlags {
		n := fmt.Sprint(i + 1)
		if i%2 == 0 {
			if err := e.Write(ubootenv.Vars{"n": n, "bootcmd": "boot"}); err != nil {
				t.Fatal(err)
			}
			if p := printenv(t, cfg); p["n"] != n {
				t.Fatalf("step %d: fw_printenv n=%q, want %s", i, p["n"], n)
			}
		} else {
			setenv(t, cfg, "n", n)
			if v, err := e.Read(); err != nil || v["n"] != n {
				t.Fatalf("step %d: our read %v %v, want n=%s", i, v, err, n)
			}
		}
		target := paths[(i+1)%2]
		if got := readFile(t, target)[4]; got != wf {
			t.Fatalf("step %d: %s flags %#x, want %#x", i, filepath.Base(target), got, wf)
		}
	}
}

func TestMain(m *testing.M) { os.Exit(itest.Main(m)) }
