//go:build !linux

package mtd

import "fmt"

// Device is a real chip behind /dev/mtdN; it exists only on Linux.
type Device struct{ Flash }

// Open fails: raw flash needs Linux's MTD subsystem.
func Open(path string) (*Device, error) {
	return nil, fmt.Errorf("%w: %s", ErrUnsupported, path)
}
