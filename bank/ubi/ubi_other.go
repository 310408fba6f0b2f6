//go:build !linux

package ubi

import "fmt"

// OpenVolume fails: UBI volumes need Linux.
func OpenVolume(path string) (*Volume, error) {
	return nil, fmt.Errorf("%w: %s", ErrUnsupported, path)
}

// MakeVolume fails: UBI volumes need Linux.
func MakeVolume(dev, name string, size int64) (int, error) {
	return 0, fmt.Errorf("%w: %s", ErrUnsupported, dev)
}

// FindVolume fails: UBI volumes need Linux.
func FindVolume(ubiNum int, name string) (string, error) {
	return "", fmt.Errorf("%w: ubi%d", ErrUnsupported, ubiNum)
}
