package procedure

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/agent/config"
	"github.com/iadsafe/iad-agent/cmd/iadms/internal/device"
	"github.com/iadsafe/iad-agent/mib"
)

// fakeDevice simulates an iad-agent's operations and A/B banks closely
// enough for the procedure's decisions: operations complete when started
// (a reset on the next request), trial boots spend tries and revert when
// they run out, and faults are scripted.
type fakeDevice struct {
	t     *testing.T
	mu    sync.Mutex
	files *fakeFiles

	hw      string
	limit   uint32
	banks   [3]fakeBank
	active  mib.Bank // committed bank
	trial   mib.Bank // armed or running trial, 0 if none
	tries   uint32
	running mib.Bank
	booted  time.Time
	ops     map[uint32]*device.Op
	reset   uint32 // reset row waiting for the restart

	// Faults.
	failNext   map[mib.OpType][]mib.FailCause // causes for successive starts
	trialFails bool                           // trial boots revert at once
	commitFrom int                            // trial boots from this one commit when read (0: never)
	boots      int                            // trial boots so far
	loseAnswer map[mib.OpType]bool            // SET applied but its answer lost (once)
	down       int                            // requests to leave unanswered
	readOnly   bool                           // SETs are dropped
	needsForce bool                           // restores cross a major format version

	restored []string // restore files, with "+force" when forced

	started []mib.OpType
}

type fakeBank struct {
	version string
	state   mib.BankState
}

func newFake(t *testing.T, files *fakeFiles) *fakeDevice {
	d := &fakeDevice{
		t: t, files: files, hw: "hw1", limit: 3, active: mib.BankA, running: mib.BankA,
		booted: time.Now().Add(-time.Hour), ops: map[uint32]*device.Op{}, commitFrom: 1,
		failNext: map[mib.OpType][]mib.FailCause{}, loseAnswer: map[mib.OpType]bool{},
	}
	d.banks[mib.BankA] = fakeBank{"1.0.0", mib.BankActive}
	d.banks[mib.BankB] = fakeBank{"", mib.BankEmpty}
	return d
}

var errDown = fmt.Errorf("%w: fake device down", device.ErrUnreachable)

// request is the common start of every request: the restart after a
// reset, and scripted unreachability.
func (d *fakeDevice) request() error {
	if d.reset != 0 {
		d.restart()
	}
	if d.down > 0 {
		d.down--
		return errDown
	}
	return nil
}

func (d *fakeDevice) restart() {
	d.ops[d.reset].State, d.ops[d.reset].Progress = mib.OpSuccessful, 100
	d.reset = 0
	d.booted = time.Now()
	d.running = d.active
	if d.trial == 0 {
		return
	}
	if d.trialFails || d.tries == 0 {
		d.banks[d.trial].state = mib.BankBad
		d.trial, d.tries = 0, 0
		return
	}
	d.tries--
	d.boots++
	d.running = d.trial
}

func (d *fakeDevice) Software(ctx context.Context) (device.Software, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.request(); err != nil {
		return device.Software{}, err
	}
	if d.trial != 0 && d.running == d.trial && d.commitFrom > 0 && d.boots >= d.commitFrom {
		d.banks[d.active].state = mib.BankValid
		d.active, d.trial, d.tries = d.trial, 0, 0
		d.banks[d.active].state = mib.BankActive
	}
	now := time.Now()
	sw := device.Software{
		Uptime: now.Sub(d.booted), Version: d.banks[d.running].version, Active: d.running, Next: d.active,
		TriesLeft: d.tries, BootLimit: d.limit, Hardware: d.hw, ReadAt: now, BootedNear: d.booted,
	}
	if d.trial != 0 {
		sw.Next = d.trial
	}
	for _, b := range []mib.Bank{mib.BankA, mib.BankB} {
		sw.Banks[b] = device.Bank{Version: d.banks[b].version, State: d.banks[b].state}
		if b == d.trial {
			sw.Banks[b].State = mib.BankTrial
		}
	}
	return sw, nil
}

func (d *fakeDevice) Op(ctx context.Context, idx uint32) (device.Op, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.request(); err != nil {
		return device.Op{}, err
	}
	op, ok := d.ops[idx]
	if !ok {
		return device.Op{}, fmt.Errorf("%w: %d", device.ErrNoSuchOp, idx)
	}
	return *op, nil
}

func (d *fakeDevice) StartOp(ctx context.Context, idx uint32, r device.Request) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.request(); err != nil {
		return err
	}
	if _, ok := d.ops[idx]; ok {
		return fmt.Errorf("%w: row %d exists", device.ErrRefused, idx)
	}
	d.started = append(d.started, r.Type)
	op := &device.Op{Index: idx, Type: r.Type, File: r.File, State: mib.OpSuccessful, Progress: 100}
	d.ops[idx] = op
	fail := func(c mib.FailCause, text string) {
		op.State, op.Progress, op.FailCause, op.FailText = mib.OpFailed, 0, c, text
	}
	if q := d.failNext[r.Type]; len(q) > 0 {
		d.failNext[r.Type] = q[1:]
		if q[0] != mib.FailNone {
			fail(q[0], "scripted "+q[0].String())
		}
	}
	if op.State == mib.OpSuccessful {
		switch r.Type {
		case mib.OpBackupConfig:
			d.files.put(r.File, d.files.archive)
		case mib.OpUpgrade:
			v, ok := d.files.images[r.File]
			switch {
			case !ok:
				fail(mib.FailFileNotFound, "no image "+r.File)
			case d.running == d.trial:
				fail(mib.FailBusy, "running software is an uncommitted trial")
			default:
				o := device.Other(d.running)
				d.banks[o] = fakeBank{v, mib.BankValid}
				d.trial, d.tries = o, d.limit
			}
		case mib.OpRestoreConfig:
			switch {
			case d.files.get(r.File) == nil:
				fail(mib.FailFileNotFound, "no backup "+r.File)
			case d.needsForce && !r.Force:
				fail(mib.FailConfigMajorMismatch, "backup: format 1 (compat 1.0) and the running format 3 (compat 2.0) differ in major version")
			default:
				f := r.File
				if r.Force {
					f += "+force"
				}
				d.restored = append(d.restored, f)
			}
		case mib.OpReset:
			op.State, op.Progress = mib.OpRunning, 0
			d.reset = idx
		case mib.OpRevert:
			switch o := device.Other(d.running); {
			case d.trial != 0:
				d.trial, d.tries = 0, 0
			case d.active != d.running:
			case d.banks[o].state != mib.BankValid:
				fail(mib.FailNoFallback, "slot is "+d.banks[o].state.String())
			default:
				d.banks[d.active].state = mib.BankValid
				d.active = o
				d.banks[o].state = mib.BankActive
			}
		}
	}
	if d.loseAnswer[r.Type] {
		d.loseAnswer[r.Type] = false
		return errDown
	}
	return nil
}

func (d *fakeDevice) CheckWrite(ctx context.Context, limit uint32) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.request(); err != nil {
		return err
	}
	if d.readOnly {
		return errDown
	}
	if limit != d.limit {
		d.t.Errorf("CheckWrite(%d) would change the boot limit %d", limit, d.limit)
	}
	return nil
}

func (d *fakeDevice) startedTypes() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return fmt.Sprint(d.started)
}

// fakeFiles is an in-memory file server.
type fakeFiles struct {
	mu       sync.Mutex
	m        map[string][]byte
	images   map[string]string // name -> version
	archive  []byte            // what a device's backup uploads
	embedded bool
}

// archive is a real backup archive of the default configuration, made
// once by the agent's own code.
var archive = sync.OnceValues(func() ([]byte, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "iadms-procedure-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	s, err := config.Open(ctx, config.Options{Root: filepath.Join(dir, "store")})
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	_, _, err = s.Backup(ctx, &b, config.BackupMeta{SoftwareVersion: "1.0.0", ConfigFormat: 1})
	return b.Bytes(), err
})

func newFiles(t *testing.T) *fakeFiles {
	b, err := archive()
	if err != nil {
		t.Fatal(err)
	}
	return &fakeFiles{m: map[string][]byte{}, images: map[string]string{"img/v2.img": "2.0.0"}, archive: b, embedded: true}
}

func (f *fakeFiles) put(name string, b []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[name] = b
}

func (f *fakeFiles) get(name string) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.m[name]
}

func (f *fakeFiles) Location() Location {
	return Location{Protocol: mib.ProtocolTFTP, Server: netip.MustParseAddrPort("192.0.2.9:69")}
}
func (f *fakeFiles) ImageName(_ context.Context, path string) (string, error) {
	return "img/" + filepath.Base(path), nil
}
func (f *fakeFiles) ExpectBackup(_ context.Context, dev, file string, _ netip.Addr) (string, error) {
	return "cfg/" + dev + "/" + file, nil
}
func (f *fakeFiles) OpenBackup(_ context.Context, dev, file string) (io.ReadCloser, error) {
	b := f.get("cfg/" + dev + "/" + file)
	if b == nil {
		return nil, fmt.Errorf("no backup %s", file)
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}
func (f *fakeFiles) StoreBackup(_ context.Context, dev, file string, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	f.put("cfg/"+dev+"/"+file, b)
	return nil
}
func (f *fakeFiles) PublishBackup(_ context.Context, dev, file string, _ netip.Addr) (string, error) {
	return "cfg/" + dev + "/" + file, nil
}
func (f *fakeFiles) Embedded() bool { return f.embedded }

// formatDevice is a fake that publishes its configuration format and
// converts restores itself, as an agent with iadConfigFormat does.
type formatDevice struct {
	*fakeDevice
	format uint32
}

func (d formatDevice) ConfigFormat(ctx context.Context) (uint32, bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.request(); err != nil {
		return 0, false, err
	}
	return d.format, true, nil
}

// converterFunc adapts a function to convert.Converter.
type converterFunc func(ctx context.Context, from, to uint32, dir string) error

func (f converterFunc) Convert(ctx context.Context, from, to uint32, dir string) error {
	return f(ctx, from, to, dir)
}
