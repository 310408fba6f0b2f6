#!/bin/sh
# test-deps.sh installs what the integration tests (agent/itest) drive:
# net-snmp's tools, snmpd and snmptrapd, tftpd-hpa, vsftpd, smitools, curl
# and GNU time, libubootenv-tool (fw_printenv/fw_setenv, for the U-Boot
# environment interop and power-cut tests), qemu-system-arm (with
# qemu-system-aarch64: the ARM guests) and u-boot-qemu, and what the
# device VM image is built with (squashfs-tools, e2fsprogs, dosfstools,
# mtools, u-boot-tools), on Debian/Ubuntu with apt-get; and it fetches
# Debian's armhf and arm64 kernels and busybox-static for the guests with
# scripts/vm/fetch-kernel.sh (apt-get download into a cache directory,
# nothing installed). It is idempotent: it only runs apt-get when a
# package is missing. The tests start their own servers on loopback, so
# the services these packages may start are stopped again, and the local
# account the FTP tests log in with is created.
set -eu

PACKAGES="snmp snmpd snmptrapd tftpd-hpa vsftpd smitools curl time openssl libubootenv-tool qemu-system-arm \
squashfs-tools e2fsprogs dosfstools mtools u-boot-tools u-boot-qemu"
FTP_USER=iadftp
FTP_PASSWORD=iadftp-test-pw
FTP_HOME=/var/lib/iadftp

say() { printf 'test-deps: %s\n' "$*"; }
die() { printf 'test-deps: error: %s\n' "$*" >&2; exit 1; }

if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi

missing=
for p in $PACKAGES; do
	if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		:
	else
		missing="$missing $p"
	fi
done

if [ -n "$missing" ]; then
	command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install by hand:$missing"
	say "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	# shellcheck disable=SC2086
	$SUDO apt-get update || die "apt-get update failed"
	# shellcheck disable=SC2086
	$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing ||
		die "apt-get install failed for:$missing"
else
	say "all packages present: $PACKAGES"
fi

# The tests choose free loopback ports themselves; daemons that postinst
# scripts may have started would only hold the standard ports. Stop exactly
# those, by the PID in their pid file: never by name, because other test
# servers (started from temporary directories) may be running. (Debian's
# tftpd-hpa init script stops by name, so `service tftpd-hpa stop` is not
# used.)
for pidfile in /run/snmpd.pid /run/snmptrapd.pid /var/run/vsftpd/vsftpd.pid /var/run/tftpd-hpa.pid; do
	[ -r "$pidfile" ] || continue
	pid=$(tr -cd '0-9' <"$pidfile")
	if [ -n "$pid" ] && [ -d "/proc/$pid" ]; then
		say "stopping background service pid $pid ($pidfile)"
		$SUDO kill "$pid" 2>/dev/null || true
	fi
	$SUDO rm -f "$pidfile" 2>/dev/null || true
done

# vsftpd authenticates real accounts through PAM: the FTP tests log in as
# this one. Its shell must be listed in /etc/shells (pam_shells) and it must
# not be in /etc/ftpusers (pam_listfile).
if id "$FTP_USER" >/dev/null 2>&1; then
	say "user $FTP_USER exists"
elif [ "$(id -u)" -eq 0 ]; then
	useradd -m -d "$FTP_HOME" -s /bin/sh -c "iad-agent integration tests" "$FTP_USER" ||
		die "useradd $FTP_USER failed"
	printf '%s:%s\n' "$FTP_USER" "$FTP_PASSWORD" | chpasswd || die "chpasswd $FTP_USER failed"
	say "created user $FTP_USER (home $FTP_HOME)"
else
	say "not root: user $FTP_USER not created; the FTP tests need root and create it themselves"
fi
if [ "$(id -u)" -eq 0 ] && [ ! -d "$FTP_HOME" ]; then
	mkdir -p "$FTP_HOME" && chown "$FTP_USER:" "$FTP_HOME"
	say "created $FTP_HOME"
fi
grep -qx /bin/sh /etc/shells || say "warning: /bin/sh is not in /etc/shells; vsftpd logins will fail"
if grep -qx "$FTP_USER" /etc/ftpusers 2>/dev/null; then
	say "warning: $FTP_USER is listed in /etc/ftpusers; vsftpd logins will fail"
fi

# The kernels (armhf: nandsim, ubi, virtio… modules; arm64) and busybox
# for the QEMU guests.
for arch in armhf arm64; do
	sh "$(dirname "$0")/vm/fetch-kernel.sh" "$arch" || die "fetching the $arch kernel failed"
done

say "done"
