package agent

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/iadsafe/iad-agent/agent/notify"
	"github.com/iadsafe/iad-agent/agent/snmp"
	"github.com/iadsafe/iad-agent/agent/snmp/snmpconf"
	"github.com/iadsafe/iad-agent/mib"
)

// openSNMPv3 loads the SNMP access file and counts this start in
// snmpEngineBoots (durably, before anything is answered), returning the
// local SNMPv3 engine with its users.
func (a *Agent) openSNMPv3(ctx context.Context) (*snmpconf.Config, *snmp.LocalEngine, error) {
	conf := &snmpconf.Config{}
	if a.opts.SNMPConfigFile != "" {
		var err error
		if conf, err = snmpconf.Load(a.opts.SNMPConfigFile); err != nil {
			return nil, nil, fmt.Errorf("agent: %w", err)
		}
	}
	enterprise := mib.IadUpgradeMIB[len(mib.IadUpgradeMIB)-1]
	st, err := a.journal.BootEngine(ctx, conf.EngineID, func() ([]byte, error) { return snmp.NewEngineID(enterprise) })
	if err != nil {
		return nil, nil, err
	}
	local, err := snmp.NewLocalEngine(snmp.LocalEngineOptions{EngineID: st.ID, Boots: st.Boots, Start: a.start, Users: conf.Users})
	if err != nil {
		return nil, nil, fmt.Errorf("agent: %w", err)
	}
	a.log.Info("snmp engine", "engine_id", hex.EncodeToString(st.ID), "boots", st.Boots,
		"users", len(conf.Users), "communities", len(conf.Communities), "destinations", len(conf.Notify)+len(a.opts.Traps))
	return conf, local, nil
}

func destinations(ds []snmpconf.Destination) []notify.Destination {
	out := make([]notify.Destination, 0, len(ds))
	for _, d := range ds {
		out = append(out, notify.Destination{
			Addr: d.Addr, Version: notify.Version(d.Version), Inform: d.Inform, Community: d.Community,
			User: d.User, Credentials: d.Credentials, Retries: d.Retries, Timeout: d.Timeout,
		})
	}
	return out
}
