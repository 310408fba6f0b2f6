package iadconfig_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// readMap serves files from a map, as Decode wants them.
func readMap(files map[string][]byte) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		b, ok := files[name]
		if !ok {
			return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
		}
		return b, nil
	}
}

// readDir serves the files of a directory.
func readDir(dir string) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, name)) }
}
