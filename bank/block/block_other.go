//go:build !linux

package block

import "fmt"

// Open fails: the in-use checks and ioctls need Linux.
func Open(opts Options) (*Device, error) {
	return nil, fmt.Errorf("%w: %s", ErrUnsupported, opts.Path)
}
