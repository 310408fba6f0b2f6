// Package bench holds the project's benchmarks: the agent's full upgrade
// against curl's bare download, its memory at several image sizes, the
// slot write against dd, and the install path's allocations. They start
// real servers (in.tftpd, vsftpd) and real agent processes on loopback
// through the agent/itest harness.
//
// Each benchmark reports its figures with b.ReportMetric and, when
// IAD_BENCH_OUT names a file, appends them there as JSON lines; `make
// bench` turns those into the table in docs/BENCHMARKS.md. Nothing here
// asserts a time: figures are measured, never judged by a test.
package bench
