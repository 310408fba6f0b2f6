// Package e2e holds iadms's end-to-end tests: the real iadms binary
// driving real iad-agent processes (built and started by agent/itest,
// resetting by re-executing themselves), with real net-snmp, tftpd-hpa
// and a pseudo-terminal for the operator's answers.
//
// It has no code outside its tests and must never be imported.
package e2e
