package agent

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/gosnmp/gosnmp"

	"github.com/iadsafe/iad-agent/agent/snmp"
	"github.com/iadsafe/iad-agent/agent/transfer"
	"github.com/iadsafe/iad-agent/bank"
	"github.com/iadsafe/iad-agent/image"
	"github.com/iadsafe/iad-agent/mib"
)

func vb(i int, col mib.OID, idx uint32, typ gosnmp.Asn1BER, v any) snmp.SetVarBind {
	return snmp.SetVarBind{Index: i, OID: col.Append(idx), Value: snmp.Value{Type: typ, V: v}}
}

func TestPrepareOpSet(t *testing.T) {
	i, g, o := gosnmp.Integer, gosnmp.Gauge32, gosnmp.OctetString
	upgrade := func(idx uint32, status mib.RowStatus) []snmp.SetVarBind {
		return []snmp.SetVarBind{
			vb(1, mib.IadOpType, idx, i, int(mib.OpUpgrade)),
			vb(2, mib.IadOpServerAddressType, idx, i, int(mib.InetIPv4)),
			vb(3, mib.IadOpServerAddress, idx, o, []byte{127, 0, 0, 1}),
			vb(4, mib.IadOpFileName, idx, o, []byte("v2.img")),
			vb(5, mib.IadOpRowStatus, idx, i, int(status)),
		}
	}
	running := &row{}
	running.Index, running.State, running.Type = 7, mib.OpRunning, mib.OpUpgrade
	waiting := &row{}
	waiting.Index, waiting.State, waiting.Type = 8, mib.OpWaiting, mib.OpReset
	cases := []struct {
		name      string
		vbs       []snmp.SetVarBind
		wantErr   gosnmp.SNMPError // NoError: accepted
		wantIndex int
	}{
		{"createAndGo complete", upgrade(1, mib.RowCreateAndGo), gosnmp.NoError, 0},
		{"createAndWait", upgrade(1, mib.RowCreateAndWait), gosnmp.NoError, 0},
		{"reset needs nothing", []snmp.SetVarBind{vb(1, mib.IadOpType, 2, i, 4), vb(2, mib.IadOpRowStatus, 2, i, 4)}, gosnmp.NoError, 0},
		{"wrong type", []snmp.SetVarBind{vb(1, mib.IadOpType, 1, o, []byte("x"))}, gosnmp.WrongType, 1},
		{"bad enum", []snmp.SetVarBind{vb(1, mib.IadOpType, 1, i, 6)}, gosnmp.WrongValue, 1},
		{"bad address type", []snmp.SetVarBind{vb(1, mib.IadOpServerAddressType, 1, i, int(mib.InetDNS))}, gosnmp.WrongValue, 1},
		{"port out of range", []snmp.SetVarBind{vb(1, mib.IadOpServerPort, 1, g, uint32(70000))}, gosnmp.WrongValue, 1},
		{"long file name", []snmp.SetVarBind{vb(1, mib.IadOpFileName, 1, o, make([]byte, 256))}, gosnmp.WrongLength, 1},
		{"read-only column", []snmp.SetVarBind{vb(1, mib.IadOpState, 1, i, 3)}, gosnmp.NotWritable, 1},
		{"index zero", []snmp.SetVarBind{vb(1, mib.IadOpType, 0, i, 4)}, gosnmp.NoCreation, 1},
		{"incomplete createAndGo", []snmp.SetVarBind{vb(1, mib.IadOpType, 1, i, 2), vb(2, mib.IadOpRowStatus, 1, i, 4)}, gosnmp.InconsistentValue, 2},
		{"address length vs type", []snmp.SetVarBind{vb(1, mib.IadOpServerAddressType, 9, i, int(mib.InetIPv6)), vb(2, mib.IadOpServerAddress, 9, o, []byte{1, 2, 3, 4}), vb(3, mib.IadOpRowStatus, 9, i, 5)}, gosnmp.InconsistentValue, 2},
		{"column of a missing row", []snmp.SetVarBind{vb(1, mib.IadOpFileName, 3, o, []byte("f"))}, gosnmp.NoCreation, 1},
		{"create an existing row", upgrade(7, mib.RowCreateAndGo), gosnmp.InconsistentValue, 5},
		{"change a running row", []snmp.SetVarBind{vb(1, mib.IadOpFileName, 7, o, []byte("f"))}, gosnmp.InconsistentValue, 1},
		{"destroy a running row", []snmp.SetVarBind{vb(1, mib.IadOpRowStatus, 7, i, 6)}, gosnmp.InconsistentValue, 1},
		{"destroy a waiting row", []snmp.SetVarBind{vb(1, mib.IadOpRowStatus, 8, i, 6)}, gosnmp.NoError, 0},
		{"activate a waiting row", []snmp.SetVarBind{vb(1, mib.IadOpRowStatus, 8, i, 1)}, gosnmp.NoError, 0},
		{"activate a missing row", []snmp.SetVarBind{vb(1, mib.IadOpRowStatus, 4, i, 1)}, gosnmp.InconsistentValue, 1},
		{"write notReady", []snmp.SetVarBind{vb(1, mib.IadOpRowStatus, 8, i, 3)}, gosnmp.WrongValue, 1},
		{"same column twice", []snmp.SetVarBind{vb(1, mib.IadOpType, 1, i, 4), vb(2, mib.IadOpType, 1, i, 5)}, gosnmp.InconsistentValue, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := &Agent{rows: map[uint32]*row{7: running, 8: waiting}}
			commit, err := a.prepareOpSet(context.Background(), c.vbs)
			if c.wantErr == gosnmp.NoError {
				if err != nil || commit == nil {
					t.Fatalf("got %v, want accepted", err)
				}
				return
			}
			var se *snmp.SetError
			if !errors.As(err, &se) {
				t.Fatalf("got %v, want a SetError %v", err, c.wantErr)
			}
			if se.Status != c.wantErr || se.Index != c.wantIndex {
				t.Fatalf("got %v at %d (%v), want %v at %d", se.Status, se.Index, se.Err, c.wantErr, c.wantIndex)
			}
			if len(a.rows) != 2 {
				t.Fatalf("a rejected SET changed the rows: %d", len(a.rows))
			}
		})
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want mib.FailCause
	}{
		{nil, mib.FailNone},
		{fmt.Errorf("x: %w", transfer.ErrNotFound), mib.FailFileNotFound},
		{transfer.ErrTimeout, mib.FailTimeout},
		{context.DeadlineExceeded, mib.FailTimeout},
		{transfer.ErrUnreachable, mib.FailServerUnreachable},
		{transfer.ErrAuth, mib.FailAuthFailed},
		{image.ErrBadSignature, mib.FailSignatureInvalid},
		{image.ErrUntrustedKey, mib.FailUntrustedKey},
		{image.ErrIncompatibleHardware, mib.FailImageIncompatible},
		{image.ErrTruncated, mib.FailImageCorrupt},
		{fmt.Errorf("bank: %w: %w", bank.ErrSizeMismatch, image.ErrHashMismatch), mib.FailImageCorrupt},
		{image.ErrTooLarge, mib.FailNoSpace},
		{bank.ErrWrite, mib.FailFlashWriteError},
		{bank.ErrNoFallback, mib.FailNoFallback},
		{ErrBusy, mib.FailBusy},
		{errors.New("something else"), mib.FailInternalError},
	}
	for _, c := range cases {
		if got, _ := classify(c.err); got != c.want {
			t.Errorf("classify(%v): got %v, want %v", c.err, got, c.want)
		}
	}
	long := string(make([]byte, 300))
	if _, text := classify(errors.New(long + "é")); len(text) != 255 {
		t.Errorf("fail text: got %d bytes, want 255", len(text))
	}
	if got := truncateText("aé", 2); got != "a" {
		t.Errorf("truncateText on a rune boundary: got %q, want %q", got, "a")
	}
}
