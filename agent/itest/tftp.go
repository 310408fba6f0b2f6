package itest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TFTPServer is a running tftpd-hpa in.tftpd serving Dir on Host:Port.
type TFTPServer struct {
	Dir string
	// Host is the loopback address the server listens on: "127.0.0.1"
	// (StartTFTP) or "::1".
	Host string
	Port int
	PID  int
	// LogPath holds the server's stdout and stderr. in.tftpd logs
	// transfers to syslog only, so this mostly shows start-up errors.
	LogPath string

	proc *process
}

// Addr is "Host:Port", with IPv6 hosts in brackets: "127.0.0.1:69",
// "[::1]:69".
func (s *TFTPServer) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// AddrPort is Addr as a netip.AddrPort.
func (s *TFTPServer) AddrPort() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(s.Host), uint16(s.Port))
}

// StartTFTP starts in.tftpd serving dir (chrooted into it when root) on a
// free port of 127.0.0.1; allowCreate lets clients upload new files. It
// runs as the current user and with -p, so files the test writes with any
// mode are served and uploads land with the test's ownership.
func StartTFTP(t testing.TB, dir string, allowCreate bool) *TFTPServer {
	t.Helper()
	return StartTFTPOn(t, "127.0.0.1", dir, allowCreate)
}

// StartTFTPOn is StartTFTP on the loopback address host, "127.0.0.1" or
// "::1". Without an IPv6 loopback on the machine, "::1" skips the test
// (fails it when CI=true).
func StartTFTPOn(t testing.TB, host, dir string, allowCreate bool) *TFTPServer {
	t.Helper()
	bin := RequireTool(t, "in.tftpd")
	a := loopbackAddr(t, host)
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("tftp dir: %v", err)
	}
	logPath := filepath.Join(t.TempDir(), "tftpd.log")
	var lastErr error
	// A free port can be taken between choosing and binding: retry.
	for range 3 {
		port := FreeUDPPortOn(t, a.String())
		// AddrPort.String brackets IPv6 addresses, as -a wants them.
		listen := netip.AddrPortFrom(a, uint16(port)).String()
		argv := []string{bin, "-L", "-s", dir, "-a", listen,
			"-u", currentUser(), "-p", "-v", "-v"}
		if a.Is6() {
			argv = append(argv, "-6")
		}
		if allowCreate {
			argv = append(argv, "-c")
		}
		p, err := launch("in.tftpd", logPath, nil, argv...)
		if err != nil {
			t.Fatalf("%v", err)
		}
		s := &TFTPServer{Dir: dir, Host: a.String(), Port: port, PID: p.pid(), LogPath: logPath, proc: p}
		t.Cleanup(s.Stop)
		lastErr = p.waitStarted(startTimeout, func() error { return tftpProbe(s.Addr()) })
		if lastErr == nil {
			return s
		}
		s.Stop()
	}
	t.Fatalf("in.tftpd did not start on %s: %v\nlog %s:\n%s", a, lastErr, logPath, logTail(logPath, tailLines))
	return nil
}

// Stop kills the server's process group and waits for it. Idempotent.
func (s *TFTPServer) Stop() { s.proc.terminate(stopGrace) }

var errNotTFTPError = errors.New("itest: tftp probe: answer is not an error packet")

// tftpProbe sends a read request for a file that does not exist to addr
// ("127.0.0.1:69" or "[::1]:69"); a live server answers with an ERROR
// packet.
func tftpProbe(addr string) error {
	to, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("itest: tftp probe: %w", err)
	}
	// Not a connected socket: the answer comes from a new port (the
	// server's transfer ID), which a connected socket would drop. Bound to
	// the server's own loopback address and family.
	c, err := net.ListenUDP(udpNet(to.Addr()), net.UDPAddrFromAddrPort(netip.AddrPortFrom(to.Addr(), 0)))
	if err != nil {
		return err
	}
	defer c.Close()
	req := []byte{0, 1}
	req = append(req, "itest-probe-no-such-file\x00octet\x00"...)
	if _, err := c.WriteToUDPAddrPort(req, to); err != nil {
		return err
	}
	if err := c.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		return err
	}
	buf := make([]byte, 516)
	n, _, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return err
	}
	if n < 4 || binary.BigEndian.Uint16(buf) != 5 {
		return fmt.Errorf("%w: % x", errNotTFTPError, buf[:n])
	}
	return nil
}
