package mib

// Object identifiers of IAD-UPGRADE-MIB. Scalars are given without the
// trailing .0 and columns without an index: the engine appends those.
var (
	// IadUpgradeMIB is the module root, enterprise 32473 (RFC 5612,
	// reserved for documentation).
	IadUpgradeMIB = MustParseOID("1.3.6.1.4.1.32473")

	IadUpgradeNotifications = IadUpgradeMIB.Append(0)
	IadUpgradeObjects       = IadUpgradeMIB.Append(1)
	IadUpgradeConformance   = IadUpgradeMIB.Append(2)

	IadSw               = IadUpgradeObjects.Append(1)
	IadSwCurrentVersion = IadSw.Append(1)
	IadSwActiveBank     = IadSw.Append(2)
	IadSwBootLimit      = IadSw.Append(3)
	IadSwNextBank       = IadSw.Append(4)
	IadSwTrialTriesLeft = IadSw.Append(5)
	IadSwHardware       = IadSw.Append(6)

	IadBankTable   = IadUpgradeObjects.Append(2)
	IadBankEntry   = IadBankTable.Append(1)
	IadBankIndex   = IadBankEntry.Append(1)
	IadBankVersion = IadBankEntry.Append(2)
	IadBankState   = IadBankEntry.Append(3)
	IadBankDigest  = IadBankEntry.Append(4)
	IadBankSize    = IadBankEntry.Append(5)

	IadOp                  = IadUpgradeObjects.Append(3)
	IadOpTable             = IadOp.Append(1)
	IadOpEntry             = IadOpTable.Append(1)
	IadOpIndex             = IadOpEntry.Append(1)
	IadOpType              = IadOpEntry.Append(2)
	IadOpProtocol          = IadOpEntry.Append(3)
	IadOpServerAddressType = IadOpEntry.Append(4)
	IadOpServerAddress     = IadOpEntry.Append(5)
	IadOpServerPort        = IadOpEntry.Append(6)
	IadOpFileName          = IadOpEntry.Append(7)
	IadOpUserName          = IadOpEntry.Append(8)
	IadOpPassword          = IadOpEntry.Append(9)
	IadOpTimeout           = IadOpEntry.Append(10)
	IadOpState             = IadOpEntry.Append(11)
	IadOpProgress          = IadOpEntry.Append(12)
	IadOpBytes             = IadOpEntry.Append(13)
	IadOpFailCause         = IadOpEntry.Append(14)
	IadOpFailText          = IadOpEntry.Append(15)
	IadOpTimeStarted       = IadOpEntry.Append(16)
	IadOpTimeCompleted     = IadOpEntry.Append(17)
	IadOpRowStatus         = IadOpEntry.Append(18)
	IadOpForce             = IadOpEntry.Append(19)

	IadConfig                 = IadUpgradeObjects.Append(4)
	IadConfigFormat           = IadConfig.Append(1)
	IadConfigLiveFormat       = IadConfig.Append(2)
	IadConfigLastBackupTime   = IadConfig.Append(3)
	IadConfigLastBackupDigest = IadConfig.Append(4)
	IadConfigLastBackupSize   = IadConfig.Append(5)
	IadConfigBackupEncrypted  = IadConfig.Append(6)

	IadOpProgressNotify    = IadUpgradeNotifications.Append(1)
	IadOpCompletedNotify   = IadUpgradeNotifications.Append(2)
	IadBootRevertedNotify  = IadUpgradeNotifications.Append(3)
	IadBootCommittedNotify = IadUpgradeNotifications.Append(4)

	IadUpgradeCompliances = IadUpgradeConformance.Append(1)
	IadUpgradeGroups      = IadUpgradeConformance.Append(2)
	IadUpgradeCompliance  = IadUpgradeCompliances.Append(1)
	IadSwGroup            = IadUpgradeGroups.Append(1)
	IadBankGroup          = IadUpgradeGroups.Append(2)
	IadOpGroup            = IadUpgradeGroups.Append(3)
	IadNotificationGroup  = IadUpgradeGroups.Append(4)
	IadConfigGroup        = IadUpgradeGroups.Append(5)
)

// Names maps every node of IAD-UPGRADE-MIB, by its MIB name, to its OID.
// The drift test checks it against the MIB file in both directions, so a
// node added to one must be added to the other. Treat it as read-only.
var Names = map[string]OID{
	"iadUpgradeMIB":           IadUpgradeMIB,
	"iadUpgradeNotifications": IadUpgradeNotifications,
	"iadUpgradeObjects":       IadUpgradeObjects,
	"iadUpgradeConformance":   IadUpgradeConformance,

	"iadSw":               IadSw,
	"iadSwCurrentVersion": IadSwCurrentVersion,
	"iadSwActiveBank":     IadSwActiveBank,
	"iadSwBootLimit":      IadSwBootLimit,
	"iadSwNextBank":       IadSwNextBank,
	"iadSwTrialTriesLeft": IadSwTrialTriesLeft,
	"iadSwHardware":       IadSwHardware,

	"iadBankTable":   IadBankTable,
	"iadBankEntry":   IadBankEntry,
	"iadBankIndex":   IadBankIndex,
	"iadBankVersion": IadBankVersion,
	"iadBankState":   IadBankState,
	"iadBankDigest":  IadBankDigest,
	"iadBankSize":    IadBankSize,

	"iadOp":                  IadOp,
	"iadOpTable":             IadOpTable,
	"iadOpEntry":             IadOpEntry,
	"iadOpIndex":             IadOpIndex,
	"iadOpType":              IadOpType,
	"iadOpProtocol":          IadOpProtocol,
	"iadOpServerAddressType": IadOpServerAddressType,
	"iadOpServerAddress":     IadOpServerAddress,
	"iadOpServerPort":        IadOpServerPort,
	"iadOpFileName":          IadOpFileName,
	"iadOpUserName":          IadOpUserName,
	"iadOpPassword":          IadOpPassword,
	"iadOpTimeout":           IadOpTimeout,
	"iadOpState":             IadOpState,
	"iadOpProgress":          IadOpProgress,
	"iadOpBytes":             IadOpBytes,
	"iadOpFailCause":         IadOpFailCause,
	"iadOpFailText":          IadOpFailText,
	"iadOpTimeStarted":       IadOpTimeStarted,
	"iadOpTimeCompleted":     IadOpTimeCompleted,
	"iadOpRowStatus":         IadOpRowStatus,
	"iadOpForce":             IadOpForce,

	"iadConfig":                 IadConfig,
	"iadConfigFormat":           IadConfigFormat,
	"iadConfigLiveFormat":       IadConfigLiveFormat,
	"iadConfigLastBackupTime":   IadConfigLastBackupTime,
	"iadConfigLastBackupDigest": IadConfigLastBackupDigest,
	"iadConfigLastBackupSize":   IadConfigLastBackupSize,
	"iadConfigBackupEncrypted":  IadConfigBackupEncrypted,

	"iadOpProgressNotify":    IadOpProgressNotify,
	"iadOpCompletedNotify":   IadOpCompletedNotify,
	"iadBootRevertedNotify":  IadBootRevertedNotify,
	"iadBootCommittedNotify": IadBootCommittedNotify,

	"iadUpgradeCompliances": IadUpgradeCompliances,
	"iadUpgradeGroups":      IadUpgradeGroups,
	"iadUpgradeCompliance":  IadUpgradeCompliance,
	"iadSwGroup":            IadSwGroup,
	"iadBankGroup":          IadBankGroup,
	"iadOpGroup":            IadOpGroup,
	"iadNotificationGroup":  IadNotificationGroup,
	"iadConfigGroup":        IadConfigGroup,
}
