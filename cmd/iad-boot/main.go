// Command iad-boot is the boot selector for devices whose bootloader
// cannot count tries: run as PID 1 from an initramfs (or exec'd by its
// /init), it reads the boot state named in the bank configuration,
// spends a try of an armed trial, picks the bank and starts it (mount its
// root and switch_root to its init, or exec a program). See README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/iadsafe/iad-agent/bank/bootsel"
	"github.com/iadsafe/iad-agent/bank/setup"
)

func main() { os.Exit(run(os.Args[1:])) }

func run(args []string) int {
	fs := flag.NewFlagSet("iad-boot", flag.ContinueOnError)
	config := fs.String("config", "/etc/iad/bank.conf", "bank configuration file (slots, boot state, [boot] targets)")
	dryRun := fs.Bool("dry-run", false, "decide and print the bank order (this spends a try), but start nothing")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if os.Getpid() == 1 {
		if err := bootsel.PrepareInit(); err != nil {
			log.Error("iad-boot: preparing /proc, /sys, /dev", "err", err)
		}
	}
	c, err := setup.ParseFile(*config)
	if err != nil {
		// Without a configuration there is nothing to choose from.
		log.Error("iad-boot: no usable configuration", "err", err)
		return 1
	}
	ctx := context.Background()
	if *dryRun {
		ch := bootsel.Select(ctx, c, log)
		fmt.Printf("order=%v trial=%v reverted=%v fallback=%v\n", ch.Order, ch.Result.Trial, ch.Result.Reverted, ch.Fallback)
		return 0
	}
	err = bootsel.Run(ctx, bootsel.Options{Config: c, Starter: bootsel.System{}, Logger: log})
	log.Error("iad-boot: nothing started", "err", err)
	return 1
}
