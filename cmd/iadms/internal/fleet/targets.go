// Package fleet runs one procedure per device over a list of targets: with
// a concurrency limit, a canary wave whose devices must all succeed before
// the rest start, and a stop rule that halts the rollout when too many
// devices fail; and it reports the outcome per device as a table and as
// JSON.
//
// It must never start a device after the rollout has halted, and never
// abandon a device mid-procedure because another one failed: devices
// already under way finish (or are left resumable if iadms is stopped).
package fleet

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/iadsafe/iad-agent/cmd/iadms/internal/device"
)

// ErrTargets means the targets file cannot be used; the error names the
// line.
var ErrTargets = errors.New("fleet: bad targets file")

// Target is one device of the fleet.
type Target struct {
	Name    string
	Addr    netip.AddrPort
	CredRef string
	// Image overrides the run's image for this device (a path).
	Image string
	Line  int
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// ParseTargets reads a targets file: one device per line,
//
//	# NAME   ADDRESS           CREDENTIALS  [image=FILE]
//	iad-001  192.0.2.1         lab
//	iad-002  192.0.2.2:1161    lab          image=special.img
//
// ADDRESS is IP[:PORT] (port 161 by default), CREDENTIALS names an entry
// of the credentials file, image= paths are relative to dir. Names and
// addresses must be unique.
func ParseTargets(r io.Reader, dir string) ([]Target, error) {
	var out []Target
	names := map[string]int{}
	addrs := map[netip.AddrPort]int{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) < 3 {
			return nil, fmt.Errorf("%w: line %d: want NAME ADDRESS CREDENTIALS [image=FILE]", ErrTargets, n)
		}
		t := Target{Name: f[0], CredRef: f[2], Line: n}
		if !nameRE.MatchString(t.Name) {
			return nil, fmt.Errorf("%w: line %d: name %q: letters, digits, '.', '_' and '-' only", ErrTargets, n, t.Name)
		}
		a, err := device.ParseAddr(f[1])
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrTargets, n, err)
		}
		t.Addr = a
		for _, opt := range f[3:] {
			k, v, _ := strings.Cut(opt, "=")
			switch {
			case k == "image" && v != "":
				if !filepath.IsAbs(v) {
					v = filepath.Join(dir, v)
				}
				t.Image = v
			default:
				return nil, fmt.Errorf("%w: line %d: unknown option %q (want image=FILE)", ErrTargets, n, opt)
			}
		}
		if prev, dup := names[t.Name]; dup {
			return nil, fmt.Errorf("%w: line %d: name %s already on line %d", ErrTargets, n, t.Name, prev)
		}
		if prev, dup := addrs[t.Addr]; dup {
			return nil, fmt.Errorf("%w: line %d: address %s already on line %d", ErrTargets, n, t.Addr, prev)
		}
		names[t.Name], addrs[t.Addr] = n, n
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTargets, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no targets", ErrTargets)
	}
	return out, nil
}
