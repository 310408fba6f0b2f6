package snmp_test

import (
	"context"
	"fmt"

	"github.com/gosnmp/gosnmp"
	"github.com/iadsafe/iad-agent/agent/snmp"
	"github.com/iadsafe/iad-agent/mib"
)

// A MIB module is a few Scalars and Tables registered on the engine; a
// walk then visits them in OID order after the built-in groups.
func Example() {
	e := snmp.New(snmp.Options{ReadCommunity: "public", System: snmp.SystemInfo{Name: "iad-1"}})

	scalars := snmp.NewScalars(mib.MustParseOID("1.3.6.1.4.1.99999.1"), map[uint32]func(context.Context) (snmp.Value, error){
		1: func(context.Context) (snmp.Value, error) { return snmp.Value{Type: gosnmp.Integer, V: 3}, nil },
	})
	// Writable: validate in phase 1, apply in the returned commit.
	_ = scalars.SetWritable(1, func(_ context.Context, v snmp.Value) (func(context.Context) error, error) {
		if err := snmp.ExpectType(v, gosnmp.Integer); err != nil {
			return nil, err
		}
		return func(context.Context) error { return nil }, nil
	})
	rows := []mib.OID{{1}, {2}}
	table := snmp.NewTable(mib.MustParseOID("1.3.6.1.4.1.99999.2.1"), []uint32{2, 3},
		func() []mib.OID { return rows },
		func(col uint32, idx mib.OID) (snmp.Value, bool) {
			return snmp.Value{Type: gosnmp.Gauge32, V: col*10 + idx[0]}, true
		})
	if err := e.Register(mib.MustParseOID("1.3.6.1.4.1.99999.1"), scalars); err != nil {
		fmt.Println(err)
	}
	if err := e.Register(mib.MustParseOID("1.3.6.1.4.1.99999.2"), table); err != nil {
		fmt.Println(err)
	}

	oid := mib.MustParseOID("1.3.6.1.4.1")
	for {
		res := e.Tree().GetNext(context.Background(), []mib.OID{oid})
		vb := res.VarBinds[0]
		if vb.Value.Type == gosnmp.EndOfMibView {
			break
		}
		fmt.Println(vb.OID, vb.Value.V)
		oid = vb.OID
	}
	// Output:
	// 1.3.6.1.4.1.99999.1.1.0 3
	// 1.3.6.1.4.1.99999.2.1.2.1 21
	// 1.3.6.1.4.1.99999.2.1.2.2 22
	// 1.3.6.1.4.1.99999.2.1.3.1 31
	// 1.3.6.1.4.1.99999.2.1.3.2 32
}
