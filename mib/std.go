package mib

// Standard object identifiers from SNMPv2-MIB (RFC 3418), which carries
// the system and snmp groups of RFC 1213 forward. Scalars are given
// without the trailing .0.
var (
	System          = MustParseOID("1.3.6.1.2.1.1")
	SysDescr        = System.Append(1)
	SysObjectID     = System.Append(2)
	SysUpTime       = System.Append(3)
	SysContact      = System.Append(4)
	SysName         = System.Append(5)
	SysLocation     = System.Append(6)
	SysServices     = System.Append(7)
	SysORLastChange = System.Append(8)

	Snmp                    = MustParseOID("1.3.6.1.2.1.11")
	SnmpInPkts              = Snmp.Append(1)
	SnmpInBadVersions       = Snmp.Append(3)
	SnmpInBadCommunityNames = Snmp.Append(4)
	SnmpInBadCommunityUses  = Snmp.Append(5)
	SnmpInASNParseErrs      = Snmp.Append(6)
	SnmpEnableAuthenTraps   = Snmp.Append(30)
	SnmpSilentDrops         = Snmp.Append(31)
	SnmpProxyDrops          = Snmp.Append(32)

	// SnmpTrapOID and SnmpTrapEnterprise are the second and, for traps
	// converted from SNMPv1, last varbinds of every notification.
	SnmpTrapOID        = MustParseOID("1.3.6.1.6.3.1.1.4.1")
	SnmpTrapEnterprise = MustParseOID("1.3.6.1.6.3.1.1.4.3")

	ColdStart             = MustParseOID("1.3.6.1.6.3.1.1.5.1")
	WarmStart             = MustParseOID("1.3.6.1.6.3.1.1.5.2")
	AuthenticationFailure = MustParseOID("1.3.6.1.6.3.1.1.5.5")
)

// StdNames maps the standard objects above, by module-qualified MIB name,
// to their OIDs; a test checks each against snmptranslate. Treat it as
// read-only.
var StdNames = map[string]OID{
	"SNMPv2-MIB::system":          System,
	"SNMPv2-MIB::sysDescr":        SysDescr,
	"SNMPv2-MIB::sysObjectID":     SysObjectID,
	"SNMPv2-MIB::sysUpTime":       SysUpTime,
	"SNMPv2-MIB::sysContact":      SysContact,
	"SNMPv2-MIB::sysName":         SysName,
	"SNMPv2-MIB::sysLocation":     SysLocation,
	"SNMPv2-MIB::sysServices":     SysServices,
	"SNMPv2-MIB::sysORLastChange": SysORLastChange,

	"SNMPv2-MIB::snmp":                    Snmp,
	"SNMPv2-MIB::snmpInPkts":              SnmpInPkts,
	"SNMPv2-MIB::snmpInBadVersions":       SnmpInBadVersions,
	"SNMPv2-MIB::snmpInBadCommunityNames": SnmpInBadCommunityNames,
	"SNMPv2-MIB::snmpInBadCommunityUses":  SnmpInBadCommunityUses,
	"SNMPv2-MIB::snmpInASNParseErrs":      SnmpInASNParseErrs,
	"SNMPv2-MIB::snmpEnableAuthenTraps":   SnmpEnableAuthenTraps,
	"SNMPv2-MIB::snmpSilentDrops":         SnmpSilentDrops,
	"SNMPv2-MIB::snmpProxyDrops":          SnmpProxyDrops,

	"SNMPv2-MIB::snmpTrapOID":        SnmpTrapOID,
	"SNMPv2-MIB::snmpTrapEnterprise": SnmpTrapEnterprise,

	"SNMPv2-MIB::coldStart":             ColdStart,
	"SNMPv2-MIB::warmStart":             WarmStart,
	"SNMPv2-MIB::authenticationFailure": AuthenticationFailure,
}
