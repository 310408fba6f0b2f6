package bench

import (
	"encoding/binary"
	"fmt"
	"os"
)

// cpuLatencyDev is the kernel's PM QoS interface: while a process holds
// it open with a value written, no CPU enters an idle state whose wake-up
// takes longer than that many microseconds.
const cpuLatencyDev = "/dev/cpu_dma_latency"

// HoldCPULatency keeps every CPU out of deep idle states until release is
// called, as cyclictest does, unless IAD_BENCH_CPU_LATENCY=off.
//
// TFTP is lock-step: each block waits for the previous acknowledgement,
// so a transfer between two processes that take turns is paced by how
// fast an idle CPU wakes. On this project's 2-vCPU VM an idle vCPU halts
// into the hypervisor and curl's TFTP download of 64 MiB at blksize 1468
// runs at ~25 MB/s; with the latency held at 0 it runs at ~100 MB/s. A
// process that keeps a CPU busy (the agent hashing and writing while it
// downloads) is woken faster than one that sleeps (curl), which made the
// agent look faster than curl for a reason that has nothing to do with
// either. Holding the latency measures the software, not the hypervisor.
//
// The returned string says what was done, for the report.
func HoldCPULatency() (release func(), state string) {
	if os.Getenv("IAD_BENCH_CPU_LATENCY") == "off" {
		return func() {}, "CPU idle states left to the kernel (IAD_BENCH_CPU_LATENCY=off)"
	}
	f, err := os.OpenFile(cpuLatencyDev, os.O_WRONLY, 0)
	if err == nil {
		var v [4]byte
		binary.NativeEndian.PutUint32(v[:], 0)
		_, err = f.Write(v[:])
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		return func() {}, fmt.Sprintf("CPU idle states left to the kernel: %v", err)
	}
	return func() { f.Close() }, "CPU wake-up latency held at 0 µs through " + cpuLatencyDev + " (PM QoS) for the whole run"
}
