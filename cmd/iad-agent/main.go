// Command iad-agent is the upgrade daemon of an Integrated Access Device:
// it serves IAD-UPGRADE-MIB over SNMP and runs backup, upgrade, reset,
// restore and revert operations. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/iadsafe/iad-agent/agent"
	"github.com/iadsafe/iad-agent/agent/backupcrypt"
	"github.com/iadsafe/iad-agent/image"
)

// version is the factory software version, set at build time with
// -ldflags "-X main.version=…".
var version = "1.0.0"

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("iad-agent", flag.ContinueOnError)
	var (
		opts     agent.Options
		traps    listFlag
		trust    listFlag
		slotSize string
		resetCmd string
		logLevel string
		keyFile  string
		factFmt  uint
		gcPct    int
	)
	fs.StringVar(&opts.DataDir, "data", "./var", "directory for state, journal, file banks and configuration")
	fs.StringVar(&opts.Listen, "listen", "127.0.0.1:16161", "UDP address to serve SNMP on")
	fs.StringVar(&opts.ROCommunity, "ro-community", "public", "read-only SNMPv2c community (with -snmp-config: none unless given)")
	fs.StringVar(&opts.RWCommunity, "rw-community", "", "read-write SNMPv2c community (default none: no v2c SET)")
	fs.StringVar(&opts.SNMPConfigFile, "snmp-config", "", "SNMP access FILE: communities, SNMPv3 users, notification destinations (see README)")
	fs.StringVar(&opts.AgentX, "agentx", "", "run as AgentX sub-agent of the master at unix:/PATH, /PATH or tcp:HOST:PORT (no UDP port of its own)")
	fs.Var(&traps, "trap", "v2c trap destination HOST:PORT (repeatable; informs and SNMPv3 destinations go in -snmp-config)")
	fs.Var(&trust, "trust", "public key FILE.pub that images may be signed with (repeatable; none: every image is rejected)")
	fs.StringVar(&opts.Hardware, "hw", "iad-generic", "hardware-compatibility string images must carry")
	fs.StringVar(&resetCmd, "reset-cmd", "exec", `what a reset does: "exec" re-executes this program (development host), "reboot" calls reboot(2) (device), anything else is run with /bin/sh -c`)
	fs.StringVar(&slotSize, "slot-size", "512MiB", "size of each file-backed bank slot (sparse file)")
	fs.StringVar(&opts.BankConfig, "bank-config", "", "bank configuration FILE: slot storage (file, block, mtd, ubi) and boot state (file or U-Boot environment); default: file slots under -data")
	fs.DurationVar(&opts.CommitAfter, "commit-after", 30*time.Second, "health check: commit a trial boot after serving this long")
	fs.DurationVar(&opts.OpRetention, "op-retention", 15*time.Minute, "how long completed operation rows stay readable (at least 5m)")
	fs.IntVar(&opts.TFTPBlockSize, "tftp-blksize", 1468, "TFTP block size to negotiate")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&opts.Version, "factory-version", version, "software version of the factory install in bank A")
	fs.UintVar(&factFmt, "factory-config-format", 1, "configuration format of the factory install in bank A")
	fs.StringVar(&opts.ReloadCmd, "reload-cmd", "", "command (run with /bin/sh -c) that makes the services reload the configuration; if it fails, the previous configuration is put back")
	fs.DurationVar(&opts.ReloadTimeout, "reload-timeout", time.Minute, "how long -reload-cmd may take")
	fs.StringVar(&keyFile, "config-key", "", "device key FILE (32 bytes, or 64 hex digits as openssl rand -hex 32 writes): encrypt backups, and restore only archives encrypted under it")
	fs.IntVar(&gcPct, "gc-percent", defaultGCPercent, "garbage collector target, as GOGC: heap growth in percent before a collection (10..1000); GOGC in the environment wins unless this flag is given")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if gcPct < 10 || gcPct > 1000 {
		fmt.Fprintf(os.Stderr, "iad-agent: -gc-percent must be 10..1000\n")
		return 2
	}
	if p, ok := gcPercent(os.Getenv("GOGC"), flagGiven(fs, "gc-percent"), gcPct); ok {
		debug.SetGCPercent(p)
	}
	if opts.SNMPConfigFile != "" && !flagGiven(fs, "ro-community") {
		// The file says who may read; the built-in "public" would undo it.
		opts.ROCommunity = ""
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "iad-agent: unexpected arguments: %q\n", fs.Args())
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "iad-agent: -log-level: %v\n", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	opts.Logger = log
	opts.Traps = traps
	n, err := parseSize(slotSize)
	if err != nil {
		fmt.Fprintf(os.Stderr, "iad-agent: -slot-size: %v\n", err)
		return 2
	}
	opts.SlotSize = n
	for _, p := range trust {
		k, err := image.LoadPublicKey(p)
		if err != nil {
			fmt.Fprintf(os.Stderr, "iad-agent: -trust: %v\n", err)
			return 2
		}
		opts.Trusted = append(opts.Trusted, k)
	}
	if factFmt == 0 || factFmt > 1<<32-1 {
		fmt.Fprintf(os.Stderr, "iad-agent: -factory-config-format must be 1..4294967295\n")
		return 2
	}
	opts.FactoryConfigFormat = uint32(factFmt)
	if keyFile != "" {
		k, err := backupcrypt.LoadKey(keyFile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "iad-agent: -config-key: %v\n", err)
			return 2
		}
		if fi, err := os.Stat(keyFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("the device key file is readable by other users", "file", keyFile, "mode", fi.Mode().Perm())
		}
		opts.ConfigKey = &k
	}
	if len(opts.Trusted) == 0 {
		log.Warn("no -trust key given: every upgrade image will be rejected")
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	a, err := agent.New(ctx, opts)
	if err != nil {
		log.Error("start failed", "err", err)
		return 1
	}
	err = a.Run(ctx)
	if errors.Is(err, agent.ErrResetRequested) {
		stop()
		if err := reset(resetCmd, log); err != nil {
			log.Error("reset failed", "err", err)
			return 1
		}
		return 0
	}
	if err != nil {
		log.Error("stopped", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// defaultGCPercent keeps the agent's peak memory near its live heap. The
// live heap is small (a few hundred KiB of buffers and tables) and the
// runtime's own default of 100 lets garbage — the TFTP library allocates
// an address per datagram — double it before collecting: measured over a
// 64 MiB upgrade, 50 takes the peak RSS from 13.0 to 11.2–11.7 MiB for 6
// collections of a tiny heap instead of 3 (see docs/BENCHMARKS.md).
const defaultGCPercent = 50

// gcPercent decides the collector target: the flag when given, else the
// operator's GOGC if set, else the flag's default. ok is false when the
// runtime already has the right value (from GOGC).
func gcPercent(envGOGC string, given bool, flagValue int) (pct int, ok bool) {
	if envGOGC != "" && !given {
		return 0, false
	}
	return flagValue, true
}

// flagGiven reports whether the command line set the flag.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// parseSize reads a byte count with an optional KiB/MiB/GiB suffix.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q: want a positive number with optional KiB, MiB or GiB", s)
	}
	return n * mult, nil
}
