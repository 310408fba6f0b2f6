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
{"group":"arm","name":"arm binary size iad-agent","size":7602302,"extra":"7602302 bytes"}
{"group":"arm","name":"arm guest agent upgrade tftp-1468 (emulated)","size":33554752,"mbps":2.24,"rss_kib":10772,"extra":"QEMU-emulated ARM guest: not comparable with the amd64 rows"}
`), 0o644)
	var out strings.Builder
	md := filepath.Join(dir, "B.md")
	if err := run(in, filepath.Join(dir, "rows.json"), md, "make bench", &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| upgrade | agent upgrade tftp-1468 | 256.0 MiB | 101.5 | 0.93 (curl tftp-1468) | 13.0 MiB |", "| memory | agent idle |",
		"| arm | arm binary size iad-agent | 7.3 MiB |  |  |  | 7602302 bytes |",
		"| arm | arm guest agent upgrade tftp-1468 (emulated) | 32.0 MiB | 2.2 |  | 10.5 MiB | QEMU-emulated ARM guest: not comparable with the amd64 rows |"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	b, _ := os.ReadFile(md)
	if !strings.Contains(string(b), "Machine: ") || !strings.Contains(string(b), "`make bench`") || !strings.Contains(string(b), "in rows marked emulated") {
		t.Errorf("report lacks the machine or the command:\n%s", b)
	}
	os.WriteFile(in, nil, 0o644)
	if err := run(in, "", "", "", &out); err == nil {
		t.Error("no rows: got nil error")
	}
}
