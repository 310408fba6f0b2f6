package ubootenv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/iadsafe/iad-agent/bank/mtd"
)

// Location is one line of an fw_env.config file:
//
//	DEVICE OFFSET SIZE [SECTOR-SIZE [SECTORS]]
//
// OFFSET is a C integer (decimal, 0x hex or 0 octal; negative counts from
// the end of the device); SIZE, SECTOR-SIZE and SECTORS are hexadecimal
// with or without 0x, as libubootenv reads them. Lines starting with # are
// comments; the first two locations are used.
type Location struct {
	Path       string
	Offset     int64
	Size       int64
	SectorSize int64
	Sectors    int64
}

// ParseConfig reads fw_env.config lines.
func ParseConfig(r io.Reader) ([]Location, error) {
	var locs []Location
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			continue // libubootenv ignores lines without the three fields
		}
		var loc Location
		var err error
		loc.Path = f[0]
		if loc.Offset, err = strconv.ParseInt(f[1], 0, 64); err != nil {
			return nil, fmt.Errorf("%w: line %d: offset %q", ErrConfig, n, f[1])
		}
		hex := func(s string) (int64, error) {
			s = strings.TrimPrefix(strings.ToLower(s), "0x")
			return strconv.ParseInt(s, 16, 64)
		}
		if loc.Size, err = hex(f[2]); err != nil || loc.Size <= 0 {
			return nil, fmt.Errorf("%w: line %d: size %q", ErrConfig, n, f[2])
		}
		if len(f) > 3 {
			if loc.SectorSize, err = hex(f[3]); err != nil || loc.SectorSize < 0 {
				return nil, fmt.Errorf("%w: line %d: sector size %q", ErrConfig, n, f[3])
			}
		}
		if len(f) > 4 {
			if loc.Sectors, err = hex(f[4]); err != nil || loc.Sectors < 0 {
				return nil, fmt.Errorf("%w: line %d: sector count %q", ErrConfig, n, f[4])
			}
		}
		locs = append(locs, loc)
		if len(locs) == 2 {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ubootenv: reading config: %w", err)
	}
	if len(locs) == 0 {
		return nil, fmt.Errorf("%w: no environment location", ErrConfig)
	}
	return locs, nil
}

// OpenConfig reads an fw_env.config file and opens its locations: a path
// under /dev/mtd is raw flash, anything else a file or block device.
// UBI volumes (/dev/ubi…) are not supported.
func OpenConfig(path string, lockFile string) (*Env, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ubootenv: %w", err)
	}
	defer f.Close()
	locs, err := ParseConfig(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return OpenLocations(locs, lockFile)
}

// OpenLocations opens parsed locations (see OpenConfig).
func OpenLocations(locs []Location, lockFile string) (env *Env, err error) {
	var copies []Copy
	defer func() {
		if err != nil {
			for _, c := range copies {
				if c.Flash != nil {
					c.Flash.Close()
				} else if cl, ok := c.Dev.(io.Closer); ok {
					cl.Close()
				}
			}
		}
	}()
	for _, l := range locs {
		c := Copy{Name: l.Path, Offset: l.Offset, Size: l.Size, SectorSize: l.SectorSize, Sectors: l.Sectors}
		switch {
		case strings.HasPrefix(l.Path, "/dev/ubi"):
			return nil, fmt.Errorf("%w: %s: environments in UBI volumes are not supported", ErrConfig, l.Path)
		case strings.HasPrefix(l.Path, "/dev/mtd"):
			d, err := mtd.Open(l.Path)
			if err != nil {
				return nil, err
			}
			c.Flash = d
		default:
			f, err := os.OpenFile(l.Path, os.O_RDWR, 0)
			if err != nil {
				return nil, fmt.Errorf("ubootenv: %w", err)
			}
			c.Dev = f
			if c.Offset < 0 {
				end, err := f.Seek(0, io.SeekEnd)
				if err != nil {
					f.Close()
					return nil, fmt.Errorf("ubootenv: %s: %w", l.Path, err)
				}
				c.Offset += end
			}
		}
		if c.Flash != nil && c.Offset < 0 {
			c.Offset += c.Flash.Info().Size
		}
		copies = append(copies, c)
	}
	return New(Options{Copies: copies, LockFile: lockFile})
}

// ReadDefaults reads a default environment: "name=value" lines, as
// fw_setenv -f and /etc/u-boot-initial-env hold them; empty lines and
// lines starting with # are skipped.
func ReadDefaults(r io.Reader) (Vars, error) {
	v := Vars{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%w: default environment line %d has no '='", ErrBadVar, n)
		}
		if err := checkVar(name, value); err != nil {
			return nil, err
		}
		v[name] = value
	}
	if err := sc.Err(); err != nil {
		return nil, errors.Join(ErrBadVar, err)
	}
	return v, nil
}
