#!/bin/sh
# Start-up script of the software in this bank: PID 1 once the boot
# selector (iad-boot) or the initramfs has switched root into the bank.
# It brings up the network, mounts the persistent data partition, starts
# the upgrade agent, and serves a line-oriented command console on the
# serial port for the test harness. When the agent dies, the device
# restarts, as a hardware watchdog would make it: the boot selector then
# spends the next try of a trial, or returns to the committed bank.
export PATH=/usr/bin:/bin
mount -t tmpfs -o mode=0755,size=4m tmpfs /run
mount -t tmpfs -o size=8m tmpfs /tmp
hostname iad-vm
ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2 ||
	echo "IAD-VM-ERROR: no network"

conf=/etc/iad/bank.conf
case " $(cat /proc/cmdline) " in
*" iad.boot=uboot "*)
	# U-Boot keeps the boot state in a text file on the FAT partition.
	conf=/etc/iad/bank-uboot.conf
	mount -t vfat -o rw,noatime /dev/vda1 /boot || echo "IAD-VM-ERROR: boot partition not mounted"
	;;
esac
mount -t ext4 -o rw,noatime /dev/vda4 /data || echo "IAD-VM-ERROR: data partition not mounted"

# Site settings (notification destination, health-check time) live on
# the data partition; the software in the banks is the same everywhere.
TRAP=
COMMIT_AFTER=30s
TFTP_BLKSIZE=1468
AGENT_ARGS=
[ -r /data/site.env ] && . /data/site.env

version=$(cat /etc/iad/version)
echo "IAD-VM-START bank=${IAD_BOOT_BANK:-?} version=$version"
(
	set -- -data /data/agent -bank-config "$conf" -listen 0.0.0.0:161 \
		-rw-community private -trust /etc/iad/trusted.pub -hw "$(cat /etc/iad/hardware)" \
		-reset-cmd reboot -commit-after "$COMMIT_AFTER" -tftp-blksize "$TFTP_BLKSIZE" \
		-factory-version "$version"
	[ -n "$TRAP" ] && set -- "$@" -trap "$TRAP"
	# shellcheck disable=SC2086
	/usr/bin/iad-agent "$@" $AGENT_ARGS
	rc=$?
	echo "IAD-VM-AGENT-EXIT rc=$rc: restarting the device"
	sync
	reboot -f
) </dev/null &

# The harness's console: "IADCMD <id> <shell command>" runs the command
# and prints its output as "IAD-CMD-OUT <id>: <line>", then
# "IAD-CMD-END <id> rc=<status>".
stty -echo 2>/dev/null
echo "IAD-VM-CONSOLE-READY"
while IFS= read -r line; do
	case "$line" in
	"IADCMD "*)
		line=${line#IADCMD }
		id=${line%% *}
		cmd=${line#* }
		{ sh -c "$cmd" 2>&1; echo "IAD-CMD-RC $?"; } | while IFS= read -r out; do
			case "$out" in
			"IAD-CMD-RC "*) echo "IAD-CMD-END $id rc=${out#IAD-CMD-RC }" ;;
			*) echo "IAD-CMD-OUT $id: $out" ;;
			esac
		done
		;;
	esac
done
while :; do sleep 3600; done
