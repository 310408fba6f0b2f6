# boot.scr of the device VM (made with mkimage -T script): the A/B choice
# and the try counting that this U-Boot build (qemu_arm: no bootcount, no
# saveenv on QEMU's flash) cannot do itself. The state lives in
# iadstate.txt on this FAT partition, in "env export -t" format; the
# agent's boot-state backend ([state] type = uboot-text) reads and writes
# the same file:
#   boot_bank          the bank to boot (the trial while one is armed)
#   upgrade_available  1 while a trial is armed
#   bootcount          boots spent on the trial; bootlimit: boots it may take
#   iad_active         the committed bank, where a spent trial goes back to
# While a trial is armed, every boot counts one try; a boot past bootlimit
# goes back to iad_active and clears upgrade_available (the agent then
# sees iad_trial still set, marks that bank bad and reports the revert).
setenv iad_state iadstate.txt
setenv iad_addr 0x43f00000
setenv boot_bank A
setenv upgrade_available 0
if fatload ${devtype} ${devnum}:${distro_bootpart} ${iad_addr} ${iad_state}; then
	env import -t ${iad_addr} ${filesize}
else
	echo "IAD-UBOOT: no ${iad_state}: booting bank A"
fi
if test "${upgrade_available}" = "1"; then
	if test "${bootcount}" = "0"; then setenv bootcount 1
	elif test "${bootcount}" = "1"; then setenv bootcount 2
	elif test "${bootcount}" = "2"; then setenv bootcount 3
	elif test "${bootcount}" = "3"; then setenv bootcount 4
	elif test "${bootcount}" = "4"; then setenv bootcount 5
	elif test "${bootcount}" = "5"; then setenv bootcount 6
	elif test "${bootcount}" = "6"; then setenv bootcount 7
	elif test "${bootcount}" = "7"; then setenv bootcount 8
	elif test "${bootcount}" = "8"; then setenv bootcount 9
	elif test "${bootcount}" = "9"; then setenv bootcount 10
	elif test "${bootcount}" = "10"; then setenv bootcount 11
	else setenv bootcount 99
	fi
	if test ${bootcount} -gt ${bootlimit}; then
		echo "IAD-UBOOT: trial bank ${boot_bank} spent ${bootlimit} tries: back to bank ${iad_active}"
		setenv boot_bank ${iad_active}
		setenv upgrade_available 0
	else
		echo "IAD-UBOOT: trial bank ${boot_bank}, try ${bootcount} of ${bootlimit}"
	fi
	env export -t ${iad_addr} boot_bank upgrade_available bootcount bootlimit iad_active iad_trial iad_bootlimit iad_slot_a iad_slot_b iad_seq iad_abandoned iad_abandon_reason
	fatwrite ${devtype} ${devnum}:${distro_bootpart} ${iad_addr} ${iad_state} ${filesize}
fi
echo "IAD-UBOOT: booting bank ${boot_bank}"
setenv bootargs "console=ttyAMA0 panic=1 quiet iad.boot=uboot iad.bank=${boot_bank}"
fatload ${devtype} ${devnum}:${distro_bootpart} ${kernel_addr_r} zImage
fatload ${devtype} ${devnum}:${distro_bootpart} ${ramdisk_addr_r} initrd.gz
bootz ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdtcontroladdr}
