// Package mib holds the numeric object identifiers and enumerations of
// IAD-UPGRADE-MIB (the file IAD-UPGRADE-MIB.txt beside this package, the
// source of truth) and the few standard SNMPv2-MIB objects the agent
// serves or sends.
//
// The Go names mirror the MIB names so that a reader of the MIB finds the
// constant, and a test parses the MIB and runs net-snmp's snmptranslate
// and smilint so that the two cannot drift apart. Enumerations carry the
// MIB's explicit numbers because they appear on the wire and in
// persistent state: never renumber them and never derive them from iota.
//
// The package is pure data and OID arithmetic: it must never do I/O, hold
// agent state, or depend on an SNMP library.
package mib
