package cross_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/iadsafe/iad-agent/agent/itest"
	"github.com/iadsafe/iad-agent/scripts/vm"
)

// TestARMAgentBudget builds the arm iad-agent as `make cross` does
// (static, -trimpath, -s -w, no build ID, the Makefile's default
// version) and checks its size against ARM_AGENT_BUDGET.
func TestARMAgentBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-builds the agent")
	}
	root := itest.RepoRoot(t)
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ARM_AGENT_BUDGET\s*:=\s*(\d+)\s*$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("the Makefile states no ARM_AGENT_BUDGET := BYTES")
	}
	budget, _ := strconv.ParseInt(string(m[1]), 10, 64)
	v := regexp.MustCompile(`(?m)^VERSION\s*\?=\s*(\S+)\s*$`).FindSubmatch(mk)
	if v == nil {
		t.Fatal("the Makefile states no VERSION ?= …")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	out := filepath.Join(t.TempDir(), "iad-agent")
	if err := vm.BuildGuestArch(ctx, vm.ArmHF, root, "./cmd/iad-agent", out, "-X main.version="+string(v[1])); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("linux/arm iad-agent: %d bytes, budget %d (%.1f %% used)", fi.Size(), budget, 100*float64(fi.Size())/float64(budget))
	if fi.Size() > budget {
		t.Fatalf("linux/arm iad-agent is %d bytes, over the Makefile's ARM_AGENT_BUDGET of %d by %d: shrink it, or raise the budget on purpose", fi.Size(), budget, fi.Size()-budget)
	}
}
