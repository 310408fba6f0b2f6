// Package cli is iadms's command line: it parses each command's flags,
// builds the parts (credentials, journal, file server, notification
// listener, device clients, operator interface), runs the command and maps
// the outcome to an exit code. cmd/iadms/main.go only calls Main.
//
// It must never accept a secret as a flag or argument (communities and
// passwords come from the credentials file only), and never exit the
// process itself: Main returns the code.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/iadsafe/iad-agent/cmd/iadms/internal/creds"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/device"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/fileserver"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/fleet"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/journal"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/procedure"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/term"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/traps"
	"github.com/iadsafe/iad-agent/mib"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitFailed      = 1 // a device failed, or the operator stopped
	ExitUsage       = 2 // bad flags, files or credentials
	ExitInterrupted = 3 // iadms was interrupted: run the same command to resume
)

// IO is where a command reads and writes.
type IO struct {
	Stdin          *os.File
	Stdout, Stderr *os.File
}

const usage = `usage: iadms COMMAND [flags]

Commands:
  upgrade   backup, upgrade, reset, commit and restore one device (--device) or a fleet (--targets)
  backup    have one device upload a backup of its configuration
  restore   have one device restore a backup file
  reset     reset one device and wait until it is back
  revert    select the previous software on one device (--reset runs it now)
  status    show devices' software, banks, operations and iadms's journal
  watch     live view of devices' operations and notifications

Run "iadms COMMAND -h" for a command's flags. Secrets (communities,
passwords) are read only from the credentials file (--creds), which must
not be readable by others.
`

// Main runs iadms with args (without the program name).
func Main(ctx context.Context, args []string, stdio IO) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdio.Stderr, usage)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	cmd, rest := args[0], args[1:]
	var run func(context.Context, []string, IO) int
	switch cmd {
	case "upgrade":
		run = upgradeCmd
	case "backup":
		run = backupCmd
	case "restore":
		run = restoreCmd
	case "reset":
		run = resetCmd
	case "revert":
		run = revertCmd
	case "status":
		run = statusCmd
	case "watch":
		run = watchCmd
	default:
		fmt.Fprintf(stdio.Stderr, "iadms: unknown command %q\n\n%s", cmd, usage)
		return ExitUsage
	}
	return run(ctx, rest, stdio)
}

// usageError is a problem with the command line or its files.
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// common are the flags every command has.
type common struct {
	credsPath   string
	cred        string
	device      string
	name        string
	targets     string
	state       string
	logPath     string
	logLevel    string
	poll        time.Duration
	snmpTimeout time.Duration
	snmpRetries int
}

func (c *common) register(fs *flag.FlagSet, fleetOK bool) {
	fs.StringVar(&c.credsPath, "creds", "iadms.creds", "credentials `file` (communities, v3 users, FTP logins; must not be readable by others)")
	fs.StringVar(&c.cred, "cred", "default", "credentials entry for --device")
	fs.StringVar(&c.device, "device", "", "the device's SNMP address `IP[:PORT]` (port 161 by default)")
	fs.StringVar(&c.name, "name", "", "the device's name in the journal and file names (default: from its address)")
	if fleetOK {
		fs.StringVar(&c.targets, "targets", "", "targets `file`: one device per line, NAME ADDRESS CREDENTIALS [image=FILE]")
	}
	fs.StringVar(&c.state, "state", "iadms-state", "`directory` of iadms's journal, received backups and log")
	fs.StringVar(&c.logPath, "log", "", "log `file` (default STATE/iadms.log; - for standard error)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.DurationVar(&c.poll, "poll", time.Second, "polling interval (notifications trigger extra polls)")
	fs.DurationVar(&c.snmpTimeout, "snmp-timeout", 2*time.Second, "wait for one SNMP answer")
	fs.IntVar(&c.snmpRetries, "snmp-retries", 1, "SNMP retransmissions after a timeout")
}

// env holds what a command built; close releases it.
type env struct {
	io      IO
	c       *common
	log     *slog.Logger
	logFile *os.File
	creds   *creds.File
	closers []func()
}

func (e *env) close() {
	for i := len(e.closers) - 1; i >= 0; i-- {
		e.closers[i]()
	}
	if e.logFile != nil {
		e.logFile.Close()
	}
}

// setup loads the credentials and opens the log.
func setup(c *common, stdio IO) (*env, error) {
	e := &env{io: stdio, c: c}
	if err := os.MkdirAll(c.state, 0o700); err != nil {
		return nil, usagef("state directory: %w", err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, usagef("--log-level: %w", err)
	}
	var w io.Writer = stdio.Stderr
	switch c.logPath {
	case "-":
	case "":
		c.logPath = filepath.Join(c.state, "iadms.log")
		fallthrough
	default:
		f, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, usagef("--log: %w", err)
		}
		e.logFile, w = f, f
	}
	e.log = slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
	cf, err := creds.Load(c.credsPath)
	if err != nil {
		e.close()
		return nil, usageError{err}
	}
	e.creds = cf
	return e, nil
}

// target is one device to act on.
type target struct {
	fleet.Target
	entry creds.Entry
}

// targets resolves --device or --targets.
func (e *env) targets(needFleet bool) ([]target, error) {
	c := e.c
	var ts []fleet.Target
	switch {
	case c.device != "" && c.targets != "":
		return nil, usagef("give --device or --targets, not both")
	case c.device != "":
		a, err := device.ParseAddr(c.device)
		if err != nil {
			return nil, usageError{err}
		}
		name := c.name
		if name == "" {
			name = nameFromAddr(a)
		}
		ts = []fleet.Target{{Name: name, Addr: a, CredRef: c.cred}}
	case c.targets != "":
		f, err := os.Open(c.targets)
		if err != nil {
			return nil, usageError{err}
		}
		defer f.Close()
		ts, err = fleet.ParseTargets(f, filepath.Dir(c.targets))
		if err != nil {
			return nil, usageError{fmt.Errorf("%s: %w", c.targets, err)}
		}
	case needFleet:
		return nil, usagef("give --device IP[:PORT] or --targets FILE")
	default:
		return nil, usagef("give --device IP[:PORT]")
	}
	out := make([]target, 0, len(ts))
	for _, t := range ts {
		entry, err := e.creds.SNMP(t.CredRef)
		if err != nil {
			return nil, usageError{fmt.Errorf("device %s: %w", t.Name, err)}
		}
		out = append(out, target{Target: t, entry: entry})
	}
	return out, nil
}

// nameFromAddr makes a file-name-safe device name: "127.0.0.1_16161".
func nameFromAddr(a netip.AddrPort) string {
	s := strings.NewReplacer(":", "-", "[", "", "]", "").Replace(a.Addr().String())
	return s + "_" + strconv.Itoa(int(a.Port()))
}

func (e *env) client(t target, readOnly bool) (*device.Client, error) {
	entry := t.entry
	if readOnly {
		entry = entry.ReadOnly()
	}
	cl, err := device.New(t.Addr, entry, device.Options{Timeout: e.c.snmpTimeout, Retries: e.c.snmpRetries, Logger: e.log})
	if err != nil {
		return nil, usageError{err}
	}
	e.closers = append(e.closers, func() { cl.Close() })
	return cl, nil
}

// fileFlags choose where devices get images and put backups.
type fileFlags struct {
	tftp          string
	tftpAdvertise string
	server        string
	serverCred    string
	serverPrefix  string
	maxBackup     int64
}

func (f *fileFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.tftp, "tftp", "127.0.0.1:6969", "embedded TFTP server's listen `address` (devices fetch images and store backups there)")
	fs.StringVar(&f.tftpAdvertise, "tftp-advertise", "", "`IP:PORT` devices are told to use for the embedded server (default: --tftp)")
	fs.StringVar(&f.server, "server", "", "use an external server instead of the embedded one: tftp://IP[:PORT] or ftp://IP[:PORT]")
	fs.StringVar(&f.serverCred, "server-cred", "", "credentials entry (kind ftp) for an ftp:// --server")
	fs.StringVar(&f.serverPrefix, "server-prefix", "", "prefix of backup file names on an external server")
	fs.Int64Var(&f.maxBackup, "max-backup-size", 64<<20, "largest backup the embedded server accepts, in bytes")
}

// files starts the embedded server or describes the external one.
func (e *env) files(f *fileFlags) (procedure.Files, error) {
	if f.server == "" {
		opts := fileserver.Options{Listen: f.tftp, BackupDir: filepath.Join(e.c.state, "backups"), MaxBackupSize: f.maxBackup, Logger: e.log}
		if f.tftpAdvertise != "" {
			ap, err := netip.ParseAddrPort(f.tftpAdvertise)
			if err != nil {
				return nil, usagef("--tftp-advertise: %w", err)
			}
			opts.Advertise = ap
		}
		s, err := fileserver.Start(opts)
		if err != nil {
			return nil, err
		}
		e.closers = append(e.closers, func() {
			s.Close()
			e.log.Info("embedded tftp server stopped", "bytes_served", s.Served())
		})
		e.log.Info("embedded tftp server", "addr", s.Addr())
		return fileserver.Files{Server: s}, nil
	}
	u, err := url.Parse(f.server)
	if err != nil || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, usagef("--server %q: want tftp://IP[:PORT] or ftp://IP[:PORT]", f.server)
	}
	r := &fileserver.Remote{Prefix: f.serverPrefix, Work: e.c.state}
	port := uint16(0)
	switch u.Scheme {
	case "tftp":
		r.Protocol, port = mib.ProtocolTFTP, 69
	case "ftp":
		r.Protocol, port = mib.ProtocolFTP, 21
		if f.serverCred == "" {
			return nil, usagef("an ftp:// --server needs --server-cred NAME (an ftp entry of the credentials file)")
		}
		login, err := e.creds.FTP(f.serverCred)
		if err != nil {
			return nil, usageError{err}
		}
		r.Login = login
	default:
		return nil, usagef("--server %q: scheme must be tftp or ftp", f.server)
	}
	host := u.Hostname()
	a, err := netip.ParseAddr(host)
	if err != nil {
		return nil, usagef("--server %q: the host must be an IP address", f.server)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return nil, usagef("--server %q: bad port", f.server)
		}
		port = uint16(n)
	}
	r.Server = netip.AddrPortFrom(a, port)
	return r, nil
}

// trapFlags choose where notifications are received.
type trapFlags struct{ listen string }

func (t *trapFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.listen, "trap-listen", "127.0.0.1:16162", "UDP `address` to receive the devices' notifications on (the agents' -trap destination); \"off\" to poll only")
}

// listener starts the notification listener, or returns nil when off.
func (e *env) listener(ctx context.Context, t *trapFlags) (*traps.Listener, error) {
	if t.listen == "" || t.listen == "off" {
		return nil, nil
	}
	l, err := traps.Listen(traps.Options{Addr: t.listen, Logger: e.log})
	if err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := l.Serve(lctx); err != nil {
			e.log.Error("notification listener stopped", "err", err)
		}
	}()
	e.closers = append(e.closers, func() {
		cancel()
		<-done
		rcv, drop, bad := l.Stats()
		e.log.Info("notifications", "received", rcv, "dropped", drop, "ignored", bad)
	})
	e.log.Info("listening for notifications", "addr", l.Addr())
	return l, nil
}

// timeoutFlags are the per-step timeouts.
func registerTimeouts(fs *flag.FlagSet, t *procedure.Timeouts) {
	fs.DurationVar(&t.Preflight, "timeout-reach", time.Minute, "wait for an unreachable device before a step fails")
	fs.DurationVar(&t.Backup, "timeout-backup", 5*time.Minute, "backup step timeout")
	fs.DurationVar(&t.Upgrade, "timeout-upgrade", 30*time.Minute, "upgrade (image download and write) step timeout")
	fs.DurationVar(&t.Reset, "timeout-reset", 5*time.Minute, "wait for the device to come back after a reset")
	fs.DurationVar(&t.Commit, "timeout-commit", 10*time.Minute, "wait for the new software to commit after its health check")
	fs.DurationVar(&t.Restore, "timeout-restore", 5*time.Minute, "restore step timeout")
	fs.DurationVar(&t.Revert, "timeout-revert", 10*time.Minute, "revert step timeout")
}

// parse parses flags, turning errors into exit codes.
func parse(fs *flag.FlagSet, args []string, stdio IO) (int, bool) {
	fs.SetOutput(stdio.Stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK, false
		}
		return ExitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stdio.Stderr, "iadms %s: unexpected arguments %q (secrets belong in the credentials file, not on the command line)\n", fs.Name(), fs.Args())
		return ExitUsage, false
	}
	return 0, true
}

// exitFor prints err and returns its exit code.
func exitFor(stdio IO, cmd string, err error) int {
	var ue usageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stdio.Stderr, "iadms %s: %v\n", cmd, err)
		return ExitUsage
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(stdio.Stderr, "iadms %s: interrupted; run the same command again to resume\n", cmd)
		return ExitInterrupted
	case errors.Is(err, journal.ErrLocked):
		fmt.Fprintf(stdio.Stderr, "iadms %s: %v (is another iadms using the same --state directory?)\n", cmd, err)
		return ExitUsage
	}
	fmt.Fprintf(stdio.Stderr, "iadms %s: %v\n", cmd, err)
	return ExitFailed
}

// observer builds the progress view: bars on a terminal, lines otherwise.
type view interface {
	procedure.Observer
	Print(format string, args ...any)
}

func newView(stdio IO, total int) (view, func()) {
	if term.IsTerminal(stdio.Stdout) {
		b := term.NewBars(stdio.Stdout, term.Width(stdio.Stdout), total, 200*time.Millisecond)
		b.Verbose = total <= 1
		return b, b.Close
	}
	return &term.Lines{W: stdio.Stdout, Progress: total <= 1}, func() {}
}
