// Command report turns the JSON lines that the benchmarks in scripts/bench
// append to $IAD_BENCH_OUT into a table: printed, written as JSON, and
// optionally written as docs/BENCHMARKS.md with the machine it ran on and
// the command that made it.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

type row struct {
	Group  string  `json:"group"`
	Name   string  `json:"name"`
	Size   int64   `json:"size"`
	MBps   float64 `json:"mbps,omitempty"`
	Ratio  float64 `json:"ratio,omitempty"`
	Ref    string  `json:"ref,omitempty"`
	RSSKiB int64   `json:"rss_kib,omitempty"`
	Value  float64 `json:"value,omitempty"`
	Unit   string  `json:"unit,omitempty"`
	Extra  string  `json:"extra,omitempty"`
}

func main() {
	in := flag.String("in", "", "JSON lines written by the benchmarks")
	jsonOut := flag.String("json", "", "write the rows as a JSON array here")
	md := flag.String("md", "", "write a Markdown report here (docs/BENCHMARKS.md)")
	command := flag.String("command", "make bench", "the command that produced the figures, for the report")
	flag.Parse()
	if err := run(*in, *jsonOut, *md, *command, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func run(in, jsonOut, md, command string, stdout io.Writer) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	var rows []row
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var r row
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return fmt.Errorf("%s: %w", in, err)
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if len(rows) == 0 {
		return fmt.Errorf("%s: no rows: did the benchmarks run?", in)
	}
	table := render(rows)
	fmt.Fprint(stdout, table)
	if jsonOut != "" {
		b, _ := json.MarshalIndent(rows, "", "  ")
		if err := os.WriteFile(jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if md != "" {
		var s strings.Builder
		s.WriteString("# Benchmarks\n\nMeasured by `" + command + "` on " + time.Now().UTC().Format("2006-01-02") + ".\n\n")
		s.WriteString("Machine: " + machine() + "\n\n")
		s.WriteString("Upgrade rows time the agent's whole upgrade (download, header and signature check, payload hash, bank write, fsync, read-back verify) from the SET to the first poll (5 ms) that sees it complete; ratio is agent time / reference time (≤ 1.0: the agent is no slower). RSS is the process's peak (VmHWM). Figures vary with load: rerun with the command above.\n\n")
		s.WriteString("The setup row says whether the CPUs' wake-up latency was held at 0 (PM QoS, /dev/cpu_dma_latency, as cyclictest does; `IAD_BENCH_CPU_LATENCY=off` to measure without). TFTP is lock-step, so a transfer between two processes that take turns is paced by how fast an idle CPU wakes; on a VM whose idle vCPUs halt into the hypervisor that dominates every TFTP row (curl's download at blksize 1468 measured ~25 MB/s without the hold, ~105 MB/s with it) and favours whichever process keeps a CPU busy.\n\n")
		s.WriteString("The arm group gives the sizes of the stripped linux/arm (GOARM=7) binaries as `make cross` builds them, and, in rows marked emulated, the agent's idle memory and whole upgrade inside the device VM (QEMU emulating a cortex-a15 with 1 vCPU and 256 MiB in software, 200 ms polling): those rows describe the ARM build's behaviour, not a device's speed, and are not comparable with the amd64 rows.\n\n")
		s.WriteString(table)
		if err := os.WriteFile(md, []byte(s.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func render(rows []row) string {
	var s strings.Builder
	s.WriteString("| group | what | size | MB/s | ratio (vs) | peak RSS | other |\n|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		size, speed, ratio, rss, other := "", "", "", "", ""
		if r.Size > 0 {
			size = fmt.Sprintf("%.1f MiB", float64(r.Size)/(1<<20))
		}
		if r.MBps > 0 {
			speed = fmt.Sprintf("%.1f", r.MBps)
		}
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f (%s)", r.Ratio, r.Ref)
		}
		if r.RSSKiB > 0 {
			rss = fmt.Sprintf("%.1f MiB", float64(r.RSSKiB)/1024)
		}
		if r.Unit != "" {
			other = fmt.Sprintf("%.4g %s", r.Value, r.Unit)
		}
		if r.Extra != "" {
			other = strings.TrimPrefix(other+"; "+r.Extra, "; ")
		}
		fmt.Fprintf(&s, "| %s | %s | %s | %s | %s | %s | %s |\n", r.Group, r.Name, size, speed, ratio, rss, other)
	}
	return s.String()
}

// machine describes where the figures were taken.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1] + " kB RAM"
	}
	kernel, _ := exec.Command("uname", "-r").Output()
	return fmt.Sprintf("%d CPUs (%s), %s, Linux %s, %s %s/%s", runtime.NumCPU(), cpu, mem, strings.TrimSpace(string(kernel)), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
