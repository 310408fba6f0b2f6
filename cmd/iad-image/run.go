package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/iadsafe/iad-agent/image"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

const usage = `usage: iad-image <command> [flags]

commands:
  keygen   -out NAME                        write a signing key pair NAME.key, NAME.pub
  build    -key K -version V -hw HW -in PAYLOAD -out FILE
                                            build a signed image
  inspect  FILE                             print the header without verifying it
  verify   -pub P [-pub P2 ...] [-hw HW] FILE
                                            verify signature, header and payload

Run 'iad-image <command> -h' for a command's flags.
`

// errUsage marks errors that are the caller's invocation, not the work.
var errUsage = errors.New("usage")

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmds := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"keygen":  keygen,
		"build":   build,
		"inspect": inspect,
		"verify":  verify,
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	cmd, ok := cmds[name]
	if !ok {
		fmt.Fprintf(stderr, "iad-image: unknown command %q\n\n%s", name, usage)
		return exitUsage
	}
	err := cmd(ctx, rest, stdout, stderr)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		// The flag package, or usageErr, has already explained.
		return exitUsage
	default:
		fmt.Fprintf(stderr, "iad-image %s: %v\n", name, err)
		return exitFailure
	}
}

func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: iad-image %s\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags and reports usage problems as errUsage.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

func usageErr(fs *flag.FlagSet, format string, a ...any) error {
	fmt.Fprintf(fs.Output(), "iad-image %s: %s\n", fs.Name(), fmt.Sprintf(format, a...))
	fs.Usage()
	return errUsage
}

func keygen(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keygen", "keygen -out NAME", stderr)
	out := fs.String("out", "", "write the private key to `NAME`.key (mode 0600) and the public key to NAME.pub")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return usageErr(fs, "-out is required")
	}
	if fs.NArg() != 0 {
		return usageErr(fs, "unexpected arguments %q", fs.Args())
	}
	if err := image.GenerateKey(*out); err != nil {
		return err
	}
	pub, err := image.LoadPublicKey(*out + ".pub")
	if err != nil {
		return err
	}
	id := image.KeyID(pub)
	fmt.Fprintf(stdout, "wrote %s.key and %s.pub, key id %s\n", *out, *out, hex.EncodeToString(id[:]))
	return nil
}

func build(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("build", "build -key NAME.key -version V -hw HW [-config-format N] [-created UNIX] -in PAYLOAD -out FILE", stderr)
	keyPath := fs.String("key", "", "sign with the private key in `FILE`")
	version := fs.String("version", "", "software `version` of the payload")
	hw := fs.String("hw", "", "`hardware`-compatibility string the device must match")
	configFormat := fs.Uint64("config-format", 1, "config-format version the software expects")
	created := fs.Int64("created", 0, "creation time in Unix `seconds`, for reproducible builds (default now)")
	in := fs.String("in", "", "payload `file`")
	out := fs.String("out", "", "image `file` to write")
	if err := parse(fs, args); err != nil {
		return err
	}
	for _, req := range []struct{ name, val string }{
		{"key", *keyPath}, {"version", *version}, {"hw", *hw}, {"in", *in}, {"out", *out},
	} {
		if req.val == "" {
			return usageErr(fs, "-%s is required", req.name)
		}
	}
	if *configFormat > math.MaxUint32 {
		return usageErr(fs, "-config-format %d does not fit in 32 bits", *configFormat)
	}
	if fs.NArg() != 0 {
		return usageErr(fs, "unexpected arguments %q", fs.Args())
	}
	key, err := image.LoadPrivateKey(*keyPath)
	if err != nil {
		return err
	}
	h := image.Header{
		Hardware:     *hw,
		Version:      *version,
		ConfigFormat: uint32(*configFormat),
		Created:      time.Now().UTC().Truncate(time.Second),
	}
	if *created != 0 {
		h.Created = time.Unix(*created, 0).UTC()
	}
	if err := buildFile(ctx, *out, h, *in, key); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s\n", *out)
	return nil
}

// buildFile hashes the payload file, then writes the image next to out and
// renames it into place, so a failed or interrupted build never leaves a
// plausible-looking image behind.
func buildFile(ctx context.Context, out string, h image.Header, in string, key ed25519.PrivateKey) (err error) {
	payload, err := os.Open(in)
	if err != nil {
		return err
	}
	defer payload.Close()
	if h.PayloadSize, h.PayloadSHA256, err = image.HashPayload(withContext(ctx, payload)); err != nil {
		return err
	}
	if _, err := payload.Seek(0, io.SeekStart); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := image.Build(tmp, h, withContext(ctx, payload), key); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

func inspect(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("inspect", "inspect FILE\n\nPrints the header as `key: value` lines. It does not verify anything.", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErr(fs, "want exactly one image file")
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	h, sig, err := image.ReadHeader(f)
	if err != nil {
		return err
	}
	created := "unset"
	if !h.Created.IsZero() {
		created = h.Created.UTC().Format(time.RFC3339)
	}
	fmt.Fprintf(stdout, "format: %d\n", h.Format)
	fmt.Fprintf(stdout, "hardware: %s\n", printable(h.Hardware))
	fmt.Fprintf(stdout, "version: %s\n", printable(h.Version))
	fmt.Fprintf(stdout, "config-format: %d\n", h.ConfigFormat)
	fmt.Fprintf(stdout, "payload-size: %d\n", h.PayloadSize)
	fmt.Fprintf(stdout, "payload-sha256: %x\n", h.PayloadSHA256)
	fmt.Fprintf(stdout, "key-id: %x\n", h.KeyID)
	fmt.Fprintf(stdout, "created: %s\n", created)
	fmt.Fprintf(stdout, "signature: %x\n", sig)
	return nil
}

// printable quotes header strings that could mess with a terminal; they
// come from an unverified file.
func printable(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// keyFiles collects repeated -pub flags.
type keyFiles []string

func (k *keyFiles) String() string     { return strings.Join(*k, ",") }
func (k *keyFiles) Set(v string) error { *k = append(*k, v); return nil }

func verify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("verify", "verify -pub NAME.pub [-pub OTHER.pub ...] [-hw HW] [-max BYTES] FILE", stderr)
	var pubs keyFiles
	fs.Var(&pubs, "pub", "trust the public key in `FILE` (repeatable)")
	hw := fs.String("hw", "", "require this `hardware`-compatibility string")
	maxPayload := fs.Int64("max", 0, "reject payloads larger than `BYTES` (0: no limit)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if len(pubs) == 0 {
		return usageErr(fs, "at least one -pub is required")
	}
	if fs.NArg() != 1 {
		return usageErr(fs, "want exactly one image file")
	}
	opts := image.Options{Hardware: *hw, MaxPayload: *maxPayload}
	for _, p := range pubs {
		pub, err := image.LoadPublicKey(p)
		if err != nil {
			return err
		}
		opts.Trusted = append(opts.Trusted, pub)
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	r, err := image.NewReader(withContext(ctx, f), opts)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(io.Discard, r, make([]byte, 64<<10)); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

// readFunc adapts a function to io.Reader.
type readFunc func([]byte) (int, error)

func (f readFunc) Read(p []byte) (int, error) { return f(p) }

// withContext makes reads from r fail once ctx is done, so an interrupt
// stops hashing or copying a large payload between blocks.
func withContext(ctx context.Context, r io.Reader) io.Reader {
	return readFunc(func(p []byte) (int, error) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		return r.Read(p)
	})
}
