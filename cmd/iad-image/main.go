// Command iad-image makes and checks signed upgrade images: it generates
// signing keys, builds images, prints their headers and verifies them the
// way the device will. The format and all checks live in package image.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
