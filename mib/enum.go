package mib

import "strconv"

// The enumerations below carry the numbers of the MIB, written out: they
// are on the wire and in persistent state, so a reordering must not change
// them. String returns the MIB label; Valid reports whether the value is
// one the MIB defines. Each XxxLabels function returns a fresh label to
// value map, for parsing labels typed by a user.

func enumString[T ~int32](labels map[T]string, typ string, v T) string {
	if s, ok := labels[v]; ok {
		return s
	}
	return typ + "(" + strconv.FormatInt(int64(v), 10) + ")"
}

func invert[T ~int32](labels map[T]string) map[string]T {
	m := make(map[string]T, len(labels))
	for v, s := range labels {
		m[s] = v
	}
	return m
}

// OpType is iadOpType: what an operation does.
type OpType int32

const (
	OpBackupConfig  OpType = 1
	OpUpgrade       OpType = 2
	OpRestoreConfig OpType = 3
	OpReset         OpType = 4
	OpRevert        OpType = 5
)

var opTypeLabels = map[OpType]string{
	OpBackupConfig:  "backupConfig",
	OpUpgrade:       "upgrade",
	OpRestoreConfig: "restoreConfig",
	OpReset:         "reset",
	OpRevert:        "revert",
}

func (v OpType) String() string { return enumString(opTypeLabels, "OpType", v) }

// Valid reports whether v is a value of iadOpType.
func (v OpType) Valid() bool { _, ok := opTypeLabels[v]; return ok }

// OpTypeLabels returns the labels of iadOpType and their values.
func OpTypeLabels() map[string]OpType { return invert(opTypeLabels) }

// Protocol is iadOpProtocol: the file transfer protocol of an operation.
type Protocol int32

const (
	ProtocolTFTP Protocol = 1
	ProtocolFTP  Protocol = 2
)

var protocolLabels = map[Protocol]string{
	ProtocolTFTP: "tftp",
	ProtocolFTP:  "ftp",
}

func (v Protocol) String() string { return enumString(protocolLabels, "Protocol", v) }

// Valid reports whether v is a value of iadOpProtocol.
func (v Protocol) Valid() bool { _, ok := protocolLabels[v]; return ok }

// ProtocolLabels returns the labels of iadOpProtocol and their values.
func ProtocolLabels() map[string]Protocol { return invert(protocolLabels) }

// OpState is iadOpState: where an operation is in its life.
type OpState int32

const (
	OpWaiting    OpState = 1
	OpRunning    OpState = 2
	OpSuccessful OpState = 3
	OpFailed     OpState = 4
)

var opStateLabels = map[OpState]string{
	OpWaiting:    "waiting",
	OpRunning:    "running",
	OpSuccessful: "successful",
	OpFailed:     "failed",
}

func (v OpState) String() string { return enumString(opStateLabels, "OpState", v) }

// Valid reports whether v is a value of iadOpState.
func (v OpState) Valid() bool { _, ok := opStateLabels[v]; return ok }

// OpStateLabels returns the labels of iadOpState and their values.
func OpStateLabels() map[string]OpState { return invert(opStateLabels) }

// FailCause is the textual convention IadFailCause (iadOpFailCause): why
// an operation failed. The MIB's DESCRIPTION says what each value means.
type FailCause int32

const (
	FailNone              FailCause = 1
	FailTimeout           FailCause = 2
	FailServerUnreachable FailCause = 3
	FailFileNotFound      FailCause = 4
	FailAuthFailed        FailCause = 5
	FailImageCorrupt      FailCause = 6
	FailImageIncompatible FailCause = 7
	FailSignatureInvalid  FailCause = 8
	FailFlashWriteError   FailCause = 9
	FailConfigInvalid     FailCause = 10
	FailBusy              FailCause = 11
	FailInterrupted       FailCause = 12
	FailNoSpace           FailCause = 13
	FailUntrustedKey      FailCause = 14
	FailAccessDenied      FailCause = 15
	FailTransferError     FailCause = 16
	FailNoFallback        FailCause = 17
	FailInternalError     FailCause = 18

	// Configuration format conversion and apply (issue 6).
	FailConfigTooNew        FailCause = 19
	FailConfigMajorMismatch FailCause = 20
	FailConfigConvertFailed FailCause = 21
	FailApplyFailed         FailCause = 22
)

var failCauseLabels = map[FailCause]string{
	FailNone:              "none",
	FailTimeout:           "timeout",
	FailServerUnreachable: "serverUnreachable",
	FailFileNotFound:      "fileNotFound",
	FailAuthFailed:        "authFailed",
	FailImageCorrupt:      "imageCorrupt",
	FailImageIncompatible: "imageIncompatible",
	FailSignatureInvalid:  "signatureInvalid",
	FailFlashWriteError:   "flashWriteError",
	FailConfigInvalid:     "configInvalid",
	FailBusy:              "busy",
	FailInterrupted:       "interrupted",
	FailNoSpace:           "noSpace",
	FailUntrustedKey:      "untrustedKey",
	FailAccessDenied:      "accessDenied",
	FailTransferError:     "transferError",
	FailNoFallback:        "noFallback",
	FailInternalError:     "internalError",

	FailConfigTooNew:        "configTooNew",
	FailConfigMajorMismatch: "configMajorMismatch",
	FailConfigConvertFailed: "configConvertFailed",
	FailApplyFailed:         "applyFailed",
}

func (v FailCause) String() string { return enumString(failCauseLabels, "FailCause", v) }

// Valid reports whether v is a value of IadFailCause.
func (v FailCause) Valid() bool { _, ok := failCauseLabels[v]; return ok }

// FailCauseLabels returns the labels of IadFailCause and their values.
func FailCauseLabels() map[string]FailCause { return invert(failCauseLabels) }

// BankState is iadBankState: what a software bank holds.
type BankState int32

const (
	BankEmpty   BankState = 1
	BankWriting BankState = 2
	BankValid   BankState = 3
	BankTrial   BankState = 4
	BankActive  BankState = 5
	BankBad     BankState = 6
)

var bankStateLabels = map[BankState]string{
	BankEmpty:   "empty",
	BankWriting: "writing",
	BankValid:   "valid",
	BankTrial:   "trial",
	BankActive:  "active",
	BankBad:     "bad",
}

func (v BankState) String() string { return enumString(bankStateLabels, "BankState", v) }

// Valid reports whether v is a value of iadBankState.
func (v BankState) Valid() bool { _, ok := bankStateLabels[v]; return ok }

// BankStateLabels returns the labels of iadBankState and their values.
func BankStateLabels() map[string]BankState { return invert(bankStateLabels) }

// Bank is the textual convention IadBank: one of the two software banks.
type Bank int32

const (
	BankA Bank = 1
	BankB Bank = 2
)

var bankLabels = map[Bank]string{
	BankA: "bankA",
	BankB: "bankB",
}

func (v Bank) String() string { return enumString(bankLabels, "Bank", v) }

// Valid reports whether v is a value of IadBank.
func (v Bank) Valid() bool { _, ok := bankLabels[v]; return ok }

// BankLabels returns the labels of IadBank and their values.
func BankLabels() map[string]Bank { return invert(bankLabels) }

// RowStatus is the textual convention RowStatus of SNMPv2-TC (RFC 2579),
// the syntax of iadOpRowStatus. Only active, notInService and notReady
// are ever read back; the others are actions a manager writes.
type RowStatus int32

const (
	RowActive        RowStatus = 1
	RowNotInService  RowStatus = 2
	RowNotReady      RowStatus = 3
	RowCreateAndGo   RowStatus = 4
	RowCreateAndWait RowStatus = 5
	RowDestroy       RowStatus = 6
)

var rowStatusLabels = map[RowStatus]string{
	RowActive:        "active",
	RowNotInService:  "notInService",
	RowNotReady:      "notReady",
	RowCreateAndGo:   "createAndGo",
	RowCreateAndWait: "createAndWait",
	RowDestroy:       "destroy",
}

func (v RowStatus) String() string { return enumString(rowStatusLabels, "RowStatus", v) }

// Valid reports whether v is a value of RowStatus.
func (v RowStatus) Valid() bool { _, ok := rowStatusLabels[v]; return ok }

// RowStatusLabels returns the labels of RowStatus and their values.
func RowStatusLabels() map[string]RowStatus { return invert(rowStatusLabels) }

// InetAddressType is the textual convention of INET-ADDRESS-MIB (RFC
// 4001), the syntax of iadOpServerAddressType. Valid means defined by the
// MIB; the agent itself accepts only InetIPv4 and InetIPv6.
type InetAddressType int32

const (
	InetUnknown InetAddressType = 0
	InetIPv4    InetAddressType = 1
	InetIPv6    InetAddressType = 2
	InetIPv4z   InetAddressType = 3
	InetIPv6z   InetAddressType = 4
	InetDNS     InetAddressType = 16
)

var inetAddressTypeLabels = map[InetAddressType]string{
	InetUnknown: "unknown",
	InetIPv4:    "ipv4",
	InetIPv6:    "ipv6",
	InetIPv4z:   "ipv4z",
	InetIPv6z:   "ipv6z",
	InetDNS:     "dns",
}

func (v InetAddressType) String() string {
	return enumString(inetAddressTypeLabels, "InetAddressType", v)
}

// Valid reports whether v is a value of InetAddressType.
func (v InetAddressType) Valid() bool { _, ok := inetAddressTypeLabels[v]; return ok }

// InetAddressTypeLabels returns the labels of InetAddressType and their
// values.
func InetAddressTypeLabels() map[string]InetAddressType { return invert(inetAddressTypeLabels) }
