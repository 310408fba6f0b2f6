// Command iadms is the management station of the method: it drives the
// iad-agent on one device or a fleet through backup, upgrade, reset,
// commit and restore, watching every step. See README.md and
// "iadms -h".
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/iadsafe/iad-agent/cmd/iadms/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], cli.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr})
	stop()
	os.Exit(code)
}
