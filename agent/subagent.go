package agent

import (
	"context"

	"github.com/iadsafe/iad-agent/agent/agentx"
	"github.com/iadsafe/iad-agent/mib"
)

// newSubAgent builds the AgentX client that serves IAD-UPGRADE-MIB from
// the engine's tree through the master.
func (a *Agent) newSubAgent() (*agentx.Client, error) {
	return agentx.New(agentx.Options{
		Address:     a.opts.AgentX,
		Tree:        a.engine.Tree(),
		Subtrees:    []mib.OID{mib.IadUpgradeMIB},
		Uptime:      a.engine.Uptime,
		ID:          mib.IadUpgradeMIB,
		Description: "iad-agent " + a.currentVersion(),
		Logger:      a.log,
	})
}

// runSubAgent starts the AgentX session (if in sub-agent mode) and
// returns the function that ends it. Requests are served under serve (the
// agent's run, which operations started by a SET belong to); the session
// itself lasts until stop, so the last notifications still reach the
// master.
func (a *Agent) runSubAgent(serve context.Context) (stop func()) {
	if a.agentx == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = a.agentx.Run(ctx, serve)
	}()
	a.log.Info("serving as AgentX sub-agent", "master", a.opts.AgentX, "version", a.currentVersion(), "bank", a.banks.Running())
	return func() {
		cancel()
		<-done
	}
}
