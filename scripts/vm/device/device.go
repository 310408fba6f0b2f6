// Package device runs the QEMU device VM that scripts/vm/firmware builds
// as one device over many boots, and its tests are the device scenarios
// (golden path over TFTP and FTP, bad software, power cuts, hostile
// network, U-Boot, arm64), driven from the host with net-snmp's tools,
// snmptrapd, in.tftpd and vsftpd on the host's loopback. Its benchmarks
// are the ARM rows of make bench: the arm binaries' sizes, and the
// agent's upgrade throughput and memory inside the emulated guest.
//
// A Device is a disk image and the boots of it. Each boot is one QEMU
// process (-no-reboot, one vCPU, 256 MiB, user-mode networking only: the
// agent's SNMP port is forwarded from 127.0.0.1:SNMPPort, and the guest
// reaches the host's loopback servers as 10.0.2.2) with its own console
// log, boot-NN.log. When the guest restarts ("reboot: Restarting
// system", or a kernel panic with panic=1), QEMU exits and the Device
// starts the next boot of the same disk at once: a guest reboot is a real
// reset of the machine (RAM, devices and CPU start afresh; only the disk
// persists). A power-off ends the boots; PowerCut kills QEMU with SIGKILL
// (by its PID, only the QEMU it started) and PowerOn boots again.
//
// Tests synchronise on console lines (Cursor.Wait, WaitReady), never on
// sleeps, and run shell commands in the guest through the start-up
// script's serial console (Run). On failure, Report names the directory
// holding every boot's console log and shows the last lines.
//
// The package must never attach the guest to any network but QEMU's
// user-mode one, and never kill a process it did not start.
package device

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iadsafe/iad-agent/scripts/vm"
	"github.com/iadsafe/iad-agent/scripts/vm/firmware"
)

// Errors returned by the package.
var (
	ErrOff     = errors.New("device: powered off")
	ErrCommand = errors.New("device: console command failed")
)

// Options configure New.
type Options struct {
	Firmware *firmware.Firmware
	// UBoot boots the U-Boot disk through U-Boot instead of the kernel
	// and the iad-boot initramfs.
	UBoot bool
	Site  firmware.Site
	// Dir holds the disk image and the console logs.
	Dir string
	// SNMPPort is the host port (on 127.0.0.1) forwarded to the agent's
	// UDP port 161.
	SNMPPort int
	// MaxBoots stops a device that keeps rebooting (default 25).
	MaxBoots int
}

// Line is one console line, the boot it came from (1, 2, …) and when
// the host read it.
type Line struct {
	Boot int
	Text string
	At   time.Time
}

// Boot is one boot of the device.
type Boot struct {
	N       int
	Log     string
	Started time.Time
	Ended   time.Time
	End     vm.End
	// Ready is when the agent served SNMP and the console answered (zero
	// if never).
	Ready            time.Time
	serving, console bool
}

// Device is one device VM: a disk and its boots.
type Device struct {
	opts    Options
	Disk    string
	started time.Time

	mu      sync.Mutex
	boots   []*Boot
	lines   []Line
	machine *vm.Machine
	on      bool // a boot runs or the next one is being started
	cutting bool
	err     error // why the device stopped, if not by a power-off or cut
	changed chan struct{}
	cmdID   int
}

// New creates the device's disk in opts.Dir. It does not boot: call
// PowerOn.
func New(ctx context.Context, opts Options) (*Device, error) {
	if opts.MaxBoots == 0 {
		opts.MaxBoots = 25
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("device: %w", err)
	}
	d := &Device{opts: opts, Disk: filepath.Join(opts.Dir, "device.img"), changed: make(chan struct{}), started: time.Now()}
	if err := opts.Firmware.NewDisk(ctx, d.Disk, opts.UBoot, opts.Site); err != nil {
		return nil, err
	}
	return d, nil
}

// SNMPTarget is the agent's address for net-snmp's tools.
func (d *Device) SNMPTarget() string { return "127.0.0.1:" + strconv.Itoa(d.opts.SNMPPort) }

// notifyLocked wakes every waiter; d.mu is held.
func (d *Device) notifyLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
}

// PowerOn boots the device. It fails if it is already on.
func (d *Device) PowerOn() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.on {
		return errors.New("device: already on")
	}
	d.err = nil
	return d.bootLocked()
}

// bootLocked starts the next boot; d.mu is held.
func (d *Device) bootLocked() error {
	n := len(d.boots) + 1
	b := &Boot{N: n, Log: filepath.Join(d.opts.Dir, fmt.Sprintf("boot-%02d.log", n)), Started: time.Now()}
	fw := d.opts.Firmware
	c := vm.Config{
		Kernel:  fw.Kernel,
		Initrd:  fw.Initrd,
		Append:  "quiet",
		Disks:   []string{d.Disk},
		Net:     &vm.UserNet{HostFwd: []string{fmt.Sprintf("udp:127.0.0.1:%d-:161", d.opts.SNMPPort)}},
		LogPath: b.Log,
		OnLine:  func(l string) { d.line(b, l) },
	}
	if d.opts.UBoot {
		c.BIOS = fw.UBoot
	}
	m, err := vm.Start(c)
	if err != nil {
		d.on = false
		d.err = err
		d.notifyLocked()
		return err
	}
	d.boots = append(d.boots, b)
	d.machine = m
	d.on = true
	d.notifyLocked()
	go d.watch(b, m)
	return nil
}

// Markers the start-up script and the agent print.
var (
	reServing = regexp.MustCompile(`level=INFO msg=serving `)
	reConsole = regexp.MustCompile(`^IAD-VM-CONSOLE-READY$`)
)

func (d *Device) line(b *Boot, text string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lines = append(d.lines, Line{Boot: b.N, Text: text, At: time.Now()})
	if reServing.MatchString(text) {
		b.serving = true
	}
	if reConsole.MatchString(text) {
		b.console = true
	}
	if b.serving && b.console && b.Ready.IsZero() {
		b.Ready = time.Now()
	}
	d.notifyLocked()
}

// watch waits for a boot to end and starts the next one after a guest
// reboot.
func (d *Device) watch(b *Boot, m *vm.Machine) {
	<-m.Done()
	end := m.End()
	d.mu.Lock()
	defer d.mu.Unlock()
	b.Ended, b.End = time.Now(), end
	if d.cutting {
		b.End = vm.Killed
	}
	switch {
	case b.End == vm.Reboot || b.End == vm.Panic:
		if len(d.boots) >= d.opts.MaxBoots {
			d.on = false
			d.err = fmt.Errorf("device: %d boots: stopped (a boot loop?)", len(d.boots))
		} else if err := d.bootLocked(); err != nil {
			d.err = fmt.Errorf("device: rebooting: %w", err)
		}
	case b.End == vm.Failed:
		d.on = false
		d.err = fmt.Errorf("device: QEMU failed in boot %d (see %s)", b.N, b.Log)
	default: // power-off or power cut
		d.on = false
	}
	d.notifyLocked()
}

// PowerCut kills QEMU with SIGKILL, as pulling the plug: the guest's
// unsynced page cache is lost, the disk keeps what was written.
func (d *Device) PowerCut() {
	d.mu.Lock()
	m := d.machine
	if !d.on || m == nil {
		d.mu.Unlock()
		return
	}
	d.cutting = true
	d.mu.Unlock()
	m.Stop()
	// Wait until watch has recorded the end (it takes d.mu).
	for {
		d.mu.Lock()
		on, ch := d.on, d.changed
		if !on {
			d.cutting = false
			d.mu.Unlock()
			return
		}
		d.mu.Unlock()
		<-ch
	}
}

// Close cuts the power if the device is on.
func (d *Device) Close() { d.PowerCut() }

// Boots returns a copy of the boots so far.
func (d *Device) Boots() []Boot {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]Boot, len(d.boots))
	for i, b := range d.boots {
		out[i] = *b
	}
	return out
}

// BootCount is the number of boots so far.
func (d *Device) BootCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.boots)
}

// Cursor is a position in the console lines of all boots.
type Cursor struct {
	d   *Device
	pos int
}

// Mark returns a cursor at the end of the console so far: Wait then sees
// only later lines.
func (d *Device) Mark() *Cursor {
	d.mu.Lock()
	defer d.mu.Unlock()
	return &Cursor{d: d, pos: len(d.lines)}
}

// Wait waits for the next line matching re (following reboots) and
// returns it with its submatches; it fails when the device is off and
// no line is left, or ctx ends.
func (c *Cursor) Wait(ctx context.Context, re *regexp.Regexp) (Line, []string, error) {
	d := c.d
	for {
		d.mu.Lock()
		for ; c.pos < len(d.lines); c.pos++ {
			if sm := re.FindStringSubmatch(d.lines[c.pos].Text); sm != nil {
				l := d.lines[c.pos]
				c.pos++
				d.mu.Unlock()
				return l, sm, nil
			}
		}
		on, derr, ch := d.on, d.err, d.changed
		d.mu.Unlock()
		if !on {
			if derr != nil {
				return Line{}, nil, fmt.Errorf("%w before a line matched %q: %w", ErrOff, re, derr)
			}
			return Line{}, nil, fmt.Errorf("%w before a line matched %q", ErrOff, re)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return Line{}, nil, fmt.Errorf("device: waiting for %q: %w", re, ctx.Err())
		}
	}
}

// WaitReady waits until a boot numbered at least minBoot has its agent
// serving SNMP and its console answering, and returns that boot's
// number. Boots in between (a crashing agent restarts the device) are
// passed over.
func (d *Device) WaitReady(ctx context.Context, minBoot int) (int, error) {
	for {
		d.mu.Lock()
		for _, b := range d.boots {
			if b.N >= minBoot && b.serving && b.console && b.End == vm.Running {
				d.mu.Unlock()
				return b.N, nil
			}
		}
		on, derr, ch, n := d.on, d.err, d.changed, len(d.boots)
		d.mu.Unlock()
		if !on {
			if derr != nil {
				return 0, fmt.Errorf("%w after %d boots, before boot %d was ready: %w", ErrOff, n, minBoot, derr)
			}
			return 0, fmt.Errorf("%w after %d boots, before boot %d was ready", ErrOff, n, minBoot)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return 0, fmt.Errorf("device: waiting for boot %d to be ready (%d boots so far): %w", minBoot, n, ctx.Err())
		}
	}
}

// WaitBoot waits until boot n has started (its QEMU runs) and returns
// it.
func (d *Device) WaitBoot(ctx context.Context, n int) (Boot, error) {
	for {
		d.mu.Lock()
		if len(d.boots) >= n {
			b := *d.boots[n-1]
			d.mu.Unlock()
			return b, nil
		}
		on, ch := d.on, d.changed
		d.mu.Unlock()
		if !on {
			return Boot{}, fmt.Errorf("%w before boot %d", ErrOff, n)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return Boot{}, fmt.Errorf("device: waiting for boot %d: %w", n, ctx.Err())
		}
	}
}

var reCmdEnd = regexp.MustCompile(`^IAD-CMD-END (\d+) rc=(\d+)$`)

// Run runs a shell command in the guest through the serial console and
// returns its output (stdout and stderr, empty lines dropped). A
// non-zero exit status is an error wrapping ErrCommand, with the output.
func (d *Device) Run(ctx context.Context, cmd string) (string, error) {
	if strings.ContainsAny(cmd, "\n\x01") {
		return "", fmt.Errorf("device: command %q: one line without Ctrl-A, please", cmd)
	}
	d.mu.Lock()
	d.cmdID++
	id := strconv.Itoa(d.cmdID)
	m := d.machine
	boot := len(d.boots)
	c := &Cursor{d: d, pos: len(d.lines)}
	d.mu.Unlock()
	if err := m.Send("IADCMD " + id + " " + cmd); err != nil {
		return "", err
	}
	prefix := "IAD-CMD-OUT " + id + ": "
	var out []string
	for {
		l, sm, err := c.Wait(ctx, regexp.MustCompile(`^IAD-CMD-(OUT|END) `+id+`\b`))
		if err != nil {
			return strings.Join(out, "\n"), fmt.Errorf("device: command %q: %w", cmd, err)
		}
		if l.Boot != boot {
			return strings.Join(out, "\n"), fmt.Errorf("device: command %q: the device rebooted", cmd)
		}
		if sm[1] == "OUT" {
			out = append(out, strings.TrimPrefix(l.Text, prefix))
			continue
		}
		em := reCmdEnd.FindStringSubmatch(l.Text)
		text := strings.Join(out, "\n")
		if em == nil || em[2] != "0" {
			return text, fmt.Errorf("%w: %q: %s\n%s", ErrCommand, cmd, l.Text, text)
		}
		return text, nil
	}
}

// Report says where every boot's console log is and shows the last
// lines of the console, for failure messages.
func (d *Device) Report(lines int) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "device VM: %d boot(s), console logs in %s:\n", len(d.boots), d.opts.Dir)
	for _, bt := range d.boots {
		end := string(bt.End)
		if bt.End == vm.Running {
			end = "running"
		}
		fmt.Fprintf(&b, "  %s  %s\n", filepath.Base(bt.Log), end)
	}
	if d.err != nil {
		fmt.Fprintf(&b, "stopped: %v\n", d.err)
	}
	from := max(0, len(d.lines)-lines)
	fmt.Fprintf(&b, "last %d console lines:\n", len(d.lines)-from)
	for _, l := range d.lines[from:] {
		fmt.Fprintf(&b, "  [boot %d] %s\n", l.Boot, l.Text)
	}
	if len(d.boots) > 0 {
		fmt.Fprintf(&b, "qemu: %s\n", strings.Join(d.machine.Cmd, " "))
	}
	return b.String()
}
