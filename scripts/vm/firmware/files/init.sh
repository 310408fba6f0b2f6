#!/bin/busybox sh
# /init of the device VM's initramfs: load the drivers the flash layout
# needs, then start the software of one bank. Without a bootloader choice
# on the kernel command line, the boot selector iad-boot decides (it
# spends a try of an armed trial, verifies the bank and switches root into
# it); with "iad.bank=A|B" (U-Boot's boot.scr chose and counted) this
# script mounts that bank and switches root itself.
B=/bin/busybox
$B mount -t proc proc /proc
$B mount -t sysfs sysfs /sys
$B mount -t devtmpfs devtmpfs /dev
while read -r m; do
	$B insmod "/lib/modules/$m.ko" || echo "IAD-VM-ERROR: insmod $m failed"
done </etc/modules
bank=
for a in $($B cat /proc/cmdline); do
	case "$a" in iad.bank=*) bank=${a#iad.bank=} ;; esac
done
if [ -z "$bank" ]; then
	echo "IAD-VM-INITRAMFS: starting iad-boot"
	exec /sbin/iad-boot -config /etc/iad/bank.conf
fi
case "$bank" in
A) dev=/dev/vda2 ;;
B) dev=/dev/vda3 ;;
*) echo "IAD-VM-ERROR: iad.bank=$bank is neither A nor B"; dev=/dev/vda2; bank=A ;;
esac
echo "IAD-VM-INITRAMFS: the bootloader chose bank $bank ($dev)"
$B mkdir -p /newroot
if $B mount -t squashfs -o ro "$dev" /newroot; then
	for d in dev proc sys; do $B mount --move "/$d" "/newroot/$d"; done
	export IAD_BOOT_BANK=$bank
	exec $B switch_root /newroot /sbin/init
fi
echo "IAD-VM-ERROR: bank $bank ($dev) cannot be mounted"
$B sync
$B reboot -f
