package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "rows.jsonl")
	os.WriteFile(in, []byte(`{"group":"upgrade","name":"agent upgrade tftp-1468","size":268435776,"mbps":101.5,"ratio":0.93,"ref":"curl tftp-1468","rss_kib":13328}
{"group":"memory","name":"agent idle","rss_kib":9072}
`), 0o644)
	var out strings.Builder
	md := filepath.Join(dir, "B.md")
	if err := run(in, filepath.Join(dir, "rows.json"), md, "make bench", &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| upgrade | agent upgrade tftp-1468 | 256.0 MiB | 101.5 | 0.93 (curl tftp-1468) | 13.0 MiB |", "| memory | agent idle |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	b, _ := os.ReadFile(md)
	if !strings.Contains(string(b), "Machine: ") || !strings.Contains(string(b), "`make bench`") {
		t.Errorf("report lacks the machine or the command:\n%s", b)
	}
	os.WriteFile(in, nil, 0o644)
	if err := run(in, "", "", "", &out); err == nil {
		t.Error("no rows: got nil error")
	}
}
