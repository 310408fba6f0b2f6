package iadconfig_test

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/iadsafe/iad-agent/agent/iadconfig"
	"github.com/iadsafe/iad-agent/agent/iadconfig/iadconfigtest"
)

// checkConvertRoundTrip is the property: a generated configuration is
// valid, survives writing and reading its files, converts to every later
// format with nothing lost and nothing invented, and each result is valid
// and survives its own files. Only a configuration whose lines share a
// port may fail, and only on the way to format 3.
func checkConvertRoundTrip(t *testing.T, seed uint64, shared bool) {
	t.Helper()
	reg := iadconfig.Default()
	src := iadconfigtest.Generate(rand.New(rand.NewPCG(seed, 1)), iadconfigtest.GenOptions{SharedPorts: shared})
	if ps := reg.Validate(src); ps != nil {
		t.Fatalf("seed %d: generated configuration is invalid: %v", seed, ps)
	}
	src = reread(t, reg, src)
	if lost := iadconfigtest.Lost(src, src); len(lost) > 0 {
		t.Fatalf("seed %d: oracle rejects the identity: %v", seed, lost)
	}
	for _, to := range []uint32{2, 3} {
		got, err := reg.Convert(src, to, true)
		if err != nil {
			if to == 3 && iadconfigtest.SharesPorts(src) && errors.Is(err, iadconfig.ErrConvert) && strings.Contains(err.Error(), "both ring") {
				continue
			}
			t.Fatalf("seed %d: convert 1→%d: %v", seed, to, err)
		}
		if to == 3 && iadconfigtest.SharesPorts(src) {
			t.Fatalf("seed %d: lines share a port, but 1→3 converted", seed)
		}
		if ps := reg.Validate(got); ps != nil {
			t.Fatalf("seed %d: format %d result is invalid: %v", seed, to, ps)
		}
		got = reread(t, reg, got)
		if lost := iadconfigtest.Lost(src, got); len(lost) > 0 {
			t.Fatalf("seed %d: 1→%d lost or invented:\n%s", seed, to, strings.Join(lost, "\n"))
		}
	}
}

// reread encodes d to files and decodes them again.
func reread(t *testing.T, reg *iadconfig.Registry, d *iadconfig.Doc) *iadconfig.Doc {
	t.Helper()
	files, err := reg.Encode(d)
	if err != nil {
		t.Fatal(err)
	}
	back, err := reg.Decode(readMap(files))
	if err != nil {
		t.Fatalf("decode what Encode wrote: %v", err)
	}
	return back
}

func TestConvertProperty(t *testing.T) {
	n := 500
	if testing.Short() {
		n = 50
	}
	for seed := range uint64(n) {
		checkConvertRoundTrip(t, seed, seed%3 == 0)
	}
}

func FuzzConvert(f *testing.F) {
	for _, s := range []uint64{0, 1, 2, 42, 1 << 40} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, seed uint64, shared bool) {
		checkConvertRoundTrip(t, seed, shared)
	})
}
