package setup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/iadsafe/iad-agent/bank"
	"github.com/iadsafe/iad-agent/bank/block"
	"github.com/iadsafe/iad-agent/bank/mtd"
	"github.com/iadsafe/iad-agent/bank/ubi"
	"github.com/iadsafe/iad-agent/bank/ubootenv"
)

// Opened is a configuration's storage, ready for bank.New.
type Opened struct {
	Devices map[bank.Slot]bank.Device
	Store   bank.StateStore
	// Env is the U-Boot environment when the state lives there.
	Env     *ubootenv.Env
	closers []io.Closer
}

// Options returns bank options for the opened storage; the caller adds
// Logger and Factory.
func (o *Opened) Options(c *Config) bank.Options {
	return bank.Options{
		Devices:          o.Devices,
		Store:            o.Store,
		DefaultBootLimit: c.State.BootLimit,
		BootCounted:      c.CountedByBootloader(),
	}
}

// Close syncs and closes every device.
func (o *Opened) Close() error {
	var errs []error
	for _, d := range o.Devices {
		errs = append(errs, d.Sync())
	}
	for i := len(o.closers) - 1; i >= 0; i-- {
		errs = append(errs, o.closers[i].Close())
	}
	o.closers = nil
	return errors.Join(errs...)
}

// Open opens the slots and the state store of c.
func (c *Config) Open() (o *Opened, err error) {
	o = &Opened{Devices: map[bank.Slot]bank.Device{}}
	defer func() {
		if err != nil {
			o.Close()
		}
	}()
	for _, s := range []bank.Slot{bank.SlotA, bank.SlotB} {
		d, closer, err := openSlot(c.Slots[s])
		if err != nil {
			return nil, fmt.Errorf("setup: slot %v: %w", s, err)
		}
		o.Devices[s] = d
		o.closers = append(o.closers, closer)
	}
	switch c.State.Type {
	case "file":
		o.Store = bank.NewFileStore(c.State.Path)
	case "uboot", "uboot-text":
		var backend ubootenv.Backend
		if c.State.Type == "uboot" {
			env, err := ubootenv.OpenConfig(c.State.FWEnvConfig, c.State.LockFile)
			if err != nil {
				return nil, err
			}
			o.Env = env
			o.closers = append(o.closers, env)
			backend = env
		} else {
			backend = ubootenv.OpenText(c.State.Path)
		}
		opts := ubootenv.StoreOptions{
			Names: ubootenv.Names{
				BootBank:         c.State.VarBootBank,
				UpgradeAvailable: c.State.VarUpgradeAvailable,
				BootCount:        c.State.VarBootCount,
				BootLimit:        c.State.VarBootLimit,
			},
			BankValues: [2]string{c.State.BankA, c.State.BankB},
		}
		if c.State.Type == "uboot-text" {
			// The file holds only the boot state, not the board's
			// environment: a blank device may start from nothing.
			opts.Defaults = ubootenv.Vars{}
		}
		if c.State.DefaultEnv != "" {
			f, err := os.Open(c.State.DefaultEnv)
			if err != nil {
				return nil, fmt.Errorf("setup: default environment: %w", err)
			}
			opts.Defaults, err = ubootenv.ReadDefaults(f)
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("setup: %s: %w", c.State.DefaultEnv, err)
			}
		}
		var err error
		if o.Store, err = ubootenv.NewStore(backend, opts); err != nil {
			return nil, err
		}
	}
	return o, nil
}

type slotDevice interface {
	bank.Device
	io.Closer
}

func openSlot(sc SlotConfig) (bank.Device, io.Closer, error) {
	var d slotDevice
	var err error
	switch sc.Type {
	case TypeFile:
		d, err = bank.OpenFile(sc.Path, sc.Size)
	case TypeBlock:
		// The running software's own bank is mounted: it opens
		// read-only (verifiable, never written), the other one writable.
		d, err = block.Open(block.Options{Path: sc.Path, Offset: sc.Offset, Size: sc.Size, ReadOnlyIfInUse: true})
	case TypeMTD:
		path := sc.Path
		if path == "" {
			if path, err = mtdByName("/proc/mtd", sc.Name); err != nil {
				return nil, nil, err
			}
		}
		var f *mtd.Device
		if f, err = mtd.Open(path); err != nil {
			return nil, nil, err
		}
		if d, err = mtd.NewSlot(f); err != nil {
			f.Close()
		}
	case TypeMTDSim:
		typ := mtd.NOR
		if sc.Flash == "nand" {
			typ = mtd.NAND
		}
		page := sc.PageSize
		if page == 0 {
			page = 1
		}
		var f *mtd.Sim
		f, err = mtd.OpenSim(sc.Path, mtd.SimOptions{Info: mtd.Info{Type: typ, Size: sc.Size, EraseSize: sc.EraseSize, WriteSize: page}, BadBlocks: sc.BadBlocks})
		if err != nil {
			return nil, nil, err
		}
		if d, err = mtd.NewSlot(f); err != nil {
			f.Close()
		}
	case TypeUBI:
		path := sc.Path
		if path == "" {
			if path, err = ubi.FindVolume(sc.UBI, sc.Name); err != nil {
				return nil, nil, err
			}
		}
		d, err = ubi.OpenVolume(path)
	default:
		err = fmt.Errorf("%w: type %q", ErrConfig, sc.Type)
	}
	if err != nil {
		return nil, nil, err
	}
	return d, d, nil
}

// mtdByName finds /dev/mtdN for a partition name in /proc/mtd, whose
// lines read: mtd2: 00400000 00020000 "rootfs-a".
func mtdByName(procMTD, name string) (string, error) {
	f, err := os.Open(procMTD)
	if err != nil {
		return "", fmt.Errorf("setup: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		dev, rest, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.HasSuffix(strings.TrimSpace(rest), `"`+name+`"`) {
			return "/dev/" + dev, nil
		}
	}
	return "", fmt.Errorf("setup: no MTD partition named %q in %s", name, procMTD)
}
