package transfer

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Real servers for the integration tests: tftpd-hpa's in.tftpd and vsftpd,
// each on a free loopback port, stopped by PID when the test ends.

const (
	inTFTPD = "/usr/sbin/in.tftpd"
	vsftpd  = "/usr/sbin/vsftpd"

	ftpTestUser     = "iadftp"
	ftpTestPassword = "iadftp-test-pw"
)

// needTool skips when a server binary is missing, except in CI.
func needTool(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI: %v", path, err)
		}
		t.Skipf("%s not installed: %v", path, err)
	}
}

// freePort returns a port that was free a moment ago on host.
func freePort(t *testing.T, network, host string) int {
	t.Helper()
	switch network {
	case "udp":
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(host)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	default:
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
}

// startProcess starts cmd in its own process group and kills that group
// (the server and the session children it forked) when the test ends.
func startProcess(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd, err)
	}
	pid := cmd.Process.Pid
	t.Logf("started %s (pid %d)", cmd, pid)
	t.Cleanup(func() {
		// Let finished sessions be reaped by the server first: children
		// orphaned by the kill would be left as zombies when PID 1 does
		// not reap (as in containers).
		for i := 0; i < 40 && hasChildren(pid); i++ {
			time.Sleep(50 * time.Millisecond)
		}
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
}

// hasChildren reports whether any process has pid as its parent.
func hasChildren(pid int) bool {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		// The command name in parentheses may contain spaces.
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			return true
		}
	}
	return false
}

// waitUntil retries probe for a bounded time, so a slow start is waited for
// and a server that never comes up fails the test instead of hanging it.
func waitUntil(t *testing.T, what string, probe func() error) {
	t.Helper()
	var err error
	for range 100 {
		if err = probe(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not come up: %v", what, err)
}

// startTFTPD runs in.tftpd serving dir on 127.0.0.1. With create, it accepts
// uploads of new files (-c). in.tftpd chroots into dir as root and then
// drops to "nobody", so dir must be world-writable for uploads, and served
// files world-readable.
func startTFTPD(t *testing.T, dir string, create bool) netip.AddrPort {
	t.Helper()
	needTool(t, inTFTPD)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t, "udp", "127.0.0.1")))
	args := []string{"-L", "-s", dir, "-a", addr.String()}
	if create {
		args = append(args, "-c")
	}
	cmd := exec.Command(inTFTPD, args...)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	startProcess(t, cmd)
	waitUntil(t, "in.tftpd on "+addr.String(), func() error { return probeTFTP(addr) })
	return addr
}

// probeTFTP asks for a file that does not exist and wants an ERROR packet.
// in.tftpd answers from a new port, so the socket is not connected.
func probeTFTP(addr netip.AddrPort) error {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	defer c.Close()
	rrq := append([]byte{0, 1}, "no-such-probe-file\x00octet\x00"...)
	if _, err := c.WriteToUDPAddrPort(rrq, addr); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	buf := make([]byte, 600)
	n, _, err := c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return err
	}
	if n < 4 || binary.BigEndian.Uint16(buf) != 5 {
		return fmt.Errorf("probe got opcode %d, want an ERROR packet", binary.BigEndian.Uint16(buf))
	}
	return nil
}

// ftpServer is a running vsftpd.
type ftpServer struct {
	addr netip.AddrPort
	dir  string // served directory, owned by ftpTestUser
	uid  int
	gid  int
}

// ensureFTPUser creates the system account vsftpd logs in with, if needed.
// vsftpd authenticates through PAM (/etc/pam.d/vsftpd): the shell must be
// listed in /etc/shells and the user must not be in /etc/ftpusers.
func ensureFTPUser(t *testing.T) *user.User {
	t.Helper()
	if os.Geteuid() != 0 {
		if u, err := user.Lookup(ftpTestUser); err == nil {
			return u // assume someone set the password for us
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("vsftpd tests need root to create user %s", ftpTestUser)
		}
		t.Skipf("vsftpd tests need root to create user %s", ftpTestUser)
	}
	if _, err := user.Lookup(ftpTestUser); err != nil {
		out, err := exec.Command("useradd", "-M", "-s", "/bin/bash", "-d", "/nonexistent", ftpTestUser).CombinedOutput()
		// Another test binary may have created it at the same time.
		if _, lerr := user.Lookup(ftpTestUser); lerr != nil {
			t.Fatalf("useradd %s: %v: %s", ftpTestUser, err, out)
		}
	}
	cmd := exec.Command("chpasswd")
	cmd.Stdin = strings.NewReader(ftpTestUser + ":" + ftpTestPassword + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd: %v: %s", err, out)
	}
	u, err := user.Lookup(ftpTestUser)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// vsftpdConfig is a configuration for vsftpd 3.0.3 running as root in the
// foreground on loopback, logging local users in to dir.
func vsftpdConfig(addr netip.AddrPort, dir, logFile string) string {
	listen := []string{"listen=YES", "listen_ipv6=NO", "listen_address=" + addr.Addr().String()}
	if addr.Addr().Is6() {
		listen = []string{"listen=NO", "listen_ipv6=YES", "listen_address6=" + addr.Addr().String()}
	}
	return strings.Join(append(listen,
		fmt.Sprintf("listen_port=%d", addr.Port()),
		"background=NO",
		"anonymous_enable=NO",
		"local_enable=YES",
		"write_enable=YES",
		"local_umask=022",
		"local_root="+dir,
		"chroot_local_user=NO",
		"pasv_enable=YES",
		// 0: any free port, so parallel servers never collide.
		"pasv_min_port=0",
		"pasv_max_port=0",
		"port_enable=NO",
		"connect_from_port_20=NO",
		"seccomp_sandbox=NO",
		"isolate=NO",
		"isolate_network=NO",
		"xferlog_enable=NO",
		"vsftpd_log_file="+logFile,
		"pam_service_name=vsftpd",
		"userlist_enable=NO",
		"secure_chroot_dir=/var/run/vsftpd/empty",
		"delay_failed_login=0",
		"",
	), "\n")
}

// startVsftpd runs vsftpd on host (127.0.0.1 or ::1) serving a fresh
// directory to ftpTestUser.
func startVsftpd(t *testing.T, host string) *ftpServer {
	t.Helper()
	needTool(t, vsftpd)
	u := ensureFTPUser(t)
	var uid, gid int
	fmt.Sscan(u.Uid, &uid)
	fmt.Sscan(u.Gid, &gid)
	// Not t.TempDir: its parent is private to root, and vsftpd changes
	// into local_root as the logged-in user.
	dir, err := os.MkdirTemp("", "transfer-ftp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll("/var/run/vsftpd/empty", 0o755); err != nil {
		t.Fatal(err)
	}
	cfgDir := t.TempDir()
	addr := netip.AddrPortFrom(netip.MustParseAddr(host), uint16(freePort(t, "tcp", host)))
	cfg := filepath.Join(cfgDir, "vsftpd.conf")
	logFile := filepath.Join(cfgDir, "vsftpd.log")
	if err := os.WriteFile(cfg, []byte(vsftpdConfig(addr, dir, logFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(vsftpd, cfg)
	cmd.Stdout = os.Stderr
	cmd.Stderr = os.Stderr
	startProcess(t, cmd)
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(logFile); err == nil {
				t.Logf("vsftpd log:\n%s", b)
			}
		}
	})
	waitUntil(t, "vsftpd on "+addr.String(), func() error { return probeFTP(addr) })
	return &ftpServer{addr: addr, dir: dir, uid: uid, gid: gid}
}

// probeFTP wants the 220 banner.
func probeFTP(addr netip.AddrPort) error {
	c, err := net.DialTimeout("tcp", addr.String(), time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "220") {
		return errors.New("banner " + strings.TrimSpace(line))
	}
	return nil
}

// put places a file in the served directory, owned by the FTP user.
func (s *ftpServer) put(t *testing.T, name string, data []byte) {
	t.Helper()
	p := filepath.Join(s.dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, s.uid, s.gid); err != nil {
		t.Fatal(err)
	}
}
