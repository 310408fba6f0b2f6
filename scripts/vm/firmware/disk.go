package firmware

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/iadsafe/iad-agent/bank"
	"github.com/iadsafe/iad-agent/bank/ubootenv"
)

// Layout is where the device's flash regions lie on its virtio disk, as
// four MBR partitions:
//
//	/dev/vda1  boot-state area: two copies of the U-Boot environment
//	           (iad-boot device), or the FAT boot partition with boot.scr,
//	           kernel, initramfs and iadstate.txt (U-Boot device)
//	/dev/vda2  bank A
//	/dev/vda3  bank B
//	/dev/vda4  persistent data: ext4 with the agent's journal and the
//	           configuration, and site.env for the start-up script
type Layout struct {
	StateSize int64 // partition 1 of the iad-boot disk
	EnvSize   int64 // one environment copy in it
	FATSize   int64 // partition 1 of the U-Boot disk
	BankSize  int64
	DataSize  int64
}

// DefaultLayout fits the largest payload (version Big) in a bank.
var DefaultLayout = Layout{StateSize: 1 << 20, EnvSize: 64 << 10, FATSize: 24 << 20, BankSize: 48 << 20, DataSize: 32 << 20}

// Partition is one MBR entry.
type Partition struct {
	Offset, Size int64
	Type         byte
	Boot         bool
}

const (
	align    = 1 << 20
	typeData = 0xda // non-FS data: the raw environment and the banks
	typeFAT  = 0x0c // FAT32 (LBA)
	typeLNX  = 0x83
)

// Partitions returns the four partitions of the iad-boot disk, or of the
// U-Boot disk.
func (l Layout) Partitions(uboot bool) [4]Partition {
	first := Partition{Offset: align, Size: l.StateSize, Type: typeData}
	if uboot {
		first = Partition{Offset: align, Size: l.FATSize, Type: typeFAT, Boot: true}
	}
	a := Partition{Offset: first.Offset + first.Size, Size: l.BankSize, Type: typeData}
	b := Partition{Offset: a.Offset + a.Size, Size: l.BankSize, Type: typeData}
	d := Partition{Offset: b.Offset + b.Size, Size: l.DataSize, Type: typeLNX}
	return [4]Partition{first, a, b, d}
}

// DiskSize is the size of the disk image.
func (l Layout) DiskSize(uboot bool) int64 {
	p := l.Partitions(uboot)
	return p[3].Offset + p[3].Size
}

// mbr is the disk's first sector: a fixed disk signature and the four
// partitions (CHS fields at their "use LBA" maximum).
func mbr(parts [4]Partition) []byte {
	s := make([]byte, 512)
	binary.LittleEndian.PutUint32(s[440:], 0x1AD0D15C)
	for i, p := range parts {
		e := s[446+16*i:]
		if p.Boot {
			e[0] = 0x80
		}
		copy(e[1:4], []byte{0xfe, 0xff, 0xff})
		e[4] = p.Type
		copy(e[5:8], []byte{0xfe, 0xff, 0xff})
		binary.LittleEndian.PutUint32(e[8:], uint32(p.Offset/512))
		binary.LittleEndian.PutUint32(e[12:], uint32(p.Size/512))
	}
	s[510], s[511] = 0x55, 0xaa
	return s
}

// factoryState is the boot state a new device leaves the factory with:
// bank A holds the factory software, recorded with its size and digest so
// that every boot verifies it; bank B is empty.
func (b *builder) factoryState() bank.State {
	f := b.fw.Banks[Factory]
	return bank.State{
		Version: 1, Active: bank.SlotA, BootLimit: bank.DefaultBootLimit, Seq: 1,
		Slots: map[bank.Slot]bank.SlotInfo{
			bank.SlotA: {State: bank.SlotValid, Version: Factory, Hardware: b.fw.Hardware, ConfigFormat: 1, Size: f.Size, Digest: f.SHA256},
			bank.SlotB: {State: bank.SlotEmpty},
		},
	}
}

// newDisk creates the sparse image with its partition table, bank A and
// a data partition with the default site.
func (b *builder) newDisk(ctx context.Context, path string, uboot bool) (*os.File, [4]Partition, error) {
	l := b.fw.Layout
	parts := l.Partitions(uboot)
	os.Remove(path)
	f, err := os.Create(path)
	if err != nil {
		return nil, parts, err
	}
	fail := func(err error) (*os.File, [4]Partition, error) { f.Close(); return nil, parts, err }
	if err := f.Truncate(l.DiskSize(uboot)); err != nil {
		return fail(err)
	}
	if _, err := f.WriteAt(mbr(parts), 0); err != nil {
		return fail(err)
	}
	payload, err := os.ReadFile(b.fw.Banks[Factory].Path)
	if err != nil {
		return fail(err)
	}
	if _, err := f.WriteAt(payload, parts[1].Offset); err != nil {
		return fail(err)
	}
	data, err := b.dataPartition(ctx, Site{})
	if err != nil {
		return fail(err)
	}
	if _, err := f.WriteAt(data, parts[3].Offset); err != nil {
		return fail(err)
	}
	return f, parts, nil
}

// disk makes the iad-boot device: the factory state in both environment
// copies of the boot-state area.
func (b *builder) disk(ctx context.Context) error {
	b.fw.Disk = filepath.Join(b.fw.Dir, "disk.img")
	f, parts, err := b.newDisk(ctx, b.fw.Disk, false)
	if err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	env, err := ubootenv.OpenLocations([]ubootenv.Location{
		{Path: b.fw.Disk, Offset: parts[0].Offset, Size: b.fw.Layout.EnvSize},
		{Path: b.fw.Disk, Offset: parts[0].Offset + b.fw.Layout.EnvSize, Size: b.fw.Layout.EnvSize},
	}, "-")
	if err != nil {
		return err
	}
	defer env.Close()
	defaults, err := ubootenv.ReadDefaults(strings.NewReader(defaultEnv))
	if err != nil {
		return err
	}
	store, err := ubootenv.NewStore(env, ubootenv.StoreOptions{Defaults: defaults})
	if err != nil {
		return err
	}
	return store.Save(ctx, b.factoryState())
}

// Site is what a device's data partition tells its start-up script
// (/data/site.env): the settings of the place it is installed, not of
// the software.
type Site struct {
	// Trap is the notification destination as the guest reaches it,
	// e.g. "10.0.2.2:16200" for a receiver on the host's 127.0.0.1:16200.
	Trap string
	// CommitAfter is the agent's health check (default 30s).
	CommitAfter time.Duration
	// TFTPBlockSize is the block size the agent negotiates (default 1468).
	TFTPBlockSize int
	// AgentArgs are more agent flags.
	AgentArgs string
}

func (s Site) env() []byte {
	var b strings.Builder
	b.WriteString("# site settings of this device (read by /sbin/init)\n")
	if s.Trap != "" {
		fmt.Fprintf(&b, "TRAP=%s\n", s.Trap)
	}
	if s.CommitAfter > 0 {
		fmt.Fprintf(&b, "COMMIT_AFTER=%s\n", s.CommitAfter)
	}
	if s.TFTPBlockSize > 0 {
		fmt.Fprintf(&b, "TFTP_BLKSIZE=%d\n", s.TFTPBlockSize)
	}
	if s.AgentArgs != "" {
		fmt.Fprintf(&b, "AGENT_ARGS=%q\n", s.AgentArgs)
	}
	return []byte(b.String())
}

// dataUUID is the data file system's UUID (and directory hash seed):
// fixed, for reproducible images.
const dataUUID = "1ad0da7a-0000-4000-8000-000000000001"

// dataPartition formats the data partition with mke2fs -d, holding
// site.env, and returns its bytes.
func (b *builder) dataPartition(ctx context.Context, site Site) ([]byte, error) {
	tmp, err := os.MkdirTemp("", "iad-vm-data-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	stage := filepath.Join(tmp, "stage")
	if err := b.stage(stage, []stageFile{{name: "site.env", mode: 0o644, data: site.env()}}, nil); err != nil {
		return nil, err
	}
	img := filepath.Join(tmp, "data.ext4")
	if err := b.run(ctx, "mke2fs", "-q", "-F", "-t", "ext4", "-L", "iad-data", "-U", dataUUID,
		"-E", "hash_seed="+dataUUID+",root_owner=0:0", "-d", stage, img,
		strconv.FormatInt(b.fw.Layout.DataSize>>10, 10)+"k"); err != nil {
		return nil, err
	}
	// mke2fs -d copies each file's ctime, which no one can set: stamp it.
	if err := b.run(ctx, "debugfs", "-w", "-R", "sif /site.env ctime @"+strconv.FormatInt(b.opts.Epoch.Unix(), 10), img); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(img)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != b.fw.Layout.DataSize {
		return nil, fmt.Errorf("mke2fs made %d bytes, want %d", len(data), b.fw.Layout.DataSize)
	}
	return data, nil
}

// NewDisk writes a device's disk to dst: a copy of the iad-boot disk
// (uboot false) or of the U-Boot disk, with a data partition holding
// site. Each device (each test) gets its own.
func (fw *Firmware) NewDisk(ctx context.Context, dst string, uboot bool, site Site) error {
	src := fw.Disk
	if uboot {
		if fw.UBootDisk == "" {
			return fmt.Errorf("firmware: no U-Boot disk for %s", fw.Arch)
		}
		src = fw.UBootDisk
	}
	if err := copySparse(dst, src); err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	b := &builder{opts: Options{Epoch: fw.Epoch}, fw: fw}
	data, err := b.dataPartition(ctx, site)
	if err != nil {
		return fmt.Errorf("firmware: data partition: %w", err)
	}
	f, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	_, err = f.WriteAt(data, fw.Layout.Partitions(uboot)[3].Offset)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("firmware: %w", err)
	}
	return nil
}

// copySparse copies src to dst, leaving holes where src has zeros.
func copySparse(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	buf := make([]byte, 64<<10)
	zero := make([]byte, len(buf))
	for off := int64(0); ; off += int64(len(buf)) {
		n, err := io.ReadFull(in, buf)
		if n > 0 && !bytes.Equal(buf[:n], zero[:n]) {
			if _, werr := out.WriteAt(buf[:n], off); werr != nil {
				out.Close()
				return werr
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			out.Close()
			return err
		}
	}
	if err := out.Truncate(st.Size()); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
