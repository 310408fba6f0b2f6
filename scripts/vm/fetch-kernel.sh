#!/bin/sh
# fetch-armhf.sh downloads Debian's armhf armmp kernel (with its modules:
# nandsim, ubi, virtio…) and busybox-static with apt-get download, and
# unpacks them into CACHE/root (default /var/cache/iad-agent/armhf) for the
# QEMU tests (scripts/vm). Nothing is installed on the host. Idempotent.
set -eu
CACHE=${1:-${IAD_VM_CACHE:-/var/cache/iad-agent/armhf}}
say() { printf 'fetch-armhf: %s\n' "$*"; }
die() { printf 'fetch-armhf: error: %s\n' "$*" >&2; exit 1; }
if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi

if ls "$CACHE"/root/boot/vmlinuz-*-armmp >/dev/null 2>&1 && [ -x "$CACHE/root/bin/busybox" ]; then
	say "present in $CACHE"
	exit 0
fi
if ! dpkg --print-foreign-architectures | grep -qx armhf; then
	say "adding the armhf architecture to dpkg"
	$SUDO dpkg --add-architecture armhf
	# A mirror in sync may fail one index; the packages come from main.
	$SUDO apt-get update || say "warning: apt-get update reported errors"
fi
kpkg=$(apt-cache depends linux-image-armmp:armhf 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
if [ -z "$kpkg" ]; then
	$SUDO apt-get update || say "warning: apt-get update reported errors"
	kpkg=$(apt-cache depends linux-image-armmp:armhf 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
fi
[ -n "$kpkg" ] || die "cannot find the armhf kernel package (apt-cache depends linux-image-armmp:armhf)"
case "$kpkg" in *:armhf) ;; *) kpkg="$kpkg:armhf" ;; esac
$SUDO mkdir -p "$CACHE/debs" "$CACHE/root"
cd "$CACHE/debs"
say "downloading $kpkg busybox-static:armhf"
$SUDO apt-get download "$kpkg" busybox-static:armhf || die "apt-get download failed"
for deb in ./*.deb; do
	$SUDO dpkg-deb -x "$deb" "$CACHE/root" || die "unpacking $deb failed"
done
$SUDO chmod -R a+rX "$CACHE"
ls "$CACHE"/root/boot/vmlinuz-*-armmp >/dev/null 2>&1 || die "no kernel after unpacking"
say "unpacked into $CACHE/root"
