// Command fakeagent stands in for iad-agent in the harness's own tests: it
// takes the agent's -data/-listen/-ro-community flags and replaces itself
// (execve, as the real agent does on reset) with net-snmp's snmpd serving
// sysUpTime on the listen address.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

func main() {
	data := flag.String("data", "", "data directory")
	listen := flag.String("listen", "", "listen address")
	ro := flag.String("ro-community", "public", "read community")
	flag.Parse()
	if err := run(*data, *listen, *ro); err != nil {
		fmt.Fprintln(os.Stderr, "fakeagent:", err)
		os.Exit(1)
	}
}

func run(data, listen, ro string) error {
	conf := filepath.Join(data, "snmpd.conf")
	if err := os.WriteFile(conf, []byte("rocommunity "+ro+" 127.0.0.1\ndontLogTCPWrappersConnects yes\n"), 0o600); err != nil {
		return err
	}
	fmt.Println("fakeagent: starting snmpd on", listen)
	env := append(os.Environ(), "SNMP_PERSISTENT_DIR="+data, "SNMPCONFPATH="+data)
	return syscall.Exec("/usr/sbin/snmpd",
		[]string{"snmpd", "-f", "-Lo", "-C", "-c", conf, "-m", "", "udp:" + listen}, env)
}
