// Command fuzz runs every fuzz target of the module for -fuzztime each, as
// make fuzz and make fuzz-ci do, and fails on the first target that finds
// a failing input.
//
// Go 1.26's fuzz coordinator can also end a clean run with a bare
// "context deadline exceeded" at the -fuzztime boundary, when a worker is
// mid-call as the deadline fires (go.dev/issue/75804, fixed in Go 1.27).
// Such a run wrote no failing input. fuzz runs that target once more and
// fails only if it fails again; a run that wrote a failing input into
// testdata/fuzz/<Target>/, or failed any other way, fails at once. It must
// never let a real finding pass.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

func main() {
	fuzztime := flag.String("fuzztime", "30s", "how long each target runs (go test -fuzztime)")
	flag.Parse()
	if err := fuzzAll(context.Background(), goTool{}, *fuzztime, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fuzz:", err)
		os.Exit(1)
	}
}

// target is one fuzz function.
type target struct {
	pkg, dir, name string
}

// corpus is where go test writes a failing input for t.
func (t target) corpus() string { return filepath.Join(t.dir, "testdata", "fuzz", t.name) }

// tool is the go command, as fuzzAll needs it.
type tool interface {
	targets(ctx context.Context) ([]target, error)
	fuzz(ctx context.Context, t target, fuzztime string, out io.Writer) error
}

// deadlineRaceMsg is the coordinator's message for the race.
const deadlineRaceMsg = "context deadline exceeded"

func fuzzAll(ctx context.Context, g tool, fuzztime string, w io.Writer) error {
	ts, err := g.targets(ctx)
	if err != nil {
		return err
	}
	for _, t := range ts {
		for attempt := 1; ; attempt++ {
			fmt.Fprintf(w, "== %s %s\n", t.pkg, t.name)
			before := listDir(t.corpus())
			var out bytes.Buffer
			err := g.fuzz(ctx, t, fuzztime, io.MultiWriter(w, &out))
			if err == nil {
				break
			}
			wrote := !slices.Equal(before, listDir(t.corpus()))
			if attempt == 1 && !wrote && lastLinesHave(out.String(), deadlineRaceMsg) {
				fmt.Fprintf(w, "fuzz: %s ended with Go's fuzztime deadline race (go.dev/issue/75804) and wrote no failing input: running it again\n", t.name)
				continue
			}
			if wrote {
				return fmt.Errorf("%s %s found a failing input (in %s): %w", t.pkg, t.name, t.corpus(), err)
			}
			return fmt.Errorf("%s %s: %w", t.pkg, t.name, err)
		}
	}
	return nil
}

// lastLinesHave reports whether one of the last few lines of out is s.
func lastLinesHave(out, s string) bool {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range lines[max(0, len(lines)-6):] {
		if strings.TrimSpace(l) == s {
			return true
		}
	}
	return false
}

func listDir(dir string) []string {
	es, _ := os.ReadDir(dir)
	names := make([]string, 0, len(es))
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// goTool runs the go command found in PATH.
type goTool struct{}

func (goTool) targets(ctx context.Context) ([]target, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-f", "{{.ImportPath}} {{.Dir}}", "./...").Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w", err)
	}
	var ts []target
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, dir, _ := strings.Cut(l, " ")
		list, err := exec.CommandContext(ctx, "go", "test", "-list", "^Fuzz", pkg).Output()
		if err != nil {
			return nil, fmt.Errorf("go test -list %s: %w", pkg, err)
		}
		for _, name := range strings.Fields(string(list)) {
			if strings.HasPrefix(name, "Fuzz") {
				ts = append(ts, target{pkg: pkg, dir: dir, name: name})
			}
		}
	}
	if len(ts) == 0 {
		return nil, errors.New("no fuzz targets found")
	}
	return ts, nil
}

func (goTool) fuzz(ctx context.Context, t target, fuzztime string, out io.Writer) error {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-fuzz", "^"+t.name+"$", "-fuzztime", fuzztime, t.pkg)
	cmd.Stdout, cmd.Stderr = out, out
	return cmd.Run()
}
