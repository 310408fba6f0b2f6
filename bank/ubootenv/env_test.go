package ubootenv_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iadsafe/iad-agent/bank/mtd"
	"github.com/iadsafe/iad-agent/bank/ubootenv"
)

const envSize = 0x2000

// envFiles makes n blank (0xFF) copy files and an fw_env.config for them.
func envFiles(t *testing.T, n int) (cfg string, paths []string) {
	t.Helper()
	dir := t.TempDir()
	var lines []string
	for i := range n {
		p := filepath.Join(dir, "env"+string(rune('0'+i))+".img")
		if err := os.WriteFile(p, bytes.Repeat([]byte{0xFF}, envSize), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
		lines = append(lines, p+" 0x0 0x2000")
	}
	cfg = filepath.Join(dir, "fw_env.config")
	if err := os.WriteFile(cfg, []byte("# test\n"+strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return cfg, paths
}

func openEnv(t *testing.T, cfg string) *ubootenv.Env {
	t.Helper()
	e, err := ubootenv.OpenConfig(cfg, filepath.Join(t.TempDir(), "lock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// image builds a copy's bytes: CRC, flags (if redundant), data.
func image(t *testing.T, redundant bool, flags byte, data string) []byte {
	t.Helper()
	img := make([]byte, envSize)
	d := 4
	if redundant {
		d = 5
		img[4] = flags
	}
	copy(img[d:], data)
	binary.LittleEndian.PutUint32(img, crc32.ChecksumIEEE(img[d:]))
	return img
}

func writeFile(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadPicksCopy(t *testing.T) {
	bad := func(b []byte) []byte { b = bytes.Clone(b); b[100] ^= 1; return b }
	tests := []struct {
		name string
		a, b func(t *testing.T) []byte
		want string // value of v, "" for ErrNoEnv
	}{
		{"newer flags", func(t *testing.T) []byte { return image(t, true, 4, "v=a\x00\x00") }, func(t *testing.T) []byte { return image(t, true, 5, "v=b\x00\x00") }, "b"},
		{"newer flags first", func(t *testing.T) []byte { return image(t, true, 9, "v=a\x00\x00") }, func(t *testing.T) []byte { return image(t, true, 8, "v=b\x00\x00") }, "a"},
		{"wrap 255 then 0", func(t *testing.T) []byte { return image(t, true, 0xFF, "v=a\x00\x00") }, func(t *testing.T) []byte { return image(t, true, 0, "v=b\x00\x00") }, "b"},
		{"wrap 0 then 255", func(t *testing.T) []byte { return image(t, true, 0, "v=a\x00\x00") }, func(t *testing.T) []byte { return image(t, true, 0xFF, "v=b\x00\x00") }, "a"},
		{"newer copy corrupt", func(t *testing.T) []byte { return image(t, true, 4, "v=a\x00\x00") }, func(t *testing.T) []byte { return bad(image(t, true, 5, "v=b\x00\x00")) }, "a"},
		{"older copy corrupt", func(t *testing.T) []byte { return bad(image(t, true, 4, "v=a\x00\x00")) }, func(t *testing.T) []byte { return image(t, true, 3, "v=b\x00\x00") }, "b"},
		{"both corrupt", func(t *testing.T) []byte { return bad(image(t, true, 4, "v=a\x00\x00")) }, func(t *testing.T) []byte { return bad(image(t, true, 5, "v=b\x00\x00")) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, p := envFiles(t, 2)
			writeFile(t, p[0], tt.a(t))
			writeFile(t, p[1], tt.b(t))
			v, err := openEnv(t, cfg).Read()
			if tt.want == "" {
				if !errors.Is(err, ubootenv.ErrNoEnv) {
					t.Fatalf("got %v, want ErrNoEnv", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v["v"] != tt.want {
				t.Fatalf("v=%q, want %q", v["v"], tt.want)
			}
		})
	}
}

func TestWriteAlternatesAndWraps(t *testing.T) {
	cfg, p := envFiles(t, 2)
	writeFile(t, p[0], image(t, true, 0xFE, "n=0\x00\x00"))
	writeFile(t, p[1], image(t, true, 0xFD, "n=x\x00\x00"))
	e := openEnv(t, cfg)
	wantFlags := []struct {
		copy  int
		flags byte
	}{{1, 0xFF}, {0, 0x00}, {1, 0x01}}
	for i, w := range wantFlags {
		if err := e.Write(ubootenv.Vars{"n": string(rune('1' + i))}); err != nil {
			t.Fatal(err)
		}
		img := readFile(t, p[w.copy])
		if img[4] != w.flags {
			t.Fatalf("write %d: copy %d flags %#x, want %#x", i, w.copy, img[4], w.flags)
		}
		v, err := e.Read()
		if err != nil || v["n"] != string(rune('1'+i)) {
			t.Fatalf("write %d: read back %v, %v", i, v, err)
		}
	}
}

func TestSingleCopy(t *testing.T) {
	cfg, p := envFiles(t, 1)
	e := openEnv(t, cfg)
	if _, err := e.Read(); !errors.Is(err, ubootenv.ErrNoEnv) {
		t.Fatalf("blank: got %v, want ErrNoEnv", err)
	}
	if err := e.Write(ubootenv.Vars{"a": "1", "b": "x=y"}); err != nil {
		t.Fatal(err)
	}
	img := readFile(t, p[0])
	if !bytes.HasPrefix(img[4:], []byte("a=1\x00b=x=y\x00\x00")) {
		t.Fatalf("data % q", img[4:30])
	}
	v, err := e.Read()
	if err != nil || v["b"] != "x=y" {
		t.Fatalf("got %v %v", v, err)
	}
}

func TestWriteRejects(t *testing.T) {
	cfg, _ := envFiles(t, 1)
	e := openEnv(t, cfg)
	for _, tc := range []struct {
		v    ubootenv.Vars
		want error
	}{
		{ubootenv.Vars{"a=b": "1"}, ubootenv.ErrBadVar},
		{ubootenv.Vars{"": "1"}, ubootenv.ErrBadVar},
		{ubootenv.Vars{"a": "x\x00y"}, ubootenv.ErrBadVar},
		{ubootenv.Vars{"big": strings.Repeat("x", envSize)}, ubootenv.ErrTooLarge},
	} {
		if err := e.Write(tc.v); !errors.Is(err, tc.want) {
			t.Errorf("%q: got %v, want %v", tc.v, err, tc.want)
		}
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		in      string
		want    []ubootenv.Location
		wantErr bool
	}{
		{"/dev/mtd1 0x0 0x10000 0x10000\n/dev/mtd2 0 10000 10000 2\n", []ubootenv.Location{
			{Path: "/dev/mtd1", Size: 0x10000, SectorSize: 0x10000},
			{Path: "/dev/mtd2", Size: 0x10000, SectorSize: 0x10000, Sectors: 2},
		}, false},
		{"# c\n\n/dev/mmcblk0 -0x4000 0x2000\nignored line\n", []ubootenv.Location{{Path: "/dev/mmcblk0", Offset: -0x4000, Size: 0x2000}}, false},
		{"/dev/mmcblk0 0x100000 4000\n", []ubootenv.Location{{Path: "/dev/mmcblk0", Offset: 0x100000, Size: 0x4000}}, false},
		{"a 0 2000\nb 0 2000\nc 0 2000\n", []ubootenv.Location{{Path: "a", Size: 0x2000}, {Path: "b", Size: 0x2000}}, false},
		{"/dev/x zz 0x2000\n", nil, true},
		{"/dev/x 0 0\n", nil, true},
		{"# nothing\n", nil, true},
	}
	for _, tt := range tests {
		got, err := ubootenv.ParseConfig(strings.NewReader(tt.in))
		if (err != nil) != tt.wantErr {
			t.Errorf("%q: err %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if err == nil && !equalLocs(got, tt.want) {
			t.Errorf("%q: got %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func equalLocs(a, b []ubootenv.Location) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReadDefaults(t *testing.T) {
	v, err := ubootenv.ReadDefaults(strings.NewReader("# c\nbootcmd=run a; run b\n\nx=\n"))
	if err != nil || v["bootcmd"] != "run a; run b" || v["x"] != "" || len(v) != 2 {
		t.Fatalf("got %v %v", v, err)
	}
	if _, err := ubootenv.ReadDefaults(strings.NewReader("novalue\n")); !errors.Is(err, ubootenv.ErrBadVar) {
		t.Fatalf("got %v, want ErrBadVar", err)
	}
}

// TestFlashCopies keeps a redundant environment on simulated NOR (boolean
// flags: the old copy is programmed obsolete without an erase) and NAND
// (incremental flags; a bad first sector is skipped).
func TestFlashCopies(t *testing.T) {
	for _, tc := range []struct {
		name string
		info mtd.Info
		bad  []int
	}{
		{"nor", mtd.Info{Type: mtd.NOR, Size: 256 << 10, EraseSize: 64 << 10, WriteSize: 1}, nil},
		{"nand", mtd.Info{Type: mtd.NAND, Size: 1 << 20, EraseSize: 128 << 10, WriteSize: 2048}, []int{0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sim, err := mtd.OpenSim(filepath.Join(t.TempDir(), "f"), mtd.SimOptions{Info: tc.info, BadBlocks: tc.bad})
			if err != nil {
				t.Fatal(err)
			}
			eb := tc.info.EraseSize
			e, err := ubootenv.New(ubootenv.Options{LockFile: "-", Copies: []ubootenv.Copy{
				{Name: "c0", Flash: sim, Offset: 0, Size: envSize, Sectors: 2},
				{Name: "c1", Flash: sim, Offset: 2 * eb, Size: envSize, Sectors: 2},
			}})
			if err != nil {
				t.Fatal(err)
			}
			for i := range 4 {
				if err := e.Write(ubootenv.Vars{"i": string(rune('0' + i))}); err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
				v, err := e.Read()
				if err != nil || v["i"] != string(rune('0'+i)) {
					t.Fatalf("write %d: read %v %v", i, v, err)
				}
			}
			if tc.info.Type == mtd.NOR {
				f := make([]byte, 1)
				sim.ReadAt(f, 4)
				g := make([]byte, 1)
				sim.ReadAt(g, 2*eb+4)
				if f[0]+g[0] != 1 {
					t.Fatalf("NOR flags %d and %d, want one active (1) and one obsolete (0)", f[0], g[0])
				}
			}
		})
	}
}
