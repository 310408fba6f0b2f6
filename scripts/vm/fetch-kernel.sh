#!/bin/sh
# fetch-kernel.sh ARCH [CACHE] downloads Debian's kernel for ARCH (armhf:
# the armmp flavour with its modules: virtio, nandsim, ubi, squashfs, ext4,
# vfat…; arm64: the arm64 flavour) and busybox-static with apt-get
# download, and unpacks them into CACHE/root (default
# /var/cache/iad-agent/ARCH) for the QEMU tests and the device image
# (scripts/vm). Nothing is installed on the host. Idempotent.
set -eu
ARCH=${1:-armhf}
case "$ARCH" in
armhf) FLAVOUR=armmp ;;
arm64) FLAVOUR=arm64 ;;
*) printf 'fetch-kernel: error: unknown architecture %s (want armhf or arm64)\n' "$ARCH" >&2; exit 2 ;;
esac
CACHE=${2:-/var/cache/iad-agent/$ARCH}
say() { printf 'fetch-kernel %s: %s\n' "$ARCH" "$*"; }
die() { printf 'fetch-kernel %s: error: %s\n' "$ARCH" "$*" >&2; exit 1; }
if [ "$(id -u)" -eq 0 ]; then SUDO=; else SUDO=sudo; fi

if ls "$CACHE"/root/boot/vmlinuz-*-"$FLAVOUR" >/dev/null 2>&1 && [ -x "$CACHE/root/bin/busybox" ]; then
	say "present in $CACHE"
	exit 0
fi
if ! dpkg --print-foreign-architectures | grep -qx "$ARCH" && [ "$(dpkg --print-architecture)" != "$ARCH" ]; then
	say "adding the $ARCH architecture to dpkg"
	$SUDO dpkg --add-architecture "$ARCH"
	# A mirror in sync may fail one index; the packages come from main.
	$SUDO apt-get update || say "warning: apt-get update reported errors"
fi
kpkg=$(apt-cache depends "linux-image-$FLAVOUR:$ARCH" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
if [ -z "$kpkg" ]; then
	$SUDO apt-get update || say "warning: apt-get update reported errors"
	kpkg=$(apt-cache depends "linux-image-$FLAVOUR:$ARCH" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
fi
[ -n "$kpkg" ] || die "cannot find the $ARCH kernel package (apt-cache depends linux-image-$FLAVOUR:$ARCH)"
case "$kpkg" in *:"$ARCH") ;; *) kpkg="$kpkg:$ARCH" ;; esac
$SUDO mkdir -p "$CACHE/debs" "$CACHE/root"
cd "$CACHE/debs"
say "downloading $kpkg busybox-static:$ARCH"
$SUDO apt-get download "$kpkg" "busybox-static:$ARCH" || die "apt-get download failed"
for deb in ./*.deb; do
	$SUDO dpkg-deb -x "$deb" "$CACHE/root" || die "unpacking $deb failed"
done
$SUDO chmod -R a+rX "$CACHE"
ls "$CACHE"/root/boot/vmlinuz-*-"$FLAVOUR" >/dev/null 2>&1 || die "no kernel after unpacking"
say "unpacked into $CACHE/root"
