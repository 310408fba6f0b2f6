// Package fsync writes small state files durably for the bank's state
// stores: the file's data is synced before it is closed, and a directory
// can be synced after a rename. It never renames or removes anything
// itself; the callers own the write-then-rename order.
package fsync

import "os"

// WriteFile creates or truncates path, writes data and syncs it.
func WriteFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Dir syncs directory dir, making a rename inside it durable.
func Dir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
