package bench

import (
	"os"
	"testing"

	"github.com/iadsafe/iad-agent/agent/itest"
)

// TestMain holds the CPU wake-up latency for the benchmarks (see
// HoldCPULatency), records how the run was made, and removes the
// binaries the harness built.
func TestMain(m *testing.M) {
	release, state := HoldCPULatency()
	record(Row{Group: "setup", Name: "CPU idle", Extra: state})
	code := itest.Main(m)
	release()
	os.Exit(code)
}
