// Package itest is the integration-test harness of iad-agent: it starts
// real external components on loopback (tftpd-hpa's in.tftpd, vsftpd,
// net-snmp's snmptrapd and snmpd), builds and runs the real iad-agent
// binary, and drives it with net-snmp's command-line tools by MIB object
// name.
//
// Every helper takes a testing.TB first, registers its own cleanup with
// t.Cleanup, and fails the test with the server's log tail when something
// does not start. Servers get free ports chosen at run time, are polled
// until they really answer (never slept on), and are stopped by PID (their
// whole process group, so forked children go too).
//
// A missing external tool skips the test, except when CI=true, where it
// fails it: install the tools with `make test-deps`
// (scripts/test-deps.sh).
//
// It is test support only: it must never touch an address outside
// 127.0.0.0/8 or ::1, and it must never be imported by non-test code.
package itest
