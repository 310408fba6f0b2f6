package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// Row is one measured figure, as make bench tabulates it.
type Row struct {
	Group  string  `json:"group"` // "upgrade", "memory", "flash", …
	Name   string  `json:"name"`  // what ran, e.g. "agent tftp blksize 1468"
	Size   int64   `json:"size"`  // bytes moved, 0 if not applicable
	MBps   float64 `json:"mbps,omitempty"`
	Ratio  float64 `json:"ratio,omitempty"` // against the reference named in Ref
	Ref    string  `json:"ref,omitempty"`
	RSSKiB int64   `json:"rss_kib,omitempty"` // peak resident set size
	Value  float64 `json:"value,omitempty"`   // for other figures, with Unit
	Unit   string  `json:"unit,omitempty"`
	Extra  string  `json:"extra,omitempty"` // free text, e.g. a latency distribution
}

var outMu sync.Mutex

// Record appends r to $IAD_BENCH_OUT, when set: for benchmarks in other
// packages (the ARM guest's, in scripts/vm/device), so that their rows
// land in the same table.
func Record(r Row) error { return record(r) }

// record appends r to $IAD_BENCH_OUT, when set.
func record(r Row) error {
	path := os.Getenv("IAD_BENCH_OUT")
	if path == "" {
		return nil
	}
	outMu.Lock()
	defer outMu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	return err
}

// ParseSize reads a size such as "32MiB", "512KiB", "1GiB" or a byte
// count, as the IAD_BENCH_* variables give them.
func ParseSize(s string) (int64, error) {
	mult := int64(1)
	for suf, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(s, suf) {
			s, mult = strings.TrimSuffix(s, suf), m
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}
