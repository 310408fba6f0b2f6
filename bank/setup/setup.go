// Package setup reads the bank configuration file, the one place that
// says which storage backs each slot (a file, a block device range, raw
// MTD flash, a UBI volume), where the boot state lives (a JSON file or
// the U-Boot environment), who spends the trial tries, and what iad-boot
// starts for each bank; and it opens all of it for bank.New.
//
// The format is INI-like: "[section]" lines, "key = value" lines, and
// comments from "#" to the end of a line. Sections: [slot A], [slot B],
// [state], and [boot] (iad-boot only). Relative paths are relative to the
// configuration file's directory. See README.md for examples.
//
// The package must never open a slot it could not check (for block
// devices: not in use), and never accept an unknown key: a typo in a
// device path or type must fail loudly rather than fall back to a
// default.
package setup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/iadsafe/iad-agent/bank"
)

// ErrConfig wraps every problem found in a configuration file.
var ErrConfig = errors.New("setup: bad bank configuration")

// Slot types.
const (
	TypeFile   = "file"    // a regular file (development host)
	TypeBlock  = "block"   // a block device or a byte range of one
	TypeMTD    = "mtd"     // raw flash, /dev/mtdN
	TypeMTDSim = "mtd-sim" // simulated raw flash in a file (hosts, tests)
	TypeUBI    = "ubi"     // a UBI volume, /dev/ubiX_Y
)

// SlotConfig is a [slot A] or [slot B] section.
type SlotConfig struct {
	Type   string
	Path   string
	Offset int64 // block: byte offset of the range
	Size   int64 // file: size; block: range size (0: to the end); mtd-sim: chip size
	// mtd-sim geometry.
	Flash     string // "nor" or "nand"
	EraseSize int64
	PageSize  int64
	BadBlocks []int
	// mtd: a partition name from /proc/mtd instead of Path; ubi: a volume
	// name on UBI device UBI instead of Path.
	Name string
	UBI  int
}

// StateConfig is the [state] section.
type StateConfig struct {
	Type string // "file" (default), "uboot" or "uboot-text"
	// Path is the JSON state file (file) or the text environment file a
	// boot script imports and exports (uboot-text).
	Path string
	// uboot:
	FWEnvConfig                                                  string // default /etc/fw_env.config
	DefaultEnv                                                   string // default environment for a blank device (optional)
	LockFile                                                     string // default /var/lock/fw_printenv.lock; "-" none
	VarBootBank, VarUpgradeAvailable, VarBootCount, VarBootLimit string
	BankA, BankB                                                 string // values of the boot_bank variable
	// BootCounter says who spends trial tries: "agent" (default for a
	// file state) or "bootloader" (default for uboot: U-Boot or iad-boot).
	BootCounter string
	BootLimit   int // boot limit of a fresh state; 0: bank.DefaultBootLimit
}

// Target is what iad-boot starts for a bank.
type Target struct {
	// Root is a device to mount read-only as the new root (then Init is
	// executed there after switch_root), or "" to exec Exec in place.
	Root    string
	FSType  string // default squashfs
	Options string // mount data, e.g. "ro"
	Init    string // default /sbin/init
	// Exec is a program (with arguments) to execute without changing
	// root; used when Root is empty.
	Exec []string
}

// BootConfig is the [boot] section.
type BootConfig struct {
	// Fallback is the bank iad-boot starts when the boot state cannot be
	// read at all; default A.
	Fallback bank.Slot
	Targets  map[bank.Slot]Target
}

// Config is a parsed configuration file.
type Config struct {
	Path  string
	Slots map[bank.Slot]SlotConfig
	State StateConfig
	Boot  BootConfig
}

// CountedByBootloader reports whether a boot stage spends the tries.
func (c *Config) CountedByBootloader() bool { return c.State.BootCounter == "bootloader" }

// ParseFile reads the configuration file at path.
func ParseFile(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("setup: %w", err)
	}
	defer f.Close()
	return Parse(f, path)
}

// Parse reads a configuration; path names it in errors and anchors
// relative paths.
func Parse(r io.Reader, path string) (*Config, error) {
	c := &Config{Path: path, Slots: map[bank.Slot]SlotConfig{}, Boot: BootConfig{Targets: map[bank.Slot]Target{}}}
	dir := filepath.Dir(path)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) || p == "-" {
			return p
		}
		return filepath.Join(dir, p)
	}
	var section string
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		bad := func(format string, a ...any) error {
			return fmt.Errorf("%w: %s:%d: %s", ErrConfig, path, n, fmt.Sprintf(format, a...))
		}
		if strings.HasPrefix(line, "[") {
			if !strings.HasSuffix(line, "]") {
				return nil, bad("unterminated section %q", line)
			}
			section = strings.Join(strings.Fields(strings.ToLower(line[1:len(line)-1])), " ")
			switch section {
			case "slot a", "slot b", "state", "boot":
			default:
				return nil, bad("unknown section [%s] (want [slot A], [slot B], [state] or [boot])", section)
			}
			if seen[section] {
				return nil, bad("section [%s] twice", section)
			}
			seen[section] = true
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, bad("%q is not key = value", line)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		var err error
		switch section {
		case "":
			return nil, bad("%s outside a section", key)
		case "slot a", "slot b":
			s := bank.SlotA
			if section == "slot b" {
				s = bank.SlotB
			}
			sl := c.Slots[s]
			err = sl.set(key, value, abs)
			c.Slots[s] = sl
		case "state":
			err = c.State.set(key, value, abs)
		case "boot":
			err = c.Boot.set(key, value)
		}
		if err != nil {
			return nil, bad("%v", err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("setup: reading %s: %w", path, err)
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrConfig, path, err)
	}
	return c, nil
}

// ParseSize reads a byte count: decimal or 0x hex, with an optional KiB,
// MiB or GiB suffix.
func ParseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(v), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 0, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q: want a number (decimal or 0x hex) with optional KiB, MiB or GiB", s)
	}
	return n * mult, nil
}

func (s *SlotConfig) set(key, value string, abs func(string) string) error {
	var err error
	switch key {
	case "type":
		s.Type = value
	case "path":
		s.Path = abs(value)
	case "offset":
		s.Offset, err = ParseSize(value)
	case "size":
		s.Size, err = ParseSize(value)
	case "flash":
		s.Flash = value
	case "erase_size":
		s.EraseSize, err = ParseSize(value)
	case "page_size":
		s.PageSize, err = ParseSize(value)
	case "bad_blocks":
		for _, f := range strings.FieldsFunc(value, func(r rune) bool { return r == ',' || r == ' ' }) {
			b, e := strconv.Atoi(f)
			if e != nil || b < 0 {
				return fmt.Errorf("bad_blocks: %q is not a block number", f)
			}
			s.BadBlocks = append(s.BadBlocks, b)
		}
	case "name":
		s.Name = value
	case "ubi":
		s.UBI, err = strconv.Atoi(value)
	default:
		return fmt.Errorf("unknown slot key %q", key)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

func (s *StateConfig) set(key, value string, abs func(string) string) error {
	var err error
	switch key {
	case "type":
		s.Type = value
	case "path":
		s.Path = abs(value)
	case "fw_env_config":
		s.FWEnvConfig = abs(value)
	case "default_env":
		s.DefaultEnv = abs(value)
	case "lock_file":
		s.LockFile = abs(value)
	case "var_boot_bank":
		s.VarBootBank = value
	case "var_upgrade_available":
		s.VarUpgradeAvailable = value
	case "var_bootcount":
		s.VarBootCount = value
	case "var_bootlimit":
		s.VarBootLimit = value
	case "bank_a_value":
		s.BankA = value
	case "bank_b_value":
		s.BankB = value
	case "boot_counter":
		s.BootCounter = value
	case "boot_limit":
		s.BootLimit, err = strconv.Atoi(value)
	default:
		return fmt.Errorf("unknown state key %q", key)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", key, err)
	}
	return nil
}

func (b *BootConfig) set(key, value string) error {
	if key == "fallback" {
		var s bank.Slot
		if err := s.UnmarshalText([]byte(value)); err != nil || s == 0 {
			return fmt.Errorf("fallback %q: want A or B", value)
		}
		b.Fallback = s
		return nil
	}
	field, which, ok := strings.Cut(key, "_")
	var s bank.Slot
	if !ok || s.UnmarshalText([]byte(strings.ToUpper(which))) != nil || s == 0 {
		return fmt.Errorf("unknown boot key %q (want fallback, or root_A, fstype_A, options_A, init_A, exec_A and the same for B)", key)
	}
	t := b.Targets[s]
	switch field {
	case "root":
		t.Root = value
	case "fstype":
		t.FSType = value
	case "options":
		t.Options = value
	case "init":
		t.Init = value
	case "exec":
		t.Exec = strings.Fields(value)
	default:
		return fmt.Errorf("unknown boot key %q", key)
	}
	b.Targets[s] = t
	return nil
}

func (c *Config) validate() error {
	for _, s := range []bank.Slot{bank.SlotA, bank.SlotB} {
		sl, ok := c.Slots[s]
		if !ok {
			return fmt.Errorf("no [slot %v] section", s)
		}
		switch sl.Type {
		case TypeFile:
			if sl.Size <= 0 {
				return fmt.Errorf("slot %v: a file slot needs size", s)
			}
		case TypeBlock:
		case TypeMTD:
			if sl.Path == "" && sl.Name == "" {
				return fmt.Errorf("slot %v: an mtd slot needs path or name", s)
			}
			continue
		case TypeMTDSim:
			if sl.Flash != "nor" && sl.Flash != "nand" {
				return fmt.Errorf("slot %v: flash %q: want nor or nand", s, sl.Flash)
			}
			if sl.Size <= 0 || sl.EraseSize <= 0 {
				return fmt.Errorf("slot %v: mtd-sim needs size and erase_size", s)
			}
		case TypeUBI:
			if sl.Path == "" && sl.Name == "" {
				return fmt.Errorf("slot %v: a ubi slot needs path or name", s)
			}
			continue
		case "":
			return fmt.Errorf("slot %v: no type", s)
		default:
			return fmt.Errorf("slot %v: unknown type %q (want file, block, mtd, mtd-sim or ubi)", s, sl.Type)
		}
		if sl.Path == "" {
			return fmt.Errorf("slot %v: no path", s)
		}
	}
	if a, b := c.Slots[bank.SlotA], c.Slots[bank.SlotB]; a.Path != "" && a.Path == b.Path {
		// Only two ranges of one block device may share a path, and
		// they must not overlap.
		if a.Type != TypeBlock || b.Type != TypeBlock {
			return errors.New("slots A and B have the same path")
		}
		if a.Size == 0 || b.Size == 0 || (a.Offset < b.Offset+b.Size && b.Offset < a.Offset+a.Size) {
			return fmt.Errorf("slots A and B are overlapping ranges of %s (give both an offset and a size)", a.Path)
		}
	}
	st := &c.State
	switch st.Type {
	case "", "file":
		st.Type = "file"
		if st.Path == "" {
			return errors.New("[state] type file needs path")
		}
		if st.BootCounter == "" {
			st.BootCounter = "agent"
		}
	case "uboot":
		if st.FWEnvConfig == "" {
			st.FWEnvConfig = "/etc/fw_env.config"
		}
		if st.BootCounter == "" {
			st.BootCounter = "bootloader"
		}
	case "uboot-text":
		if st.Path == "" {
			return errors.New("[state] type uboot-text needs path (the file the boot script imports)")
		}
		if st.BootCounter == "" {
			st.BootCounter = "bootloader"
		}
	default:
		return fmt.Errorf("[state] type %q: want file, uboot or uboot-text", st.Type)
	}
	if st.BootCounter != "agent" && st.BootCounter != "bootloader" {
		return fmt.Errorf("[state] boot_counter %q: want agent or bootloader", st.BootCounter)
	}
	if st.BootLimit != 0 && (st.BootLimit < bank.MinBootLimit || st.BootLimit > bank.MaxBootLimit) {
		return fmt.Errorf("[state] boot_limit %d: want %d..%d", st.BootLimit, bank.MinBootLimit, bank.MaxBootLimit)
	}
	if c.Boot.Fallback == 0 {
		c.Boot.Fallback = bank.SlotA
	}
	for s, t := range c.Boot.Targets {
		if t.Root == "" && len(t.Exec) == 0 {
			return fmt.Errorf("[boot] bank %v needs root_%v or exec_%v", s, s, s)
		}
		if t.Root != "" && len(t.Exec) > 0 {
			return fmt.Errorf("[boot] bank %v has both root and exec", s)
		}
		if t.FSType == "" {
			t.FSType = "squashfs"
		}
		if t.Init == "" {
			t.Init = "/sbin/init"
		}
		c.Boot.Targets[s] = t
	}
	return nil
}
