package itest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TFTPServer is a running tftpd-hpa in.tftpd serving Dir on
// 127.0.0.1:Port.
type TFTPServer struct {
	Dir  string
	Port int
	PID  int
	// LogPath holds the server's stdout and stderr. in.tftpd logs
	// transfers to syslog only, so this mostly shows start-up errors.
	LogPath string

	proc *process
}

// Addr is "127.0.0.1:Port".
func (s *TFTPServer) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// StartTFTP starts in.tftpd serving dir (chrooted into it when root) on a
// free loopback port; allowCreate lets clients upload new files. It runs
// as the current user and with -p, so files the test writes with any mode
// are served and uploads land with the test's ownership.
func StartTFTP(t testing.TB, dir string, allowCreate bool) *TFTPServer {
	t.Helper()
	bin := RequireTool(t, "in.tftpd")
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("tftp dir: %v", err)
	}
	logPath := filepath.Join(t.TempDir(), "tftpd.log")
	var lastErr error
	// A free port can be taken between choosing and binding: retry.
	for range 3 {
		port := FreeUDPPort(t)
		argv := []string{bin, "-L", "-s", dir, "-a", "127.0.0.1:" + strconv.Itoa(port),
			"-u", currentUser(), "-p", "-v", "-v"}
		if allowCreate {
			argv = append(argv, "-c")
		}
		p, err := launch("in.tftpd", logPath, nil, argv...)
		if err != nil {
			t.Fatalf("%v", err)
		}
		s := &TFTPServer{Dir: dir, Port: port, PID: p.pid(), LogPath: logPath, proc: p}
		t.Cleanup(s.Stop)
		lastErr = p.waitStarted(startTimeout, func() error { return tftpProbe(s.Addr()) })
		if lastErr == nil {
			return s
		}
		s.Stop()
	}
	t.Fatalf("in.tftpd did not start: %v\nlog %s:\n%s", lastErr, logPath, logTail(logPath, tailLines))
	return nil
}

// Stop kills the server's process group and waits for it. Idempotent.
func (s *TFTPServer) Stop() { s.proc.terminate(stopGrace) }

var errNotTFTPError = errors.New("itest: tftp probe: answer is not an error packet")

// tftpProbe sends a read request for a file that does not exist; a live
// server answers with an ERROR packet.
func tftpProbe(addr string) error {
	to, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return err
	}
	// Not a connected socket: the answer comes from a new port (the
	// server's transfer ID), which a connected socket would drop.
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer c.Close()
	req := []byte{0, 1}
	req = append(req, "itest-probe-no-such-file\x00octet\x00"...)
	if _, err := c.WriteTo(req, to); err != nil {
		return err
	}
	if err := c.SetReadDeadline(time.Now().Add(300 * time.Millisecond)); err != nil {
		return err
	}
	buf := make([]byte, 516)
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		return err
	}
	if n < 4 || binary.BigEndian.Uint16(buf) != 5 {
		return fmt.Errorf("%w: % x", errNotTFTPError, buf[:n])
	}
	return nil
}
