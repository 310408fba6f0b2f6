package mtd

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"sync"
)

// SimOptions describe a simulated chip.
type SimOptions struct {
	Info Info
	// BadBlocks lists erase-block numbers marked bad (NAND only).
	BadBlocks []int
}

// Sim is a file-backed flash chip for hosts and tests. It enforces the
// rules of real flash: Erase sets a block to 0xFF; programming can only
// clear bits (a 0 bit written over a 1 fails with ErrNotErased, and
// nothing is changed); on NAND a page is programmed whole, at page
// alignment, once per erase (a page must be all 0xFF before it is
// programmed); bad blocks report IsBad and refuse erase, program and read.
// The file holds exactly the chip's bytes, so separate processes (and a
// process killed mid-write) see the same chip.
type Sim struct {
	mu     sync.Mutex
	f      *os.File
	info   Info
	bad    map[int64]bool // physical block offsets
	erases map[int64]int
}

var _ Flash = (*Sim)(nil)

// OpenSim opens the chip image at path, creating it erased (all 0xFF) if
// it does not exist. An existing file of another size is an error.
func OpenSim(path string, opts SimOptions) (*Sim, error) {
	if err := opts.Info.validate(); err != nil {
		return nil, err
	}
	if opts.Info.Type != NOR && !opts.Info.Type.IsNAND() {
		return nil, fmt.Errorf("%w: type %v", ErrGeometry, opts.Info.Type)
	}
	if len(opts.BadBlocks) > 0 && !opts.Info.Type.IsNAND() {
		return nil, fmt.Errorf("%w: NOR flash has no bad blocks", ErrGeometry)
	}
	s := &Sim{info: opts.Info, bad: map[int64]bool{}, erases: map[int64]int{}}
	nblocks := int(opts.Info.Size / opts.Info.EraseSize)
	for _, b := range opts.BadBlocks {
		if b < 0 || b >= nblocks {
			return nil, fmt.Errorf("%w: bad block %d outside 0..%d", ErrGeometry, b, nblocks-1)
		}
		s.bad[int64(b)*opts.Info.EraseSize] = true
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		if f, err = createErased(path, opts.Info.Size); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("mtd: opening simulated flash: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("mtd: %w", err)
	}
	if st.Size() != opts.Info.Size {
		f.Close()
		return nil, fmt.Errorf("%w: %s has %d bytes, geometry says %d", ErrGeometry, path, st.Size(), opts.Info.Size)
	}
	s.f = f
	return s, nil
}

func createErased(path string, size int64) (*os.File, error) {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("mtd: creating simulated flash: %w", err)
	}
	ff := bytes.Repeat([]byte{0xFF}, 64<<10)
	for off := int64(0); off < size; off += int64(len(ff)) {
		if _, err := f.WriteAt(ff[:min(int64(len(ff)), size-off)], off); err != nil {
			f.Close()
			return nil, fmt.Errorf("mtd: creating simulated flash: %w", err)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("mtd: creating simulated flash: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		f.Close()
		return nil, fmt.Errorf("mtd: creating simulated flash: %w", err)
	}
	return f, nil
}

// Info returns the geometry.
func (s *Sim) Info() Info { return s.info }

func (s *Sim) block(off int64) int64 { return off - off%s.info.EraseSize }

func (s *Sim) checkRange(off int64, n int) error {
	if off < 0 || off+int64(n) > s.info.Size {
		return fmt.Errorf("%w: %d bytes at %#x, chip has %d", ErrRange, n, off, s.info.Size)
	}
	return nil
}

// badIn returns the first bad block that [off, off+n) touches, or -1.
func (s *Sim) badIn(off int64, n int) int64 {
	for b := s.block(off); b < off+int64(n); b += s.info.EraseSize {
		if s.bad[b] {
			return b
		}
	}
	return -1
}

// ReadAt reads raw bytes; reading a bad block fails.
func (s *Sim) ReadAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkRange(off, len(p)); err != nil {
		return 0, err
	}
	if b := s.badIn(off, len(p)); b >= 0 {
		return 0, fmt.Errorf("%w: read of block at %#x", ErrBadBlock, b)
	}
	return s.f.ReadAt(p, off)
}

// WriteAt programs p at off under the rules of flash; a refused program
// changes nothing.
func (s *Sim) WriteAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkRange(off, len(p)); err != nil {
		return 0, err
	}
	if b := s.badIn(off, len(p)); b >= 0 {
		return 0, fmt.Errorf("%w: program of block at %#x", ErrBadBlock, b)
	}
	ws := s.info.WriteSize
	if off%ws != 0 || int64(len(p))%ws != 0 {
		return 0, fmt.Errorf("%w: program of %d bytes at %#x, page %d", ErrAlignment, len(p), off, ws)
	}
	old := make([]byte, len(p))
	if _, err := s.f.ReadAt(old, off); err != nil {
		return 0, fmt.Errorf("mtd: simulated flash: %w", err)
	}
	for i := range p {
		if p[i]&^old[i] != 0 {
			return 0, fmt.Errorf("%w: byte at %#x is %#02x, program %#02x", ErrNotErased, off+int64(i), old[i], p[i])
		}
	}
	if s.info.Type.IsNAND() {
		for i := 0; i < len(p); i += int(ws) {
			if slices.ContainsFunc(old[i:i+int(ws)], func(b byte) bool { return b != 0xFF }) {
				return 0, fmt.Errorf("%w: NAND page at %#x programmed twice without erase", ErrNotErased, off+int64(i))
			}
		}
	}
	return s.f.WriteAt(p, off)
}

// Erase sets the block at off to 0xFF.
func (s *Sim) Erase(off int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkRange(off, int(s.info.EraseSize)); err != nil {
		return err
	}
	if off%s.info.EraseSize != 0 {
		return fmt.Errorf("%w: erase at %#x, block %d", ErrAlignment, off, s.info.EraseSize)
	}
	if s.bad[off] {
		return fmt.Errorf("%w: erase of block at %#x", ErrBadBlock, off)
	}
	if _, err := s.f.WriteAt(bytes.Repeat([]byte{0xFF}, int(s.info.EraseSize)), off); err != nil {
		return fmt.Errorf("mtd: simulated flash: %w", err)
	}
	s.erases[off]++
	return nil
}

// IsBad reports whether the block at off is bad.
func (s *Sim) IsBad(off int64) (bool, error) {
	if err := s.checkRange(off, 1); err != nil {
		return false, err
	}
	return s.bad[s.block(off)], nil
}

// Erases returns how often the block at off was erased through this Sim.
func (s *Sim) Erases(off int64) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.erases[s.block(off)]
}

// Sync flushes the image file.
func (s *Sim) Sync() error { return s.f.Sync() }

// Close closes the image file.
func (s *Sim) Close() error { return s.f.Close() }
