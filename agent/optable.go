package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/iadsafe/iad-agent/agent/snmp"
	"github.com/iadsafe/iad-agent/mib"
)

// Column numbers of iadOpEntry, taken from the MIB constants.
var (
	colType     = last(mib.IadOpType)
	colProtocol = last(mib.IadOpProtocol)
	colAddrType = last(mib.IadOpServerAddressType)
	colAddr     = last(mib.IadOpServerAddress)
	colPort     = last(mib.IadOpServerPort)
	colFile     = last(mib.IadOpFileName)
	colUser     = last(mib.IadOpUserName)
	colPassword = last(mib.IadOpPassword)
	colTimeout  = last(mib.IadOpTimeout)
	colState    = last(mib.IadOpState)
	colProgress = last(mib.IadOpProgress)
	colBytes    = last(mib.IadOpBytes)
	colCause    = last(mib.IadOpFailCause)
	colText     = last(mib.IadOpFailText)
	colStarted  = last(mib.IadOpTimeStarted)
	colDone     = last(mib.IadOpTimeCompleted)
	colStatus   = last(mib.IadOpRowStatus)
	colForce    = last(mib.IadOpForce)
)

func last(o mib.OID) uint32 { return o[len(o)-1] }

// opColumns lists the readable columns in order.
var opColumns = []uint32{colType, colProtocol, colAddrType, colAddr, colPort, colFile, colUser, colPassword,
	colTimeout, colState, colProgress, colBytes, colCause, colText, colStarted, colDone, colStatus, colForce}

// writableOpColumns are read-create.
var writableOpColumns = map[uint32]bool{colType: true, colProtocol: true, colAddrType: true, colAddr: true,
	colPort: true, colFile: true, colUser: true, colPassword: true, colTimeout: true, colStatus: true, colForce: true}

func integer(v int64) snmp.Value { return snmp.Value{Type: gosnmp.Integer, V: int(v)} }
func unsigned(v uint64) snmp.Value {
	return snmp.Value{Type: gosnmp.Gauge32, V: uint32(min(v, 1<<32-1))}
}
func octets(b []byte) snmp.Value { return snmp.Value{Type: gosnmp.OctetString, V: b} }
func str(s string) snmp.Value    { return snmp.Value{Type: gosnmp.OctetString, V: []byte(s)} }

// TruthValue (SNMPv2-TC): true(1), false(2).
const (
	truthTrue  = 1
	truthFalse = 2
)

func truthValue(b bool) snmp.Value {
	if b {
		return integer(truthTrue)
	}
	return integer(truthFalse)
}

// dateAndTime encodes t as an 11-octet DateAndTime, or eight zero octets
// for "not yet" as the MIB says.
func dateAndTime(t time.Time) snmp.Value {
	if t.IsZero() {
		return octets(make([]byte, 8))
	}
	t = t.UTC()
	return octets([]byte{byte(t.Year() >> 8), byte(t.Year()), byte(t.Month()), byte(t.Day()),
		byte(t.Hour()), byte(t.Minute()), byte(t.Second()), byte(t.Nanosecond() / 100_000_000), '+', 0, 0})
}

// opCell returns column col of row r. The caller holds a.mu.
func opCell(r *row, col uint32) (snmp.Value, bool) {
	switch col {
	case colType:
		return integer(int64(r.Type)), true
	case colProtocol:
		return integer(int64(r.Protocol)), true
	case colAddrType:
		return integer(int64(r.AddrType)), true
	case colAddr:
		return octets(append([]byte{}, r.Addr...)), true
	case colPort:
		return unsigned(uint64(r.Port)), true
	case colFile:
		return str(r.File), true
	case colUser:
		return str(r.User), true
	case colPassword:
		return str(""), true // never readable
	case colTimeout:
		return unsigned(uint64(r.Timeout)), true
	case colState:
		return integer(int64(r.State)), true
	case colProgress:
		return unsigned(uint64(r.Progress)), true
	case colBytes:
		return unsigned(r.Bytes), true
	case colCause:
		return integer(int64(r.FailCause)), true
	case colText:
		return str(r.FailText), true
	case colStarted:
		return dateAndTime(r.Started), true
	case colDone:
		return dateAndTime(r.Completed), true
	case colStatus:
		return integer(int64(r.rowStatus())), true
	case colForce:
		return truthValue(r.Force), true
	}
	return snmp.Value{}, false
}

// rowStatus is what iadOpRowStatus reads.
func (r *row) rowStatus() mib.RowStatus {
	if r.started() {
		return mib.RowActive
	}
	if r.complete() != nil {
		return mib.RowNotReady
	}
	return mib.RowNotInService
}

// opRows returns the sorted row indexes as OID suffixes.
func (a *Agent) opRows() []mib.OID {
	a.mu.Lock()
	idx := make([]uint32, 0, len(a.rows))
	for i := range a.rows {
		idx = append(idx, i)
	}
	a.mu.Unlock()
	sortUint32(idx)
	out := make([]mib.OID, len(idx))
	for i, v := range idx {
		out[i] = mib.OID{v}
	}
	return out
}

func sortUint32(s []uint32) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

func (a *Agent) opCellAt(col uint32, idx mib.OID) (snmp.Value, bool) {
	if len(idx) != 1 {
		return snmp.Value{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.rows[idx[0]]
	if !ok {
		return snmp.Value{}, false
	}
	return opCell(r, col)
}

// pendingRow collects one row's varbinds of a SET PDU.
type pendingRow struct {
	idx      uint32
	status   mib.RowStatus
	statusVB int // PDU index of the RowStatus varbind, 0 if absent
	firstVB  int
	cols     map[uint32]snmp.SetVarBind
	newRow   *row // the row as it will be after commit
	existing *row
	destroy  bool
	startNow bool
}

func setErr(status gosnmp.SNMPError, index int, format string, args ...any) error {
	return &snmp.SetError{Status: status, Index: index, Err: fmt.Errorf(format, args...)}
}

// prepareOpSet is phase one of a SET on iadOpTable: it checks every
// varbind and the resulting rows, changing nothing. The returned commit
// applies them.
func (a *Agent) prepareOpSet(ctx context.Context, vbs []snmp.SetVarBind) (func(context.Context) error, error) {
	entry := mib.IadOpEntry
	rows := map[uint32]*pendingRow{}
	var order []uint32
	for _, vb := range vbs {
		if len(vb.OID) != len(entry)+2 || !vb.OID.HasPrefix(entry) {
			return nil, setErr(gosnmp.NoCreation, vb.Index, "%s is not an instance of iadOpEntry", vb.OID)
		}
		col, idx := vb.OID[len(entry)], vb.OID[len(entry)+1]
		if !writableOpColumns[col] {
			if col >= colType && col <= colStatus {
				return nil, setErr(gosnmp.NotWritable, vb.Index, "column %d is read-only", col)
			}
			return nil, setErr(gosnmp.NoCreation, vb.Index, "no column %d", col)
		}
		if idx == 0 || idx > 2147483647 {
			return nil, setErr(gosnmp.NoCreation, vb.Index, "iadOpIndex %d out of range 1..2147483647", idx)
		}
		if err := checkOpValue(col, vb); err != nil {
			return nil, err
		}
		p := rows[idx]
		if p == nil {
			p = &pendingRow{idx: idx, firstVB: vb.Index, cols: map[uint32]snmp.SetVarBind{}}
			rows[idx] = p
			order = append(order, idx)
		}
		if _, dup := p.cols[col]; dup {
			return nil, setErr(gosnmp.InconsistentValue, vb.Index, "column %d set twice", col)
		}
		p.cols[col] = vb
		if col == colStatus {
			v, _ := asInt(vb.Value.V)
			p.status, p.statusVB = mib.RowStatus(v), vb.Index
		}
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	for _, idx := range order {
		p := rows[idx]
		p.existing = a.rows[idx]
		if err := p.check(); err != nil {
			return nil, err
		}
	}
	commit := func(ctx context.Context) error {
		var start []*row
		a.mu.Lock()
		for _, idx := range order {
			p := rows[idx]
			switch {
			case p.destroy:
				delete(a.rows, idx)
			case p.newRow != nil:
				if p.existing != nil {
					// Keep the identity of the live row (operations hold it).
					pw := p.newRow.password
					*p.existing = *p.newRow
					p.existing.password = pw
					p.newRow = p.existing
				}
				a.rows[idx] = p.newRow
				if p.startNow {
					start = append(start, p.newRow)
				}
			}
		}
		a.mu.Unlock()
		for _, idx := range order {
			p := rows[idx]
			if p.destroy {
				if err := a.journal.Delete(ctx, idx); err != nil {
					a.log.Error("journal delete failed", "index", idx, "err", err)
				}
			} else if p.newRow != nil && !p.startNow {
				a.persist(ctx, p.newRow)
			}
		}
		for _, r := range start {
			a.startOp(ctx, r)
		}
		return nil
	}
	return commit, nil
}

// check validates one pending row against its existing state (a.mu held)
// and builds the row as it will be after commit.
func (p *pendingRow) check() error {
	at := p.statusVB
	if at == 0 {
		at = p.firstVB
	}
	switch {
	case p.statusVB != 0 && (p.status == mib.RowCreateAndGo || p.status == mib.RowCreateAndWait):
		if p.existing != nil {
			return setErr(gosnmp.InconsistentValue, at, "row %d already exists", p.idx)
		}
	case p.statusVB != 0 && p.status == mib.RowDestroy:
		if p.existing != nil && p.existing.State == mib.OpRunning {
			return setErr(gosnmp.InconsistentValue, at, "row %d is running; it cannot be destroyed until it completes", p.idx)
		}
		if len(p.cols) > 1 {
			return setErr(gosnmp.InconsistentValue, at, "destroy must not carry other columns")
		}
		p.destroy = true
		return nil
	case p.statusVB != 0 && p.status == mib.RowNotReady:
		return setErr(gosnmp.WrongValue, at, "notReady(3) cannot be written")
	default: // active, notInService, or columns only
		if p.existing == nil {
			if p.statusVB != 0 {
				return setErr(gosnmp.InconsistentValue, at, "row %d does not exist; create it with createAndGo(4) or createAndWait(5)", p.idx)
			}
			return setErr(gosnmp.NoCreation, at, "row %d does not exist; create it with createAndGo(4) or createAndWait(5)", p.idx)
		}
		if p.existing.started() {
			if p.statusVB != 0 && p.status == mib.RowActive && len(p.cols) == 1 {
				return nil // active on an active row: nothing to do
			}
			return setErr(gosnmp.InconsistentValue, at, "row %d has already run; create a new row for a new operation", p.idx)
		}
	}

	r := &row{}
	if p.existing != nil {
		*r = *p.existing
	} else {
		r.Index = p.idx
		r.Protocol = mib.ProtocolTFTP
		r.State = mib.OpWaiting
		r.FailCause = mib.FailNone
	}
	for col, vb := range p.cols {
		applyOpColumn(r, col, vb.Value)
	}
	p.newRow = r
	if p.statusVB != 0 && (p.status == mib.RowCreateAndGo || p.status == mib.RowActive) {
		if err := r.complete(); err != nil {
			return setErr(gosnmp.InconsistentValue, p.statusVB, "row %d cannot start: %v", p.idx, err)
		}
		p.startNow = true
	}
	if vb, ok := p.cols[colAddr]; ok && (r.AddrType == mib.InetIPv4 || r.AddrType == mib.InetIPv6) {
		if _, err := r.serverAddr(); err != nil {
			return setErr(gosnmp.InconsistentValue, vb.Index, "%v", err)
		}
	}
	return nil
}

func applyOpColumn(r *row, col uint32, v snmp.Value) {
	n, _ := asInt(v.V)
	b, _ := asBytes(v.V)
	switch col {
	case colType:
		r.Type = mib.OpType(n)
	case colProtocol:
		r.Protocol = mib.Protocol(n)
	case colAddrType:
		r.AddrType = mib.InetAddressType(n)
	case colAddr:
		r.Addr = append([]byte(nil), b...)
	case colPort:
		r.Port = uint16(n)
	case colFile:
		r.File = string(b)
	case colUser:
		r.User = string(b)
	case colPassword:
		r.password = string(b)
	case colTimeout:
		r.Timeout = uint32(n)
	case colForce:
		r.Force = n == truthTrue
	}
}

// checkOpValue checks one varbind's type, length and range.
func checkOpValue(col uint32, vb snmp.SetVarBind) error {
	wantInt := func(valid func(int64) bool) error {
		if vb.Value.Type != gosnmp.Integer {
			return setErr(gosnmp.WrongType, vb.Index, "want INTEGER, got %v", vb.Value.Type)
		}
		n, ok := asInt(vb.Value.V)
		if !ok || !valid(n) {
			return setErr(gosnmp.WrongValue, vb.Index, "value %v out of range", vb.Value.V)
		}
		return nil
	}
	wantUnsigned := func(max int64) error {
		if vb.Value.Type != gosnmp.Gauge32 && vb.Value.Type != gosnmp.Uinteger32 {
			return setErr(gosnmp.WrongType, vb.Index, "want Unsigned32, got %v", vb.Value.Type)
		}
		n, ok := asInt(vb.Value.V)
		if !ok || n < 0 || n > max {
			return setErr(gosnmp.WrongValue, vb.Index, "value %v out of range 0..%d", vb.Value.V, max)
		}
		return nil
	}
	wantOctets := func(maxLen int, display bool) error {
		if vb.Value.Type != gosnmp.OctetString {
			return setErr(gosnmp.WrongType, vb.Index, "want OCTET STRING, got %v", vb.Value.Type)
		}
		b, _ := asBytes(vb.Value.V)
		if len(b) > maxLen {
			return setErr(gosnmp.WrongLength, vb.Index, "length %d exceeds %d", len(b), maxLen)
		}
		if display {
			for _, c := range b {
				if c == 0 || c >= 0x80 {
					return setErr(gosnmp.WrongValue, vb.Index, "not a DisplayString")
				}
			}
		}
		return nil
	}
	switch col {
	case colType:
		return wantInt(func(n int64) bool { return mib.OpType(n).Valid() })
	case colProtocol:
		return wantInt(func(n int64) bool { return mib.Protocol(n).Valid() })
	case colAddrType:
		return wantInt(func(n int64) bool { return n == int64(mib.InetIPv4) || n == int64(mib.InetIPv6) })
	case colAddr:
		return wantOctets(255, false)
	case colPort:
		return wantUnsigned(65535)
	case colFile:
		return wantOctets(255, true)
	case colUser, colPassword:
		return wantOctets(64, true)
	case colTimeout:
		return wantUnsigned(86400)
	case colStatus:
		return wantInt(func(n int64) bool { return mib.RowStatus(n).Valid() })
	case colForce:
		return wantInt(func(n int64) bool { return n == truthTrue || n == truthFalse })
	}
	return nil
}

func asInt(v any) (int64, bool) {
	switch n := v.(type) {
	case int:
		return int64(n), true
	case int32:
		return int64(n), true
	case int64:
		return n, true
	case uint:
		return int64(n), true
	case uint32:
		return int64(n), true
	case uint64:
		if n > 1<<62 {
			return 0, false
		}
		return int64(n), true
	}
	return 0, false
}

func asBytes(v any) ([]byte, bool) {
	switch b := v.(type) {
	case []byte:
		return b, true
	case string:
		return []byte(b), true
	}
	return nil, false
}
