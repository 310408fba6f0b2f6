package main

import "testing"

func TestParseSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"512MiB", 512 << 20, true},
		{"8KiB", 8 << 10, true},
		{"2GiB", 2 << 30, true},
		{"4096", 4096, true},
		{"0", 0, false},
		{"-1MiB", 0, false},
		{"12MB", 0, false},
		{"", 0, false},
	} {
		got, err := parseSize(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("parseSize(%q): got %d, %v; want %d, ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-no-such-flag"},
		{"extra-argument"},
		{"-slot-size", "huge"},
		{"-log-level", "loud"},
		{"-trust", "/nonexistent/key.pub"},
		{"-config-key", "/nonexistent/config.key"},
		{"-config-key", "main_test.go"}, // not a key
		{"-factory-config-format", "0"},
		{"-gc-percent", "0"},
		{"-gc-percent", "5000"},
	} {
		if got := run(args); got != 2 {
			t.Errorf("run(%q): got exit %d, want 2", args, got)
		}
	}
}

func TestGCPercent(t *testing.T) {
	for _, c := range []struct {
		env     string
		given   bool
		flag    int
		want    int
		wantSet bool
	}{
		{"", false, defaultGCPercent, defaultGCPercent, true}, // the agent's default
		{"200", false, defaultGCPercent, 0, false},            // the operator's GOGC stays
		{"200", true, 80, 80, true},                           // the flag beats GOGC
		{"", true, 30, 30, true},
	} {
		got, set := gcPercent(c.env, c.given, c.flag)
		if got != c.want || set != c.wantSet {
			t.Errorf("gcPercent(GOGC=%q, given=%v, %d): got %d, %v; want %d, %v", c.env, c.given, c.flag, got, set, c.want, c.wantSet)
		}
	}
}
