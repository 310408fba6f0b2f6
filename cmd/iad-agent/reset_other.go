//go:build !linux

package main

import (
	"errors"
	"log/slog"
)

func reset(how string, log *slog.Logger) error {
	return errors.New("reset is only supported on Linux")
}
