package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"

	"golang.org/x/sys/unix"
)

// reset restarts the device the configured way. The agent has already
// closed its journal and synced its files.
func reset(how string, log *slog.Logger) error {
	unix.Sync()
	switch how {
	case "exec":
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding own executable: %w", err)
		}
		log.Info("reset: re-executing", "path", self)
		return unix.Exec(self, os.Args, os.Environ())
	case "reboot":
		log.Info("reset: rebooting")
		return unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	default:
		log.Info("reset: running reset command", "cmd", how)
		cmd := exec.Command("/bin/sh", "-c", how)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		return cmd.Run()
	}
}
