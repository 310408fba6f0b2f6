package itest

import (
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
	"sync"
	"testing"
	"time"

	"github.com/jlaffaye/ftp"
)

// The local account vsftpd authenticates through PAM. It exists only for
// tests; StartFTP creates it when running as root.
const (
	FTPUser     = "iadftp"
	FTPPassword = "iadftp-test-pw"
)

// FTPServer is a running vsftpd serving Dir as the login directory of
// User on Host:Port.
type FTPServer struct {
	Dir string
	// Host is the loopback address the server listens on: "127.0.0.1"
	// (StartFTP) or "::1".
	Host           string
	Port           int
	PID            int
	User, Password string
	// LogPath is vsftpd's protocol log and its stdout/stderr.
	LogPath string
	// Config is vsftpd's configuration file, for a failure report.
	Config string

	uid, gid int
	proc     *process
}

// Addr is "Host:Port", with IPv6 hosts in brackets: "127.0.0.1:21",
// "[::1]:21".
func (s *FTPServer) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// AddrPort is Addr as a netip.AddrPort.
func (s *FTPServer) AddrPort() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(s.Host), uint16(s.Port))
}

// URL returns ftp://user:password@Addr/name.
func (s *FTPServer) URL(name string) string {
	return fmt.Sprintf("ftp://%s:%s@%s/%s", s.User, s.Password, s.Addr(), strings.TrimPrefix(name, "/"))
}

// StartFTP starts vsftpd in the foreground with its own configuration,
// serving dir (handed over to the iadftp account so uploads work) on a
// free port of 127.0.0.1 with passive ports there too. It needs root:
// vsftpd authenticates real accounts through PAM. Files already in dir are
// handed over too; add files later with WriteFile.
func StartFTP(t testing.TB, dir string) *FTPServer {
	t.Helper()
	return StartFTPOn(t, "127.0.0.1", dir)
}

// StartFTPOn is StartFTP on the loopback address host, "127.0.0.1" or
// "::1". On "::1" clients get the passive data port through EPSV. Without
// an IPv6 loopback on the machine, "::1" skips the test (fails it when
// CI=true).
func StartFTPOn(t testing.TB, host, dir string) *FTPServer {
	t.Helper()
	bin := RequireTool(t, "vsftpd")
	a := loopbackAddr(t, host)
	if !isRoot() {
		skipOrFatal(t, "vsftpd needs root to authenticate the %s account", FTPUser)
	}
	uid, gid := ensureFTPUser(t)
	dir, err := filepath.Abs(dir)
	if err != nil {
		t.Fatalf("ftp dir: %v", err)
	}
	chownTree(t, dir, uid, gid)
	openAncestors(t, dir)

	work := t.TempDir()
	// vsftpd chroots its unprivileged helper here; it must be empty and
	// not writable by the ftp user.
	empty := filepath.Join(work, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(work, "vsftpd.log")
	var lastErr error
	for range 3 {
		port := FreeTCPPortOn(t, a.String())
		pasvMin, pasvMax := freeTCPRange(t, a, 8)
		conf := filepath.Join(work, "vsftpd-"+strconv.Itoa(port)+".conf")
		if err := os.WriteFile(conf, []byte(vsftpdConfig(a, port, pasvMin, pasvMax, dir, empty, logPath)), 0o600); err != nil {
			t.Fatal(err)
		}
		p, err := launch("vsftpd", logPath, nil, bin, conf)
		if err != nil {
			t.Fatalf("%v", err)
		}
		s := &FTPServer{Dir: dir, Host: a.String(), Port: port, PID: p.pid(), User: FTPUser, Password: FTPPassword,
			LogPath: logPath, Config: conf, uid: uid, gid: gid, proc: p}
		t.Cleanup(s.Stop)
		lastErr = p.waitStarted(startTimeout, s.probe)
		if lastErr == nil {
			return s
		}
		s.Stop()
		if errors.Is(lastErr, errFTPLogin) {
			break // a new port will not fix a refused login
		}
	}
	t.Fatalf("vsftpd did not start on %s: %v\nlog %s:\n%s", a, lastErr, logPath, logTail(logPath, tailLines))
	return nil
}

// WriteFile puts a file into the served directory owned by the FTP
// account, so the server can read and overwrite it. Files a test writes
// itself after StartFTP belong to the test's user and may not be.
func (s *FTPServer) WriteFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(s.Dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatalf("ftp write %s: %v", name, err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatalf("ftp write %s: %v", name, err)
	}
	chownTree(t, filepath.Dir(p), s.uid, s.gid)
	return p
}

// Stop kills vsftpd and its session processes and waits. Idempotent.
func (s *FTPServer) Stop() { s.proc.terminate(stopGrace) }

var errFTPLogin = errors.New("itest: ftp login refused")

// probe reads the banner and logs in, so authentication problems surface
// at start and not in the middle of a test.
func (s *FTPServer) probe() error {
	c, err := ftp.Dial(s.Addr(), ftp.DialWithTimeout(time.Second))
	if err != nil {
		return err
	}
	defer c.Quit()
	if err := c.Login(s.User, s.Password); err != nil {
		// Retrying will not fix a refused login.
		return fmt.Errorf("%w: %w: %w", errGiveUp, errFTPLogin, err)
	}
	return nil
}

// vsftpdConfig is the whole configuration: nothing comes from
// /etc/vsftpd.conf. vsftpd listens on one family only: listen=YES is IPv4,
// listen_ipv6=YES is IPv6, and both at once refuse to start.
func vsftpdConfig(host netip.Addr, port, pasvMin, pasvMax int, root, emptyDir, logPath string) string {
	listen := []string{
		"listen=YES",
		"listen_ipv6=NO",
		"listen_address=" + host.String(),
		// Only PASV replies carry an address, and only an IPv4 one.
		"pasv_address=" + host.String(),
	}
	if host.Is6() {
		listen = []string{
			"listen=NO",
			"listen_ipv6=YES",
			"listen_address6=" + host.String(),
		}
	}
	return strings.Join(append(listen,
		"listen_port="+strconv.Itoa(port),
		"background=NO",
		"anonymous_enable=NO",
		"local_enable=YES",
		"write_enable=YES",
		"local_umask=022",
		"local_root="+root,
		"chroot_local_user=NO",
		"userlist_enable=NO",
		"pam_service_name=vsftpd",
		"connect_from_port_20=NO",
		"port_enable=YES",
		"pasv_enable=YES",
		"pasv_min_port="+strconv.Itoa(pasvMin),
		"pasv_max_port="+strconv.Itoa(pasvMax),
		"seccomp_sandbox=NO",
		"isolate=NO",
		"isolate_network=NO",
		"secure_chroot_dir="+emptyDir,
		"ssl_enable=NO",
		"syslog_enable=NO",
		"xferlog_enable=YES",
		"xferlog_std_format=NO",
		"log_ftp_protocol=YES",
		"vsftpd_log_file="+logPath,
		"",
	), "\n")
}

// freeTCPRange finds n consecutive free TCP ports on host for vsftpd's
// passive range.
func freeTCPRange(t testing.TB, host netip.Addr, n int) (int, int) {
	t.Helper()
	for range 50 {
		base := FreeTCPPortOn(t, host.String())
		if base+n-1 > 65535 {
			continue
		}
		ok := true
		for p := base + 1; p < base+n && ok; p++ {
			l, err := net.ListenTCP(tcpNet(host), net.TCPAddrFromAddrPort(netip.AddrPortFrom(host, uint16(p))))
			if err != nil {
				ok = false
				break
			}
			l.Close()
		}
		if ok {
			return base, base + n - 1
		}
	}
	t.Fatalf("no %d consecutive free tcp ports on %s", n, host)
	return 0, 0
}

var ftpUserMu sync.Mutex

// ftpHome is the test account's home; scripts/test-deps.sh uses the same.
const ftpHome = "/var/lib/iadftp"

// ensureFTPUser creates the test account when missing: a shell listed in
// /etc/shells (pam_shells), not in /etc/ftpusers (pam_listfile), and an
// existing home directory.
func ensureFTPUser(t testing.TB) (uid, gid int) {
	t.Helper()
	ftpUserMu.Lock()
	defer ftpUserMu.Unlock()
	if _, err := user.Lookup(FTPUser); err != nil {
		useradd := RequireTool(t, "useradd")
		chpasswd := RequireTool(t, "chpasswd")
		out, err := exec.Command(useradd, "-m", "-d", ftpHome, "-s", "/bin/sh",
			"-c", "iad-agent integration tests", FTPUser).CombinedOutput()
		// Another test binary may have created it meanwhile.
		if _, lerr := user.Lookup(FTPUser); err != nil && lerr != nil {
			t.Fatalf("useradd %s: %v: %s", FTPUser, err, out)
		}
		cmd := exec.Command(chpasswd)
		cmd.Stdin = strings.NewReader(FTPUser + ":" + FTPPassword + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("chpasswd %s: %v: %s", FTPUser, err, out)
		}
	}
	u, err := user.Lookup(FTPUser)
	if err != nil {
		t.Fatalf("user %s: %v", FTPUser, err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	// vsftpd changes into the home directory before local_root and
	// refuses the login when it is missing.
	if _, err := os.Stat(u.HomeDir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(u.HomeDir, 0o755); err != nil {
			t.Fatalf("home of %s: %v", FTPUser, err)
		}
		if err := os.Chown(u.HomeDir, uid, gid); err != nil {
			t.Fatalf("home of %s: %v", FTPUser, err)
		}
	}
	return uid, gid
}

// chownTree hands dir and everything below it to the FTP account.
func chownTree(t testing.TB, dir string, uid, gid int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatalf("ftp dir: %v", err)
	}
}

// openAncestors lets the ftp user traverse to dir: t.TempDir's parents are
// 0700. Only directories under the system temp directory are changed.
func openAncestors(t testing.TB, dir string) {
	t.Helper()
	tmp, err := filepath.Abs(os.TempDir())
	if err != nil {
		return
	}
	for d := filepath.Dir(dir); strings.HasPrefix(d, tmp+string(filepath.Separator)); d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatalf("ftp dir: %v", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(d, fi.Mode().Perm()|0o011); err != nil {
				t.Fatalf("ftp dir: %v", err)
			}
		}
	}
}
