// Package mtd makes raw flash (NOR or NAND behind Linux's /dev/mtdN) a
// bank slot: it erases each erase block before programming it, skips the
// blocks a NAND chip marks bad (the slot's usable size counts only good
// blocks), programs whole pages, and reads back through the same
// bad-block map so that the bank can verify what it wrote.
//
// The raw chip sits behind the small Flash interface: Open reaches a real
// /dev/mtdN through ioctls (Linux only), and Sim is a file-backed chip
// that enforces what real flash enforces (programming only clears bits;
// a NAND page is programmed once per erase; bad blocks refuse erase and
// program) for hosts and tests.
//
// The package must never program a block it has not erased in the same
// write sequence, never touch a block marked bad, and never report a
// usable size that includes bad blocks.
package mtd

import (
	"errors"
	"fmt"
	"io"
)

// Errors returned by the package; match them with errors.Is.
var (
	ErrNotErased     = errors.New("mtd: program would set bits from 0 to 1 (block not erased)")
	ErrBadBlock      = errors.New("mtd: bad block")
	ErrAlignment     = errors.New("mtd: offset or length not aligned to the flash geometry")
	ErrRange         = errors.New("mtd: beyond the end of the flash")
	ErrNotSequential = errors.New("mtd: slot writes must be sequential from offset 0")
	ErrGeometry      = errors.New("mtd: bad flash geometry")
	ErrUnsupported   = errors.New("mtd: raw flash needs Linux")
)

// Type is the kind of chip. The numbers are Linux's MTD_* types.
type Type uint8

const (
	NOR     Type = 3 // MTD_NORFLASH
	NAND    Type = 4 // MTD_NANDFLASH
	MLCNAND Type = 8 // MTD_MLCNANDFLASH
)

// IsNAND reports whether the chip can have bad blocks.
func (t Type) IsNAND() bool { return t == NAND || t == MLCNAND }

func (t Type) String() string {
	switch t {
	case NOR:
		return "nor"
	case NAND:
		return "nand"
	case MLCNAND:
		return "mlc-nand"
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Info is a chip's geometry, as MEMGETINFO reports it.
type Info struct {
	Type      Type
	Size      int64 // bytes
	EraseSize int64 // bytes per erase block
	WriteSize int64 // bytes per program unit (a NAND page; 1 on most NOR)
}

func (i Info) validate() error {
	switch {
	case i.EraseSize <= 0 || i.WriteSize <= 0 || i.Size <= 0:
		return fmt.Errorf("%w: size %d, erase block %d, page %d", ErrGeometry, i.Size, i.EraseSize, i.WriteSize)
	case i.EraseSize%i.WriteSize != 0 || i.Size%i.EraseSize != 0:
		return fmt.Errorf("%w: size %d, erase block %d, page %d do not divide", ErrGeometry, i.Size, i.EraseSize, i.WriteSize)
	}
	return nil
}

// Flash is a raw chip (or one partition of it). Offsets are physical.
type Flash interface {
	Info() Info
	// ReadAt reads raw bytes.
	io.ReaderAt
	// WriteAt programs bytes; on NAND offset and length are multiples of
	// WriteSize and the pages must be erased.
	io.WriterAt
	// Erase sets the erase block that starts at off to all ones.
	Erase(off int64) error
	// IsBad reports whether the erase block at off is marked bad.
	IsBad(off int64) (bool, error)
	// Sync makes programmed data durable (a no-op on a real chip, whose
	// program operations complete before they return).
	Sync() error
	Close() error
}
