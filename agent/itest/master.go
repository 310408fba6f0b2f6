package itest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// StartSNMPDMaster runs snmpd as an AgentX master: SNMP on a free
// loopback UDP port with communities public (read) and private (write),
// the AgentX socket in a fresh temporary directory, and extraConf lines
// (e.g. "trap2sink 127.0.0.1:PORT public"). It waits until snmpd answers.
func StartSNMPDMaster(t testing.TB, extraConf string) *SNMPD {
	t.Helper()
	// A Unix socket path must stay short (108 octets), so not t.TempDir().
	work, err := os.MkdirTemp("", "iad-master-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	sock := filepath.Join(work, "agentx.sock")
	conf := strings.Join([]string{
		"master agentx",
		"agentXSocket " + sock,
		"agentXPerms 0600 0700",
		"rocommunity public 127.0.0.1",
		"rwcommunity private 127.0.0.1",
		extraConf,
	}, "\n") + "\n"
	d := startSNMPD(t, work, conf)
	d.AgentX = "unix:" + sock
	return d
}

// Kill9 SIGKILLs snmpd, like a crash: it gets no chance to close its
// sessions.
func (d *SNMPD) Kill9(t testing.TB) {
	t.Helper()
	d.current().kill9()
}

// Restart starts snmpd again with the same configuration, port and
// AgentX socket (after Kill9 or Stop) and waits until it answers.
func (d *SNMPD) Restart(t testing.TB) {
	t.Helper()
	if gone, _ := d.current().exited(); !gone {
		d.Stop()
	}
	// snmpd leaves its socket file behind after a crash; it replaces it.
	if err := d.launch(t); err != nil {
		t.Fatalf("snmpd did not restart: %v\nlog %s:\n%s", err, d.LogPath, logTail(d.LogPath, tailLines))
	}
}

// String names the master for failure messages.
func (d *SNMPD) String() string {
	return fmt.Sprintf("snmpd (pid %d, %s, agentx %s)", d.PID, d.Target(), d.AgentX)
}
