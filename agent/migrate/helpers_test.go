package migrate

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/iadsafe/iad-agent/agent/backupcrypt"
	"github.com/iadsafe/iad-agent/agent/config"
	"github.com/iadsafe/iad-agent/agent/iadconfig"
)

// fakeReloader records reloads and fails while fail is set.
type fakeReloader struct {
	mu     sync.Mutex
	calls  []ReloadRequest
	fail   error
	output string
	// seen records the live format at each call, read from the directory.
	seen []uint32
}

func (f *fakeReloader) Reload(ctx context.Context, r ReloadRequest) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, r)
	v, _ := iadconfig.DetectFormat(func(n string) ([]byte, error) { return os.ReadFile(filepath.Join(r.Dir, n)) })
	f.seen = append(f.seen, v)
	if r.Reason != "rollback" && f.fail != nil {
		return f.output, f.fail
	}
	return f.output, nil
}

func (f *fakeReloader) reasons() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, c.Reason)
	}
	return out
}

// logBuf is a logger whose output the test can search.
type logBuf struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

type env struct {
	store  *config.Store
	mig    *Migrator
	reload *fakeReloader
	log    *logBuf
	root   string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{root: filepath.Join(t.TempDir(), "store"), reload: &fakeReloader{}, log: &logBuf{}}
	logger := slog.New(slog.NewTextHandler(e.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var err error
	e.store, err = config.Open(context.Background(), config.Options{Root: e.root, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	e.mig, err = New(Options{Store: e.store, Reloader: e.reload, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// setLive replaces the live configuration with files (and nothing else).
func (e *env) setLive(t *testing.T, files map[string][]byte) {
	t.Helper()
	ctx := context.Background()
	st, err := e.store.StageLive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	changes := map[string]config.FileChange{}
	for _, f := range st.Manifest().Files {
		changes[f.Name] = config.FileChange{Remove: true}
	}
	for n, b := range files {
		changes[n] = config.FileChange{Data: b, Mode: 0o640}
	}
	d, err := st.Derive(ctx, changes)
	st.Discard()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Apply(ctx); err != nil {
		t.Fatal(err)
	}
}

// dirFiles reads every regular file of a directory (one level).
func dirFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, en := range entries {
		if en.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, en.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[en.Name()] = b
	}
	return out
}

// golden returns a configuration of the iadconfig golden files.
func golden(t *testing.T, which string) map[string][]byte {
	return dirFiles(t, filepath.Join("..", "iadconfig", "testdata", "convert", which))
}

func (e *env) digest(t *testing.T) [32]byte {
	t.Helper()
	d, err := e.store.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// backup returns an archive of the live configuration, encrypted if key
// is not nil.
func (e *env) backup(t *testing.T, format uint32, key *backupcrypt.Key) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var cw *backupcrypt.Writer
	if key != nil {
		var err error
		if cw, err = backupcrypt.NewWriter(&buf, *key); err != nil {
			t.Fatal(err)
		}
		w = cw
	}
	if _, _, err := e.store.Backup(context.Background(), w, config.BackupMeta{SoftwareVersion: "t", ConfigFormat: format}); err != nil {
		t.Fatal(err)
	}
	if cw != nil {
		if err := cw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// restore stages archive (decrypting with key if set) and restores it.
func (e *env) restore(t *testing.T, archive []byte, key *backupcrypt.Key, running uint32, force bool) (Result, error) {
	t.Helper()
	ctx := context.Background()
	var r io.Reader = bytes.NewReader(archive)
	if key != nil {
		cr, err := backupcrypt.NewReader(r, *key)
		if err != nil {
			return Result{}, err
		}
		r = cr
	}
	st, err := e.store.Stage(ctx, r)
	if err != nil {
		return Result{}, err
	}
	return e.mig.Restore(ctx, st, running, force)
}

// liveDoc decodes the live configuration.
func (e *env) liveDoc(t *testing.T) *iadconfig.Doc {
	t.Helper()
	d, err := iadconfig.Default().Decode(func(n string) ([]byte, error) { return e.store.ReadLiveFile(n, iadconfig.MaxFileSize) })
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// keptFiles returns the files kept for format, or nil.
func (e *env) keptFiles(t *testing.T, format uint32) map[string][]byte {
	t.Helper()
	st, err := e.store.StageKept(context.Background(), format)
	if errors.Is(err, config.ErrNotKept) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer st.Discard()
	out := map[string][]byte{}
	for _, f := range st.Manifest().Files {
		b, err := st.ReadFile(f.Name, 64<<20)
		if err != nil {
			t.Fatal(err)
		}
		out[f.Name] = b
	}
	return out
}

// tidy: live, its generation and the kept ones, nothing else.
func (e *env) tidy(t *testing.T) {
	t.Helper()
	entries, _ := os.ReadDir(e.root)
	kept, _ := e.store.Kept()
	gens := 0
	for _, en := range entries {
		n := en.Name()
		switch {
		case strings.HasPrefix(n, "gen-"):
			gens++
		case n == "live" || strings.HasPrefix(n, "keep-"):
		default:
			t.Errorf("leftover %s in the store", n)
		}
	}
	if gens != 1+len(kept) {
		t.Errorf("%d generations for live and %d kept", gens, len(kept))
	}
}

func sameFiles(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for n, x := range a {
		if y, ok := b[n]; !ok || !bytes.Equal(x, y) {
			return false
		}
	}
	return true
}
