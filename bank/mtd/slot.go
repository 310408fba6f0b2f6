package mtd

import (
	"fmt"
	"io"
)

// Slot is a bank.Device on raw flash. Logical offsets map onto the good
// erase blocks in order, so a slot on NAND with bad blocks is smaller
// than its partition.
//
// Writes form a sequence: the first starts at offset 0 (or BeginUpdate
// starts one) and each next one starts where the last ended. An erase
// block is erased when the sequence first enters it; whole pages are
// programmed as they fill, and Sync programs the last partial page padded
// with 0xFF, which ends the sequence.
type Slot struct {
	flash  Flash
	info   Info
	blocks []int64 // physical offsets of the good erase blocks
	bad    int

	erased  []bool // per logical block: erased in this sequence
	cursor  int64  // next logical offset of the sequence
	page    []byte // the partial page not yet programmed
	pending int
	sealed  bool // the sequence ended with a padded page
}

// NewSlot scans f for bad blocks and returns the slot on its good ones.
func NewSlot(f Flash) (*Slot, error) {
	info := f.Info()
	if err := info.validate(); err != nil {
		return nil, err
	}
	s := &Slot{flash: f, info: info, page: make([]byte, info.WriteSize)}
	for off := int64(0); off < info.Size; off += info.EraseSize {
		if info.Type.IsNAND() {
			bad, err := f.IsBad(off)
			if err != nil {
				return nil, fmt.Errorf("mtd: checking block at %#x: %w", off, err)
			}
			if bad {
				s.bad++
				continue
			}
		}
		s.blocks = append(s.blocks, off)
	}
	if len(s.blocks) == 0 {
		return nil, fmt.Errorf("%w: every block is bad", ErrBadBlock)
	}
	s.erased = make([]bool, len(s.blocks))
	return s, nil
}

// Info returns the chip's geometry.
func (s *Slot) Info() Info { return s.info }

// BadBlocks returns how many erase blocks were skipped as bad.
func (s *Slot) BadBlocks() int { return s.bad }

// Size is the usable capacity: the good blocks only.
func (s *Slot) Size() int64 { return int64(len(s.blocks)) * s.info.EraseSize }

// BeginUpdate starts a new write sequence at offset 0 (bank.Updater).
func (s *Slot) BeginUpdate(size int64) error {
	if size < 0 || size > s.Size() {
		return fmt.Errorf("%w: %d bytes, slot holds %d", ErrRange, size, s.Size())
	}
	s.reset()
	return nil
}

func (s *Slot) reset() {
	clear(s.erased)
	s.cursor, s.pending, s.sealed = 0, 0, false
}

// phys maps a logical offset to a physical one.
func (s *Slot) phys(off int64) int64 {
	return s.blocks[off/s.info.EraseSize] + off%s.info.EraseSize
}

// ReadAt reads through the bad-block map. Bytes of a partial page not yet
// programmed (before Sync) read as what the flash holds.
func (s *Slot) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: offset %d", ErrRange, off)
	}
	n := 0
	for len(p) > 0 {
		if off >= s.Size() {
			return n, io.EOF
		}
		m := int(min(int64(len(p)), s.info.EraseSize-off%s.info.EraseSize))
		got, err := s.flash.ReadAt(p[:m], s.phys(off))
		n += got
		if err != nil {
			return n, err
		}
		p, off = p[m:], off+int64(m)
	}
	return n, nil
}

// WriteAt continues the write sequence (or starts one at offset 0).
func (s *Slot) WriteAt(p []byte, off int64) (int, error) {
	if off == 0 && (s.cursor != 0 || s.pending != 0 || s.sealed) {
		s.reset()
	}
	if off != s.cursor || s.sealed {
		return 0, fmt.Errorf("%w: write at %d, sequence at %d", ErrNotSequential, off, s.cursor)
	}
	if off+int64(len(p)) > s.Size() {
		return 0, fmt.Errorf("%w: %d bytes at %d, slot holds %d", ErrRange, len(p), off, s.Size())
	}
	ws := int(s.info.WriteSize)
	n := 0
	for len(p) > 0 {
		if s.pending > 0 || len(p) < ws {
			c := copy(s.page[s.pending:], p)
			s.pending += c
			p, n, s.cursor = p[c:], n+c, s.cursor+int64(c)
			if s.pending == ws {
				if err := s.program(s.cursor-int64(ws), s.page); err != nil {
					return n - c, err
				}
				s.pending = 0
			}
			continue
		}
		blockEnd := (s.cursor/s.info.EraseSize + 1) * s.info.EraseSize
		m := min(int64(len(p)/ws*ws), blockEnd-s.cursor)
		if err := s.program(s.cursor, p[:m]); err != nil {
			return n, err
		}
		p, n, s.cursor = p[m:], n+int(m), s.cursor+m
	}
	return n, nil
}

// program writes whole pages inside one erase block, erasing the block
// first if this sequence has not.
func (s *Slot) program(off int64, data []byte) error {
	blk := off / s.info.EraseSize
	if !s.erased[blk] {
		if err := s.flash.Erase(s.blocks[blk]); err != nil {
			return fmt.Errorf("mtd: erasing block at %#x: %w", s.blocks[blk], err)
		}
		s.erased[blk] = true
	}
	if _, err := s.flash.WriteAt(data, s.phys(off)); err != nil {
		return fmt.Errorf("mtd: programming %d bytes at %#x: %w", len(data), s.phys(off), err)
	}
	return nil
}

// Sync programs the last partial page, padded with 0xFF, and ends the
// sequence; then it syncs the flash.
func (s *Slot) Sync() error {
	if s.pending > 0 {
		for i := s.pending; i < len(s.page); i++ {
			s.page[i] = 0xFF
		}
		if err := s.program(s.cursor-int64(s.pending), s.page); err != nil {
			return err
		}
		s.pending, s.sealed = 0, true
	}
	return s.flash.Sync()
}

// Close closes the flash.
func (s *Slot) Close() error { return s.flash.Close() }
