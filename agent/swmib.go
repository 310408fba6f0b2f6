package agent

import (
	"context"
	"fmt"

	"github.com/gosnmp/gosnmp"

	"github.com/iadsafe/iad-agent/agent/snmp"
	"github.com/iadsafe/iad-agent/bank"
	"github.com/iadsafe/iad-agent/mib"
)

// registerMIB serves IAD-UPGRADE-MIB: the iadSw scalars, iadBankTable and
// iadOpTable.
func (a *Agent) registerMIB() error {
	sw := snmp.NewScalars(mib.IadSw, map[uint32]func(context.Context) (snmp.Value, error){
		last(mib.IadSwCurrentVersion): func(context.Context) (snmp.Value, error) { return str(a.currentVersion()), nil },
		last(mib.IadSwActiveBank): func(context.Context) (snmp.Value, error) {
			return integer(int64(a.banks.Running())), nil
		},
		last(mib.IadSwBootLimit): func(context.Context) (snmp.Value, error) {
			return unsigned(uint64(a.banks.BootLimit())), nil
		},
		last(mib.IadSwNextBank): func(context.Context) (snmp.Value, error) { return integer(int64(a.banks.Next())), nil },
		last(mib.IadSwTrialTriesLeft): func(context.Context) (snmp.Value, error) {
			s := a.banks.Snapshot()
			if s.Trial == 0 {
				return unsigned(0), nil
			}
			return unsigned(uint64(max(s.TriesLeft, 0))), nil
		},
		last(mib.IadSwHardware): func(context.Context) (snmp.Value, error) { return str(a.opts.Hardware), nil },
	})
	err := sw.SetWritable(last(mib.IadSwBootLimit), func(ctx context.Context, v snmp.Value) (func(context.Context) error, error) {
		if v.Type != gosnmp.Gauge32 && v.Type != gosnmp.Uinteger32 {
			return nil, &snmp.SetError{Status: gosnmp.WrongType, Err: fmt.Errorf("iadSwBootLimit is Unsigned32, got %v", v.Type)}
		}
		n, ok := asInt(v.V)
		if !ok || n < bank.MinBootLimit || n > bank.MaxBootLimit {
			return nil, &snmp.SetError{Status: gosnmp.WrongValue, Err: fmt.Errorf("iadSwBootLimit must be %d..%d", bank.MinBootLimit, bank.MaxBootLimit)}
		}
		return func(ctx context.Context) error { return a.banks.SetBootLimit(ctx, int(n)) }, nil
	})
	if err != nil {
		return err
	}
	banks := snmp.NewTable(mib.IadBankEntry,
		[]uint32{last(mib.IadBankVersion), last(mib.IadBankState), last(mib.IadBankDigest), last(mib.IadBankSize)},
		func() []mib.OID { return []mib.OID{{uint32(bank.SlotA)}, {uint32(bank.SlotB)}} },
		a.bankCell)
	ops := &opTable{Table: snmp.NewTable(mib.IadOpEntry, opColumns, a.opRows, a.opCellAt), a: a}
	for _, h := range []struct {
		prefix mib.OID
		h      snmp.Handler
	}{{mib.IadSw, sw}, {mib.IadBankTable, banks}, {mib.IadOpTable, ops}, {mib.IadConfig, a.configScalars()}} {
		if err := a.engine.Register(h.prefix, h.h); err != nil {
			return fmt.Errorf("agent: registering %s: %w", h.prefix, err)
		}
	}
	return nil
}

func (a *Agent) bankCell(col uint32, idx mib.OID) (snmp.Value, bool) {
	if len(idx) != 1 {
		return snmp.Value{}, false
	}
	slot := bank.Slot(idx[0])
	if !slot.Valid() {
		return snmp.Value{}, false
	}
	info := a.banks.Snapshot().Slots[slot]
	switch col {
	case last(mib.IadBankVersion):
		return str(info.Version), true
	case last(mib.IadBankState):
		return integer(int64(a.banks.Status(slot))), true
	case last(mib.IadBankDigest):
		if info.Factory || info.State == bank.SlotEmpty || info.Size == 0 {
			return octets(nil), true
		}
		return octets(append([]byte(nil), info.Digest[:]...)), true
	case last(mib.IadBankSize):
		return unsigned(uint64(max(info.Size, 0))), true
	}
	return snmp.Value{}, false
}

// opTable serves iadOpTable: reads through the generic table, writes
// through the row-creation logic of optable.go.
type opTable struct {
	*snmp.Table
	a *Agent
}

func (t *opTable) PrepareSet(ctx context.Context, vbs []snmp.SetVarBind) (func(context.Context) error, error) {
	return t.a.prepareOpSet(ctx, vbs)
}
