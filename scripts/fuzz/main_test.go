package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeGo plays go test: each call to fuzz takes the next scripted result
// for its target.
type fakeGo struct {
	ts    []target
	runs  map[string][]result
	calls []string
}

type result struct {
	output string
	fail   bool
	crash  bool // write a failing input into the target's corpus
}

func (f *fakeGo) targets(context.Context) ([]target, error) { return f.ts, nil }

func (f *fakeGo) fuzz(_ context.Context, t target, _ string, out io.Writer) error {
	f.calls = append(f.calls, t.name)
	rs := f.runs[t.name]
	if len(rs) == 0 {
		return nil
	}
	r := rs[0]
	f.runs[t.name] = rs[1:]
	io.WriteString(out, r.output)
	if r.crash {
		os.MkdirAll(t.corpus(), 0o755)
		os.WriteFile(filepath.Join(t.corpus(), fmt.Sprintf("crash%d", len(f.calls))), []byte("go test fuzz v1\n"), 0o644)
	}
	if r.fail {
		return errors.New("exit status 1")
	}
	return nil
}

const raceOutput = "fuzz: elapsed: 1m0s, execs: 4174621 (0/sec), new interesting: 2 (total: 187)\n--- FAIL: FuzzA (60.08s)\n    context deadline exceeded\nFAIL\nexit status 1\nFAIL\tpkg\t60.093s\n"

func TestFuzzAll(t *testing.T) {
	race := result{output: raceOutput, fail: true}
	for _, tc := range []struct {
		name      string
		runs      map[string][]result
		wantErr   string // "" for success
		wantCalls string
	}{
		{"clean", nil, "", "FuzzA FuzzB"},
		{"deadline race once, then clean", map[string][]result{"FuzzA": {race}}, "", "FuzzA FuzzA FuzzB"},
		{"deadline race twice", map[string][]result{"FuzzA": {race, race}}, "FuzzA: exit status 1", "FuzzA FuzzA"},
		{"a failing input is never retried", map[string][]result{"FuzzA": {{output: raceOutput, fail: true, crash: true}}}, "found a failing input", "FuzzA"},
		{"a crash without the deadline message", map[string][]result{"FuzzB": {{output: "--- FAIL: FuzzB\n    panic: boom\n", fail: true, crash: true}}}, "FuzzB found a failing input", "FuzzA FuzzB"},
		{"any other failure", map[string][]result{"FuzzA": {{output: "build failed\n", fail: true}}}, "FuzzA: exit status 1", "FuzzA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			g := &fakeGo{ts: []target{{"pkg", dir, "FuzzA"}, {"pkg", dir, "FuzzB"}}, runs: tc.runs}
			err := fuzzAll(context.Background(), g, "1s", io.Discard)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("fuzzAll: %v, want success", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("fuzzAll: %v, want an error with %q", err, tc.wantErr)
			}
			if got := strings.Join(g.calls, " "); got != tc.wantCalls {
				t.Errorf("runs %q, want %q", got, tc.wantCalls)
			}
		})
	}
}
