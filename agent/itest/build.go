package itest

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// builds caches one build per package for the whole test binary.
var (
	buildsMu sync.Mutex
	builds   = map[string]*build{}
	buildDir string
)

type build struct {
	once sync.Once
	bin  string
	out  string
	err  error
}

// BuildAgent builds ./cmd/iad-agent once per test binary and returns the
// binary's path.
func BuildAgent(t testing.TB) string {
	t.Helper()
	return BuildCommand(t, "./cmd/iad-agent")
}

// BuildCommand builds a main package of the repository ("./cmd/iad-image"
// relative to RepoRoot, or a full import path) once per test binary, with
// -race when the tests run with it, and returns the binary's path. The
// binaries live in one temporary directory that Main removes.
func BuildCommand(t testing.TB, pkg string) string {
	t.Helper()
	root := RepoRoot(t)
	buildsMu.Lock()
	b, ok := builds[pkg]
	if !ok {
		b = &build{}
		builds[pkg] = b
	}
	if buildDir == "" {
		d, err := os.MkdirTemp("", "iad-itest-bin-")
		if err != nil {
			buildsMu.Unlock()
			t.Fatalf("build %s: %v", pkg, err)
		}
		buildDir = d
	}
	dir := buildDir
	buildsMu.Unlock()

	b.once.Do(func() {
		// go test puts its own GOROOT/bin first in PATH, so this is the
		// toolchain that built the tests.
		goBin, err := exec.LookPath("go")
		if err != nil {
			b.err = err
			return
		}
		name := path.Base(strings.TrimSuffix(pkg, "/"))
		sub, err := os.MkdirTemp(dir, name+"-")
		if err != nil {
			b.err = err
			return
		}
		b.bin = filepath.Join(sub, name)
		args := []string{"build", "-o", b.bin}
		if raceEnabled {
			args = append(args, "-race")
		}
		cmd := exec.Command(goBin, append(args, pkg)...)
		cmd.Dir = root
		if !raceEnabled {
			// Static, as on the device (and as make build and make
			// cross build it): no libc mapped into the measured process.
			cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		}
		out, err := cmd.CombinedOutput()
		b.out, b.err = string(out), err
	})
	if b.err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, b.err, b.out)
	}
	return b.bin
}

// Main runs the tests and removes the binaries BuildCommand made. Use it
// from TestMain: func TestMain(m *testing.M) { os.Exit(itest.Main(m)) }.
func Main(m *testing.M) int {
	code := m.Run()
	buildsMu.Lock()
	defer buildsMu.Unlock()
	if buildDir != "" {
		os.RemoveAll(buildDir)
		buildDir = ""
	}
	return code
}
