package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/gosnmp/gosnmp"

	"github.com/iadsafe/iad-agent/agent/backupcrypt"
	"github.com/iadsafe/iad-agent/agent/config"
	"github.com/iadsafe/iad-agent/agent/iadconfig"
	"github.com/iadsafe/iad-agent/agent/migrate"
	"github.com/iadsafe/iad-agent/agent/snmp"
	"github.com/iadsafe/iad-agent/mib"
)

func TestClassifyConfigErrors(t *testing.T) {
	cases := []struct {
		err  error
		want mib.FailCause
	}{
		{fmt.Errorf("x: %w", iadconfig.ErrTooNew), mib.FailConfigTooNew},
		{iadconfig.ErrMajorMismatch, mib.FailConfigMajorMismatch},
		{fmt.Errorf("format 2 to 3: %w", iadconfig.ErrConvert), mib.FailConfigConvertFailed},
		{iadconfig.Problems{{File: "a", Msg: "b"}}, mib.FailConfigInvalid},
		{&iadconfig.SyntaxError{File: "a", Msg: "b"}, mib.FailConfigInvalid},
		{iadconfig.ErrUnknownFormat, mib.FailConfigInvalid},
		{fmt.Errorf("%w: exit status 3", migrate.ErrReload), mib.FailApplyFailed},
		{fmt.Errorf("%w: %w", migrate.ErrApply, config.ErrTooLarge), mib.FailApplyFailed},
		{fmt.Errorf("%w: %w", config.ErrCorrupt, backupcrypt.ErrAuth), mib.FailConfigInvalid},
		{backupcrypt.ErrWrongKey, mib.FailConfigInvalid},
		{backupcrypt.ErrNotEncrypted, mib.FailConfigInvalid},
		{backupcrypt.ErrTruncated, mib.FailConfigInvalid},
		{ErrNoConfigKey, mib.FailConfigInvalid},
	}
	for _, c := range cases {
		if got, _ := classify(c.err); got != c.want {
			t.Errorf("classify(%v): got %v, want %v", c.err, got, c.want)
		}
	}
	// Problems are cut at a problem boundary with a count of the rest.
	var ps iadconfig.Problems
	for i := range 30 {
		ps = append(ps, iadconfig.Problem{File: "users.conf", Field: fmt.Sprintf("line.%d.number", i+1), Msg: "2001 is also the number of line.1"})
	}
	cause, text := classify(fmt.Errorf("restoring: %w", &migrate.InvalidError{What: "backup (format 1)", Problems: ps}))
	if cause != mib.FailConfigInvalid || len(text) > 255 || !strings.HasPrefix(text, "backup (format 1): 30 problems: users.conf: line.1.number") || !strings.HasSuffix(text, " more)") {
		t.Errorf("classify(InvalidError): %v %q (%d bytes)", cause, text, len(text))
	}
}

func TestOpForceColumn(t *testing.T) {
	i, o := gosnmp.Integer, gosnmp.OctetString
	restore := []snmp.SetVarBind{
		vb(1, mib.IadOpType, 1, i, int(mib.OpRestoreConfig)),
		vb(2, mib.IadOpServerAddressType, 1, i, int(mib.InetIPv4)),
		vb(3, mib.IadOpServerAddress, 1, o, []byte{127, 0, 0, 1}),
		vb(4, mib.IadOpFileName, 1, o, []byte("b.tar")),
	}
	cases := []struct {
		name    string
		force   snmp.SetVarBind
		wantErr gosnmp.SNMPError
		want    bool
	}{
		{"true", vb(5, mib.IadOpForce, 1, i, 1), gosnmp.NoError, true},
		{"false", vb(5, mib.IadOpForce, 1, i, 2), gosnmp.NoError, false},
		{"not a TruthValue", vb(5, mib.IadOpForce, 1, i, 3), gosnmp.WrongValue, false},
		{"wrong type", vb(5, mib.IadOpForce, 1, o, []byte("yes")), gosnmp.WrongType, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := &Agent{rows: map[uint32]*row{}}
			vbs := append(append([]snmp.SetVarBind{}, restore...), c.force, vb(6, mib.IadOpRowStatus, 1, i, int(mib.RowCreateAndWait)))
			_, err := a.prepareOpSet(context.Background(), vbs)
			if c.wantErr != gosnmp.NoError {
				var se *snmp.SetError
				if !errors.As(err, &se) || se.Status != c.wantErr || se.Index != 5 {
					t.Fatalf("got %v, want %v at 5", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r := &row{}
			for _, v := range vbs {
				applyOpColumn(r, v.OID[len(mib.IadOpEntry)], v.Value)
			}
			if r.Force != c.want {
				t.Errorf("Force = %v, want %v", r.Force, c.want)
			}
			if got, _ := opCell(r, colForce); got.V != map[bool]int{true: 1, false: 2}[c.want] {
				t.Errorf("iadOpForce reads %v", got.V)
			}
		})
	}
}
