package mib

import (
	"fmt"
	"testing"
)

type enumCase struct {
	v     fmt.Stringer
	valid bool
	want  string
}

func TestEnumStringAndValid(t *testing.T) {
	tests := []struct {
		name  string
		cases []enumCase
		valid func(fmt.Stringer) bool
	}{
		{"OpType", []enumCase{
			{OpBackupConfig, true, "backupConfig"},
			{OpUpgrade, true, "upgrade"},
			{OpRestoreConfig, true, "restoreConfig"},
			{OpReset, true, "reset"},
			{OpRevert, true, "revert"},
			{OpType(0), false, "OpType(0)"},
			{OpType(6), false, "OpType(6)"},
		}, func(s fmt.Stringer) bool { return s.(OpType).Valid() }},
		{"Protocol", []enumCase{
			{ProtocolTFTP, true, "tftp"},
			{ProtocolFTP, true, "ftp"},
			{Protocol(0), false, "Protocol(0)"},
			{Protocol(3), false, "Protocol(3)"},
		}, func(s fmt.Stringer) bool { return s.(Protocol).Valid() }},
		{"OpState", []enumCase{
			{OpWaiting, true, "waiting"},
			{OpRunning, true, "running"},
			{OpSuccessful, true, "successful"},
			{OpFailed, true, "failed"},
			{OpState(0), false, "OpState(0)"},
			{OpState(5), false, "OpState(5)"},
		}, func(s fmt.Stringer) bool { return s.(OpState).Valid() }},
		{"FailCause", []enumCase{
			{FailNone, true, "none"},
			{FailTimeout, true, "timeout"},
			{FailServerUnreachable, true, "serverUnreachable"},
			{FailFileNotFound, true, "fileNotFound"},
			{FailAuthFailed, true, "authFailed"},
			{FailImageCorrupt, true, "imageCorrupt"},
			{FailImageIncompatible, true, "imageIncompatible"},
			{FailSignatureInvalid, true, "signatureInvalid"},
			{FailFlashWriteError, true, "flashWriteError"},
			{FailConfigInvalid, true, "configInvalid"},
			{FailBusy, true, "busy"},
			{FailInterrupted, true, "interrupted"},
			{FailNoSpace, true, "noSpace"},
			{FailUntrustedKey, true, "untrustedKey"},
			{FailAccessDenied, true, "accessDenied"},
			{FailTransferError, true, "transferError"},
			{FailNoFallback, true, "noFallback"},
			{FailInternalError, true, "internalError"},
			{FailConfigTooNew, true, "configTooNew"},
			{FailConfigMajorMismatch, true, "configMajorMismatch"},
			{FailConfigConvertFailed, true, "configConvertFailed"},
			{FailApplyFailed, true, "applyFailed"},
			{FailCause(0), false, "FailCause(0)"},
			{FailCause(23), false, "FailCause(23)"},
		}, func(s fmt.Stringer) bool { return s.(FailCause).Valid() }},
		{"BankState", []enumCase{
			{BankEmpty, true, "empty"},
			{BankWriting, true, "writing"},
			{BankValid, true, "valid"},
			{BankTrial, true, "trial"},
			{BankActive, true, "active"},
			{BankBad, true, "bad"},
			{BankState(0), false, "BankState(0)"},
			{BankState(7), false, "BankState(7)"},
		}, func(s fmt.Stringer) bool { return s.(BankState).Valid() }},
		{"Bank", []enumCase{
			{BankA, true, "bankA"},
			{BankB, true, "bankB"},
			{Bank(0), false, "Bank(0)"},
			{Bank(3), false, "Bank(3)"},
		}, func(s fmt.Stringer) bool { return s.(Bank).Valid() }},
		{"RowStatus", []enumCase{
			{RowActive, true, "active"},
			{RowNotInService, true, "notInService"},
			{RowNotReady, true, "notReady"},
			{RowCreateAndGo, true, "createAndGo"},
			{RowCreateAndWait, true, "createAndWait"},
			{RowDestroy, true, "destroy"},
			{RowStatus(0), false, "RowStatus(0)"},
			{RowStatus(7), false, "RowStatus(7)"},
		}, func(s fmt.Stringer) bool { return s.(RowStatus).Valid() }},
		{"InetAddressType", []enumCase{
			{InetUnknown, true, "unknown"},
			{InetIPv4, true, "ipv4"},
			{InetIPv6, true, "ipv6"},
			{InetIPv4z, true, "ipv4z"},
			{InetIPv6z, true, "ipv6z"},
			{InetDNS, true, "dns"},
			{InetAddressType(5), false, "InetAddressType(5)"},
			{InetAddressType(-1), false, "InetAddressType(-1)"},
		}, func(s fmt.Stringer) bool { return s.(InetAddressType).Valid() }},
	}
	for _, tt := range tests {
		for _, c := range tt.cases {
			t.Run(tt.name+"/"+c.want, func(t *testing.T) {
				if got := c.v.String(); got != c.want {
					t.Errorf("String() = %q, want %q", got, c.want)
				}
				if got := tt.valid(c.v); got != c.valid {
					t.Errorf("Valid() = %v, want %v", got, c.valid)
				}
			})
		}
	}
}

func TestLabelsRoundTrip(t *testing.T) {
	for label, v := range FailCauseLabels() {
		if got := v.String(); got != label {
			t.Errorf("FailCauseLabels()[%q].String() = %q, want %q", label, got, label)
		}
	}
	m := OpTypeLabels()
	delete(m, "upgrade")
	if _, ok := OpTypeLabels()["upgrade"]; !ok {
		t.Error("OpTypeLabels shares its map between calls, want a fresh copy")
	}
}
