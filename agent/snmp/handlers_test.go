package snmp

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/gosnmp/gosnmp"
	"github.com/iadsafe/iad-agent/mib"
)

func testTable(rows []mib.OID) *Table {
	entry := mib.MustParseOID("1.3.6.1.4.1.9.1.1")
	return NewTable(entry, []uint32{4, 2}, func() []mib.OID { return rows },
		func(col uint32, idx mib.OID) (Value, bool) {
			if col == 4 && idx.Equal(mib.OID{2, 1}) {
				return Value{}, false // a hole in column 4
			}
			for _, r := range rows {
				if r.Equal(idx) {
					return Value{gosnmp.Integer, int(col)}, true
				}
			}
			return Value{}, false
		})
}

func TestTableNext(t *testing.T) {
	const e = "1.3.6.1.4.1.9.1.1"
	// Unsorted on purpose; the empty index is ignored, the duplicate merged.
	tbl := testTable([]mib.OID{{2, 1}, {1, 2}, {1}, {2, 1}, {10}, {}})
	tests := []struct {
		from, want string // want "" = end of subtree
	}{
		{"1.3", e + ".2.1"},               // far before the table
		{"1.3.6.1.4.1.9.1", e + ".2.1"},   // the table object, a prefix of the entry
		{e, e + ".2.1"},                   // the entry itself
		{e + ".0", e + ".2.1"},            // before the first column
		{e + ".2", e + ".2.1"},            // column without index
		{e + ".2.0", e + ".2.1"},          // index before the first row
		{e + ".2.1", e + ".2.1.2"},        // index of different length
		{e + ".2.1.0", e + ".2.1.2"},      // partial index
		{e + ".2.1.2", e + ".2.2.1"},      //
		{e + ".2.1.2.0", e + ".2.2.1"},    // below a row: still after it
		{e + ".2.2", e + ".2.2.1"},        // partial index, prefix of a row
		{e + ".2.10", e + ".4.1"},         // last row: next column
		{e + ".2.4294967295", e + ".4.1"}, // past every row
		{e + ".3", e + ".4.1"},            // between columns
		{e + ".3.99.99", e + ".4.1"},      // between columns, with index
		{e + ".4.1.2", e + ".4.10"},       // skips the hole at 2.1
		{e + ".4.10", ""},                 // last cell
		{e + ".5", ""},                    // after the last column
		{"1.3.6.1.4.1.9.1.2", ""},         // after the entry
		{"1.3.6.1.4.1.10", ""},            //
	}
	for _, tt := range tests {
		t.Run(tt.from, func(t *testing.T) {
			got, v, err := tbl.Next(context.Background(), mib.MustParseOID(tt.from))
			if tt.want == "" {
				if !errors.Is(err, ErrEndOfSubtree) {
					t.Errorf("got %s, %v, want ErrEndOfSubtree", got, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("got %v, want %s", err, tt.want)
			}
			if got.String() != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if col := got[len(mib.MustParseOID(e))]; v.V != int(col) {
				t.Errorf("got value %v, want %d", v.V, col)
			}
		})
	}
}

func TestTableEmpty(t *testing.T) {
	tbl := testTable(nil)
	if _, _, err := tbl.Next(context.Background(), mib.MustParseOID("1.3")); !errors.Is(err, ErrEndOfSubtree) {
		t.Errorf("got %v, want ErrEndOfSubtree", err)
	}
}

func TestTableGet(t *testing.T) {
	const e = "1.3.6.1.4.1.9.1.1"
	tbl := testTable([]mib.OID{{1}, {1, 2}, {2, 1}})
	tests := []struct {
		oid     string
		wantErr error
	}{
		{e + ".2.1", nil},
		{e + ".2.1.2", nil},
		{e + ".4.2.1", ErrNoSuchInstance}, // hole
		{e + ".2.3", ErrNoSuchInstance},
		{e + ".2", ErrNoSuchInstance},
		{e + ".3.1", ErrNoSuchObject}, // no such column
		{e, ErrNoSuchObject},
		{"1.3.6.1.4.1.9.1", ErrNoSuchObject},
	}
	for _, tt := range tests {
		t.Run(tt.oid, func(t *testing.T) {
			_, err := tbl.Get(context.Background(), mib.MustParseOID(tt.oid))
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestScalars(t *testing.T) {
	p := mib.MustParseOID("1.3.6.1.4.1.9.2")
	absent := errors.New("unreadable")
	s := NewScalars(p, map[uint32]func(context.Context) (Value, error){
		3: func(context.Context) (Value, error) { return Value{gosnmp.Integer, 3}, nil },
		1: func(context.Context) (Value, error) { return Value{gosnmp.Integer, 1}, nil },
		2: func(context.Context) (Value, error) { return Value{}, ErrNoSuchInstance },
		9: func(context.Context) (Value, error) { return Value{}, absent },
	})
	next := []struct{ from, want string }{
		{"1.3", "1.3.6.1.4.1.9.2.1.0"},
		{"1.3.6.1.4.1.9.2", "1.3.6.1.4.1.9.2.1.0"},
		{"1.3.6.1.4.1.9.2.1", "1.3.6.1.4.1.9.2.1.0"},
		{"1.3.6.1.4.1.9.2.1.0", "1.3.6.1.4.1.9.2.3.0"}, // 2 is absent
		{"1.3.6.1.4.1.9.2.1.0.5", "1.3.6.1.4.1.9.2.3.0"},
		{"1.3.6.1.4.1.9.2.4", "error"},
		{"1.3.6.1.4.1.9.2.9.0", "end"},
	}
	for _, tt := range next {
		t.Run("next "+tt.from, func(t *testing.T) {
			got, _, err := s.Next(context.Background(), mib.MustParseOID(tt.from))
			switch tt.want {
			case "end":
				if !errors.Is(err, ErrEndOfSubtree) {
					t.Errorf("got %s %v, want end of subtree", got, err)
				}
			case "error":
				if !errors.Is(err, absent) {
					t.Errorf("got %s %v, want the getter's error", got, err)
				}
			default:
				if err != nil || got.String() != tt.want {
					t.Errorf("got %s %v, want %s", got, err, tt.want)
				}
			}
		})
	}
	gets := []struct {
		oid     string
		wantErr error
	}{
		{"1.3.6.1.4.1.9.2.1.0", nil},
		{"1.3.6.1.4.1.9.2.1", ErrNoSuchInstance},
		{"1.3.6.1.4.1.9.2.1.1", ErrNoSuchInstance},
		{"1.3.6.1.4.1.9.2.2.0", ErrNoSuchInstance},
		{"1.3.6.1.4.1.9.2.5.0", ErrNoSuchObject},
		{"1.3.6.1.4.1.9.2", ErrNoSuchObject},
	}
	for _, tt := range gets {
		t.Run("get "+tt.oid, func(t *testing.T) {
			if _, err := s.Get(context.Background(), mib.MustParseOID(tt.oid)); !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
	if err := s.SetWritable(7, nil); !errors.Is(err, ErrNoSuchObject) {
		t.Errorf("SetWritable of an unknown scalar: got %v, want ErrNoSuchObject", err)
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		in   Value
		want any // nil: must fail
	}{
		{Value{gosnmp.Integer, int64(-5)}, -5},
		{Value{gosnmp.Integer, int64(1) << 40}, nil},
		{Value{gosnmp.Integer, "5"}, nil},
		{Value{gosnmp.Gauge32, 7}, uint32(7)},
		{Value{gosnmp.Gauge32, -1}, nil},
		{Value{gosnmp.Counter32, uint64(1) << 32}, nil},
		{Value{gosnmp.Counter64, uint32(9)}, uint64(9)},
		{Value{gosnmp.ObjectIdentifier, mib.OID{1, 3, 6}}, ".1.3.6"},
		{Value{gosnmp.ObjectIdentifier, "1.3.6"}, ".1.3.6"},
		{Value{gosnmp.ObjectIdentifier, "1.99.6"}, nil},
		{Value{gosnmp.ObjectIdentifier, mib.OID{1}}, nil},
		{Value{gosnmp.IPAddress, "192.0.2.1"}, "192.0.2.1"},
		{Value{gosnmp.IPAddress, "2001:db8::1"}, nil},
		{Value{gosnmp.IPAddress, "nope"}, nil},
		{Value{gosnmp.OctetString, 5}, nil},
		{Value{gosnmp.NoSuchObject, nil}, nil},
		{Value{gosnmp.Boolean, true}, nil},
	}
	for _, tt := range tests {
		got, err := normalize(tt.in)
		if tt.want == nil {
			if err == nil {
				t.Errorf("normalize(%v %#v): got %#v, want an error", tt.in.Type, tt.in.V, got.V)
			}
			continue
		}
		if err != nil {
			t.Errorf("normalize(%v %#v): %v", tt.in.Type, tt.in.V, err)
			continue
		}
		if b, ok := got.V.([]byte); ok && tt.in.Type == gosnmp.IPAddress {
			got.V = net.IP(b).String()
		}
		if got.V != tt.want {
			t.Errorf("normalize(%v %#v): got %#v, want %#v", tt.in.Type, tt.in.V, got.V, tt.want)
		}
	}
}
