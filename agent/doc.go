// Package agent is the iad-agent daemon: it serves IAD-UPGRADE-MIB over SNMP,
// runs one operation at a time (backup, upgrade, restore, reset, revert),
// journals every operation before it starts and at every state change, and
// reports progress and outcome as readable MIB objects and as notifications.
//
// It must never write the bank the running software booted from, never
// change the live configuration except by an atomic swap of a verified and
// validated configuration (a restored archive, or the live one converted
// for new software) that a failing reload hook puts back, never send a
// device key or a SIP password anywhere, and never let an operation end
// without its outcome being
// readable and notified — even across a crash, where the interrupted
// operation reads failed/interrupted after the restart.
//
// One file per concern: agent.go wires the parts and runs them; ops.go is
// the operation engine; optable.go, swmib.go serve the MIB; backup.go,
// upgrade.go, restore.go, reset.go, revert.go are the operations; health.go
// commits a trial boot; failcause.go maps errors to iadOpFailCause;
// configuration.go brings the configuration to the running format at
// start-up, encrypts backups and serves iadConfig;
// snmpv3.go loads the SNMP access file and counts engine boots; subagent.go
// runs the AgentX session in sub-agent mode.
package agent
