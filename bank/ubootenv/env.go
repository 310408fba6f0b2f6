// Package ubootenv reads and writes the U-Boot environment the way
// libubootenv (fw_printenv, fw_setenv) does, and keeps the bank's boot
// state in it, so that U-Boot (bootcount, bootlimit, upgrade_available,
// altbootcmd), iad-boot and the agent share one record.
//
// The on-media format: one copy is a CRC32 (IEEE, little-endian) of the
// data area followed by the data area, "name=value\0…\0" padded to the
// copy's size; with two copies (redundant) a flags byte sits between the
// CRC and the data. A write goes to the copy that is not current, with
// the current copy's flags plus one (wrapping from 255 to 0) on files and
// NAND, or with flags 1 and the old copy's flags then programmed to 0 on
// NOR flash, exactly as libubootenv does; a read takes the copy whose CRC
// is right, and of two, the one with the newer flags. The locations come
// from an fw_env.config-style file (ParseConfig).
//
// A TextFile is the other backend of the boot-state Store: the text a
// U-Boot boot script reads with "env import -t" and writes with "env
// export -t" and fatwrite, for boards whose U-Boot cannot save its
// environment.
//
// The package must never write the current copy of a redundant
// environment (a power cut then leaves the other, valid one), never drop
// a variable it does not own, and never write an environment it could
// not read unless a default environment was given for that case.
package ubootenv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/iadsafe/iad-agent/bank/mtd"
)

// Errors returned by the package; match them with errors.Is.
var (
	ErrNoEnv    = errors.New("ubootenv: no valid environment copy")
	ErrTooLarge = errors.New("ubootenv: variables do not fit the environment")
	ErrConfig   = errors.New("ubootenv: bad environment configuration")
	ErrBadVar   = errors.New("ubootenv: bad variable")
)

// Device holds a copy on a file or a block device.
type Device interface {
	io.ReaderAt
	io.WriterAt
	Sync() error
}

// Copy is where one copy of the environment lives: Size bytes at Offset
// of either Dev (a file or block device) or Flash (raw MTD flash, whose
// sectors are erased before writing).
type Copy struct {
	Name   string // for messages, e.g. the device path
	Dev    Device
	Flash  mtd.Flash
	Offset int64
	Size   int64
	// SectorSize is the flash erase unit (0: the chip's erase block).
	SectorSize int64
	// Sectors is how many sectors a NAND copy may spread over to skip
	// bad blocks (0: 1).
	Sectors int64
}

// flagsType says how the flags byte of a redundant copy advances.
type flagsType int

const (
	flagsIncremental flagsType = iota + 1
	flagsBoolean
)

func (c *Copy) flagsType() flagsType {
	if c.Flash != nil && c.Flash.Info().Type == mtd.NOR {
		return flagsBoolean
	}
	return flagsIncremental
}

func (c *Copy) sector() int64 {
	if c.SectorSize > 0 {
		return c.SectorSize
	}
	return c.Flash.Info().EraseSize
}

func (c *Copy) validate() error {
	switch {
	case (c.Dev == nil) == (c.Flash == nil):
		return fmt.Errorf("%w: copy %s needs exactly one of a device and a flash", ErrConfig, c.Name)
	case c.Size < 16:
		return fmt.Errorf("%w: copy %s size %d", ErrConfig, c.Name, c.Size)
	case c.Offset < 0:
		return fmt.Errorf("%w: copy %s offset %d", ErrConfig, c.Name, c.Offset)
	}
	if c.Flash != nil {
		info := c.Flash.Info()
		if c.Offset%c.sector() != 0 || c.sector()%info.EraseSize != 0 {
			return fmt.Errorf("%w: copy %s at %#x is not aligned to the flash sector %#x (erase block %#x)", ErrConfig, c.Name, c.Offset, c.sector(), info.EraseSize)
		}
		if c.Size > c.sector() {
			return fmt.Errorf("%w: copy %s of %#x bytes is larger than its sector %#x", ErrConfig, c.Name, c.Size, c.sector())
		}
	}
	return nil
}

// read returns the copy's bytes.
func (c *Copy) read() ([]byte, error) {
	buf := make([]byte, c.Size)
	if c.Dev != nil {
		if _, err := c.Dev.ReadAt(buf, c.Offset); err != nil {
			return nil, fmt.Errorf("ubootenv: reading %s: %w", c.Name, err)
		}
		return buf, nil
	}
	off, err := c.flashSector()
	if err != nil {
		return nil, err
	}
	if _, err := c.Flash.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("ubootenv: reading %s at %#x: %w", c.Name, off, err)
	}
	return buf, nil
}

// flashSector returns the first good sector of the copy's range.
func (c *Copy) flashSector() (int64, error) {
	n := max(c.Sectors, 1)
	for i := int64(0); i < n; i++ {
		off := c.Offset + i*c.sector()
		bad, err := c.Flash.IsBad(off)
		if err != nil {
			return 0, fmt.Errorf("ubootenv: %s: %w", c.Name, err)
		}
		if !bad {
			return off, nil
		}
	}
	return 0, fmt.Errorf("ubootenv: %s: %w: every sector is bad", c.Name, mtd.ErrBadBlock)
}

// write replaces the copy with img and makes it durable.
func (c *Copy) write(img []byte) error {
	if c.Dev != nil {
		if _, err := c.Dev.WriteAt(img, c.Offset); err != nil {
			return fmt.Errorf("ubootenv: writing %s: %w", c.Name, err)
		}
		if err := c.Dev.Sync(); err != nil {
			return fmt.Errorf("ubootenv: syncing %s: %w", c.Name, err)
		}
		return nil
	}
	off, err := c.flashSector()
	if err != nil {
		return err
	}
	eb := c.Flash.Info().EraseSize
	for e := off; e < off+c.sector(); e += eb {
		if err := c.Flash.Erase(e); err != nil {
			return fmt.Errorf("ubootenv: erasing %s at %#x: %w", c.Name, e, err)
		}
	}
	ws := c.Flash.Info().WriteSize
	if pad := int64(len(img)) % ws; pad != 0 {
		img = append(img, bytes.Repeat([]byte{0xFF}, int(ws-pad))...)
	}
	if _, err := c.Flash.WriteAt(img, off); err != nil {
		return fmt.Errorf("ubootenv: programming %s at %#x: %w", c.Name, off, err)
	}
	return c.Flash.Sync()
}

// obsolete programs the flags byte of a NOR copy to 0 without erasing.
func (c *Copy) obsolete() error {
	off, err := c.flashSector()
	if err != nil {
		return err
	}
	if _, err := c.Flash.WriteAt([]byte{0}, off+4); err != nil {
		return fmt.Errorf("ubootenv: marking %s obsolete: %w", c.Name, err)
	}
	return nil
}

// Vars is a set of environment variables.
type Vars map[string]string

// Clone returns a copy of v.
func (v Vars) Clone() Vars {
	c := make(Vars, len(v))
	for k, x := range v {
		c[k] = x
	}
	return c
}

// Env is an environment of one or two copies.
type Env struct {
	copies []Copy
	lock   string
}

// Options configure New.
type Options struct {
	Copies []Copy
	// LockFile is flock'ed around each read and write, as libubootenv
	// does; "" means "/var/lock/fw_printenv.lock", "-" none. A lock file
	// that cannot be created (no /var/lock) is skipped, as libubootenv
	// skips it.
	LockFile string
}

// New checks the copies. Two copies must have the same size and kind.
func New(opts Options) (*Env, error) {
	if n := len(opts.Copies); n < 1 || n > 2 {
		return nil, fmt.Errorf("%w: %d copies, want 1 or 2", ErrConfig, n)
	}
	for i := range opts.Copies {
		if err := opts.Copies[i].validate(); err != nil {
			return nil, err
		}
	}
	if len(opts.Copies) == 2 {
		a, b := &opts.Copies[0], &opts.Copies[1]
		if a.Size != b.Size || a.flagsType() != b.flagsType() || (a.Flash == nil) != (b.Flash == nil) {
			return nil, fmt.Errorf("%w: the two copies differ in size or kind", ErrConfig)
		}
	}
	lock := opts.LockFile
	if lock == "" {
		lock = "/var/lock/fw_printenv.lock"
	}
	return &Env{copies: slices.Clone(opts.Copies), lock: lock}, nil
}

// Redundant reports whether the environment has two copies.
func (e *Env) Redundant() bool { return len(e.copies) == 2 }

func (e *Env) dataOffset() int {
	if e.Redundant() {
		return 5
	}
	return 4
}

// copyState is what a read found in one copy.
type copyState struct {
	img   []byte
	valid bool
	flags byte
}

func (e *Env) readCopies() ([]copyState, int, error) {
	states := make([]copyState, len(e.copies))
	for i := range e.copies {
		img, err := e.copies[i].read()
		if err != nil {
			return nil, 0, err
		}
		d := e.dataOffset()
		crc := binary.LittleEndian.Uint32(img)
		states[i] = copyState{img: img, valid: crc32.ChecksumIEEE(img[d:]) == crc}
		if e.Redundant() {
			states[i].flags = img[4]
		}
	}
	return states, current(states, e.copies[0].flagsType()), nil
}

// current picks the copy a read uses, with libubootenv's rules; -1 if
// none is valid.
func current(s []copyState, ft flagsType) int {
	if len(s) == 1 {
		if s[0].valid {
			return 0
		}
		return -1
	}
	switch {
	case s[0].valid && !s[1].valid:
		return 0
	case !s[0].valid && s[1].valid:
		return 1
	case !s[0].valid && !s[1].valid:
		return -1
	}
	cur := 0
	if s[1].flags > s[0].flags {
		cur = 1
	}
	switch ft {
	case flagsBoolean:
		if s[1].flags == 0xFF {
			cur = 1
		} else if s[0].flags == 0xFF {
			cur = 0
		}
	case flagsIncremental:
		if s[0].flags == 0xFF && s[1].flags == 0 {
			cur = 1
		} else if s[1].flags == 0xFF && s[0].flags == 0 {
			cur = 0
		}
	}
	return cur
}

// Read returns the variables of the current copy, or an error wrapping
// ErrNoEnv if no copy has a valid CRC.
func (e *Env) Read() (Vars, error) {
	unlock := e.flock()
	defer unlock()
	states, cur, err := e.readCopies()
	if err != nil {
		return nil, err
	}
	if cur < 0 {
		return nil, fmt.Errorf("%w (%s)", ErrNoEnv, e.names())
	}
	return decode(states[cur].img[e.dataOffset():])
}

func (e *Env) names() string {
	var n []string
	for _, c := range e.copies {
		n = append(n, c.Name)
	}
	return strings.Join(n, ", ")
}

// Write stores v: into the copy that is not current (redundant) or over
// the only copy. It re-reads the copies first, so that a change made
// meanwhile by fw_setenv decides which copy is current.
func (e *Env) Write(v Vars) error {
	unlock := e.flock()
	defer unlock()
	d := e.dataOffset()
	data, err := encode(v, int(e.copies[0].Size)-d)
	if err != nil {
		return err
	}
	img := make([]byte, e.copies[0].Size)
	copy(img[d:], data)
	binary.LittleEndian.PutUint32(img, crc32.ChecksumIEEE(img[d:]))
	if !e.Redundant() {
		return e.copies[0].write(img)
	}
	states, cur, err := e.readCopies()
	if err != nil {
		return err
	}
	if cur < 0 {
		cur = 0 // as libubootenv: write copy 1 after an unreadable copy 0
	}
	target := 1 - cur
	ft := e.copies[0].flagsType()
	switch ft {
	case flagsIncremental:
		img[4] = states[cur].flags + 1
	case flagsBoolean:
		img[4] = 1
	}
	if err := e.copies[target].write(img); err != nil {
		return err
	}
	if ft == flagsBoolean {
		return e.copies[cur].obsolete()
	}
	return nil
}

// Close closes the copies' devices.
func (e *Env) Close() error {
	var errs []error
	for _, c := range e.copies {
		if cl, ok := c.Dev.(io.Closer); ok {
			errs = append(errs, cl.Close())
		}
		if c.Flash != nil {
			errs = append(errs, c.Flash.Close())
		}
	}
	return errors.Join(errs...)
}

func (e *Env) flock() func() {
	if e.lock == "-" {
		return func() {}
	}
	f, err := os.OpenFile(e.lock, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o666)
	if err != nil {
		return func() {}
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return func() {}
	}
	return func() { f.Close() } // closing releases the lock
}

// decode parses a data area.
func decode(data []byte) (Vars, error) {
	v := Vars{}
	for len(data) > 0 {
		i := bytes.IndexByte(data, 0)
		if i < 0 {
			return nil, fmt.Errorf("%w: environment data not terminated", ErrBadVar)
		}
		if i == 0 {
			return v, nil
		}
		line := string(data[:i])
		data = data[i+1:]
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			continue // libubootenv skips such lines too
		}
		v[name] = value
	}
	return nil, fmt.Errorf("%w: environment data not terminated", ErrBadVar)
}

// encode lays out v sorted by name, ending with an empty string, in at
// most size bytes.
func encode(v Vars, size int) ([]byte, error) {
	names := make([]string, 0, len(v))
	for k := range v {
		names = append(names, k)
	}
	slices.Sort(names)
	var b bytes.Buffer
	for _, k := range names {
		if err := checkVar(k, v[k]); err != nil {
			return nil, err
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(v[k])
		b.WriteByte(0)
	}
	b.WriteByte(0)
	if b.Len() > size {
		return nil, fmt.Errorf("%w: %d bytes, room for %d", ErrTooLarge, b.Len(), size)
	}
	return b.Bytes(), nil
}

func checkVar(name, value string) error {
	if name == "" || strings.ContainsAny(name, "=\x00") {
		return fmt.Errorf("%w: name %q", ErrBadVar, name)
	}
	if strings.ContainsRune(value, 0) {
		return fmt.Errorf("%w: value of %s contains NUL", ErrBadVar, name)
	}
	return nil
}
