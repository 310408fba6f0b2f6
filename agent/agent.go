package agent

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/iadsafe/iad-agent/agent/agentx"
	"github.com/iadsafe/iad-agent/agent/backupcrypt"
	"github.com/iadsafe/iad-agent/agent/config"
	"github.com/iadsafe/iad-agent/agent/journal"
	"github.com/iadsafe/iad-agent/agent/migrate"
	"github.com/iadsafe/iad-agent/agent/notify"
	"github.com/iadsafe/iad-agent/agent/snmp"
	"github.com/iadsafe/iad-agent/bank"
	"github.com/iadsafe/iad-agent/bank/setup"
	"github.com/iadsafe/iad-agent/mib"
)

// Options configure an Agent. Zero values get the documented defaults.
type Options struct {
	DataDir     string              // state, journal, file banks, config; default "./var"
	Listen      string              // UDP address; default "127.0.0.1:16161"
	ROCommunity string              // default "public"; none when SNMPConfigFile is set
	RWCommunity string              // empty: no v2c SET unless SNMPConfigFile has a rw community
	Traps       []string            // HOST:PORT destinations of v2c traps
	Trusted     []ed25519.PublicKey // keys images must be signed with
	Hardware    string              // hardware-compatibility string; default "iad-generic"
	Version     string              // version of the factory software in bank A; default "1.0.0"
	SlotSize    int64               // bytes per file-backed slot; default 512 MiB (sparse)
	// BankConfig is a bank configuration file (see bank/setup): which
	// storage backs the slots and where the boot state lives. Empty
	// means two file slots and a JSON state under DataDir/bank.
	BankConfig string
	// CommitAfter is the health check: a trial boot is committed once the
	// agent has served SNMP for this long. Default 30s.
	CommitAfter time.Duration
	// OpRetention is how long completed rows stay readable; at least 5 min.
	OpRetention time.Duration
	// ResetGrace lets the SET response and notifications leave before a
	// reset. Default 500ms.
	ResetGrace    time.Duration
	TFTPBlockSize int // default 1468
	Logger        *slog.Logger

	// ReloadCmd, when set, is run through /bin/sh -c after every change
	// of the live configuration; if it fails, the previous configuration
	// is put back. ReloadTimeout bounds it (default 1 min).
	ReloadCmd     string
	ReloadTimeout time.Duration
	// ConfigKey, when set, encrypts every backup; restores then accept
	// only archives encrypted under it.
	ConfigKey *backupcrypt.Key
	// FactoryConfigFormat is the configuration format of the factory
	// software in bank A; default 1.
	FactoryConfigFormat uint32
	// SNMPConfigFile holds communities, SNMPv3 users and notification
	// destinations (see package snmpconf); empty: none.
	SNMPConfigFile string
	// AgentX selects sub-agent mode: the master's AgentX socket
	// ("unix:/path", "/path" or "tcp:HOST:PORT"). The agent then serves
	// IAD-UPGRADE-MIB through the master only (no UDP port of its own) and
	// sends notifications through it as well.
	AgentX string
}

func (o *Options) setDefaults() error {
	if o.DataDir == "" {
		o.DataDir = "./var"
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:16161"
	}
	if o.ROCommunity == "" && o.SNMPConfigFile == "" {
		o.ROCommunity = "public"
	}
	if o.Hardware == "" {
		o.Hardware = "iad-generic"
	}
	if o.Version == "" {
		o.Version = "1.0.0"
	}
	if o.SlotSize == 0 {
		o.SlotSize = 512 << 20
	}
	if o.SlotSize < 0 {
		return fmt.Errorf("agent: slot size %d must be positive", o.SlotSize)
	}
	if o.CommitAfter == 0 {
		o.CommitAfter = 30 * time.Second
	}
	if o.OpRetention == 0 {
		o.OpRetention = 15 * time.Minute
	}
	if o.OpRetention < 5*time.Minute {
		return fmt.Errorf("agent: op retention %v is below the MIB's 5 minute minimum", o.OpRetention)
	}
	if o.ResetGrace == 0 {
		o.ResetGrace = 500 * time.Millisecond
	}
	if o.TFTPBlockSize == 0 {
		o.TFTPBlockSize = 1468
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.FactoryConfigFormat == 0 {
		o.FactoryConfigFormat = 1
	}
	return nil
}

// Agent is one running iad-agent.
type Agent struct {
	opts    Options
	log     *slog.Logger
	start   time.Time
	journal *journal.Journal
	banks   *bank.Banks
	devices []io.Closer
	config  *config.Store
	engine  *snmp.Engine
	notify  *notify.Sender
	agentx  *agentx.Client // sub-agent mode; nil when serving UDP
	boot    bank.BootResult
	conn    net.PacketConn

	// migrator converts and applies configurations (configuration.go).
	migrator *migrate.Migrator

	mu      sync.Mutex
	rows    map[uint32]*row
	running uint32 // index of the running operation, 0 if none
	opWG    sync.WaitGroup
	resetCh chan struct{}
	// startup holds notifications decided before the sender runs.
	startup []func()
	// lastBackup is what iadConfigLastBackup* report (guarded by mu).
	lastBackup lastBackup
}

// New opens the agent's state, boots the bank the boot state selects
// (spending a trial try if one is armed) and binds the SNMP port. It does
// not serve yet: call Run.
func New(ctx context.Context, opts Options) (a *Agent, err error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	a = &Agent{opts: opts, log: opts.Logger, start: time.Now(), rows: map[uint32]*row{}, resetCh: make(chan struct{}, 1)}
	// "return nil, err" clears a before deferred calls run: keep the
	// agent to clean up in a variable of its own.
	partial := a
	defer func() {
		if err != nil {
			partial.close()
		}
	}()
	for _, d := range []string{opts.DataDir, filepath.Join(opts.DataDir, "bank")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("agent: %w", err)
		}
	}
	if a.journal, err = journal.Open(ctx, filepath.Join(opts.DataDir, "journal.db")); err != nil {
		return nil, err
	}
	bankOpts, err := a.openBank()
	if err != nil {
		return nil, err
	}
	bankOpts.Logger = a.log
	bankOpts.Factory = bank.SlotInfo{Version: opts.Version, Hardware: opts.Hardware, ConfigFormat: opts.FactoryConfigFormat, Factory: true}
	a.banks, err = bank.New(ctx, bankOpts)
	if err != nil {
		return nil, err
	}
	if a.boot, err = a.banks.Boot(ctx); err != nil {
		return nil, err
	}
	a.log.Info("booted", "bank", a.boot.Slot, "trial", a.boot.Trial, "version", a.currentVersion())
	if a.boot.Reverted {
		a.log.Warn("boot reverted", "failed_bank", a.boot.FailedSlot, "reason", a.boot.Reason)
	}
	if err := a.openConfig(ctx); err != nil {
		return nil, err
	}
	snmpConf, local, err := a.openSNMPv3(ctx)
	if err != nil {
		return nil, err
	}
	a.engine = snmp.New(snmp.Options{
		ReadCommunity:  opts.ROCommunity,
		WriteCommunity: opts.RWCommunity,
		Communities:    snmpConf.Communities,
		Local:          local,
		AuthenTraps:    snmpConf.AuthenTraps,
		OnAuthFailure:  func() { a.notify.AuthenticationFailure() },
		Logger:         a.log,
		Start:          a.start,
		System: snmp.SystemInfo{
			Descr:    "iad-agent " + a.currentVersion() + " (" + opts.Hardware + ")",
			ObjectID: mib.IadUpgradeMIB,
			Name:     hostname(),
		},
	})
	var master notify.Master
	if opts.AgentX != "" {
		if a.agentx, err = a.newSubAgent(); err != nil {
			return nil, err
		}
		master = a.agentx
	}
	if a.notify, err = notify.New(notify.Options{Targets: opts.Traps, Destinations: destinations(snmpConf.Notify),
		Master: master, Local: local, Uptime: a.engine.Uptime, Logger: a.log}); err != nil {
		return nil, err
	}
	if err := a.registerMIB(); err != nil {
		return nil, err
	}
	if err := a.recoverOps(ctx); err != nil {
		return nil, err
	}
	if a.agentx != nil {
		return a, nil
	}
	if a.conn, err = net.ListenPacket("udp", opts.Listen); err != nil {
		return nil, fmt.Errorf("agent: listen %s: %w", opts.Listen, err)
	}
	return a, nil
}

// openBank opens the slots and the boot state: from opts.BankConfig, or
// two file slots and a JSON state under DataDir/bank.
func (a *Agent) openBank() (bank.Options, error) {
	if a.opts.BankConfig != "" {
		c, err := setup.ParseFile(a.opts.BankConfig)
		if err != nil {
			return bank.Options{}, err
		}
		o, err := c.Open()
		if err != nil {
			return bank.Options{}, err
		}
		a.devices = append(a.devices, o)
		a.log.Info("bank storage", "config", a.opts.BankConfig, "slot_a", c.Slots[bank.SlotA].Type, "slot_b", c.Slots[bank.SlotB].Type, "state", c.State.Type, "boot_counter", c.State.BootCounter)
		return o.Options(c), nil
	}
	devs := map[bank.Slot]bank.Device{}
	for _, s := range []bank.Slot{bank.SlotA, bank.SlotB} {
		f, err := bank.OpenFile(filepath.Join(a.opts.DataDir, "bank", "slot-"+s.String()+".img"), a.opts.SlotSize)
		if err != nil {
			return bank.Options{}, fmt.Errorf("agent: slot %s: %w", s, err)
		}
		a.devices = append(a.devices, syncCloser{f})
		devs[s] = f
	}
	return bank.Options{Devices: devs, Store: bank.NewFileStore(filepath.Join(a.opts.DataDir, "bank", "state.json"))}, nil
}

// syncCloser syncs a file slot before closing it.
type syncCloser struct{ f *bank.File }

func (c syncCloser) Close() error { c.f.Sync(); return c.f.Close() }

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "iad"
	}
	return h
}

// Addr is the bound SNMP address; nil in AgentX sub-agent mode.
func (a *Agent) Addr() net.Addr {
	if a.conn == nil {
		return nil
	}
	return a.conn.LocalAddr()
}

// Run serves SNMP and runs operations until ctx is done (nil) or a reset
// operation asks for a restart (ErrResetRequested). Either way the
// journal is closed and every file synced before it returns.
func (a *Agent) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	notifyCtx, stopNotify := context.WithCancel(context.Background())
	wg.Add(1)
	go func() { defer wg.Done(); a.notify.Run(notifyCtx) }()

	a.notify.Notify(mib.ColdStart)
	for _, f := range a.startup {
		f()
	}
	a.startup = nil

	serveErr := make(chan error, 1)
	// A sub-agent session outlives ctx until the notifications are
	// flushed: they leave through the master.
	stopSubAgent := a.runSubAgent(ctx)
	if a.agentx == nil {
		// Logged before the first answer can leave, so a log reader that
		// got an answer also finds this line.
		a.log.Info("serving", "addr", a.conn.LocalAddr().String(), "version", a.currentVersion(), "bank", a.banks.Running())
		go func() { serveErr <- a.engine.Serve(ctx, a.conn) }()
	}
	go a.healthCheck(ctx)
	go a.ageRows(ctx)

	var err error
	select {
	case <-ctx.Done():
	case <-a.resetCh:
		err = ErrResetRequested
	case e := <-serveErr:
		err = fmt.Errorf("agent: serve: %w", e)
	}
	cancel()
	if a.agentx != nil {
		a.agentx.RefuseSets()
	}
	a.opWG.Wait()
	stopNotify()
	wg.Wait()
	stopSubAgent()
	a.close()
	return err
}

func (a *Agent) close() {
	if a.conn != nil {
		a.conn.Close()
	}
	if a.journal != nil {
		a.journal.Close()
	}
	for _, d := range a.devices {
		d.Close()
	}
}

func (a *Agent) currentVersion() string {
	s := a.banks.Snapshot()
	return s.Slots[a.banks.Running()].Version
}

// errorsIsAny reports whether err matches any of targets.
func errorsIsAny(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
