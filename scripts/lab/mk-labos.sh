#!/usr/bin/env bash
# Build LABOS, the tiny BIOS-bootable test guest, from Debian packages only (normally run by `lab.sh build`).
#
#   KX=<unpacked cloud kernel .deb> OUT=<image dir> [W=<work dir>] scripts/lab/mk-labos.sh
#
# Needs (apt): busybox-static syslinux syslinux-common isolinux xorriso mtools dosfstools fdisk cpio gzip
#              qemu-guest-agent (its binary + libraries are copied into the initramfs).
# Produces in $OUT:
#   labos-live.iso     isolinux live CD; serial prints "boot finished at ...s uptime" when up
#   labos-install.iso  installer: writes labos-disk.img onto an all-zero /dev/vda, then powers off
#   labos-disk.img     32 MiB raw disk, already "installed" (MBR + FAT16 + syslinux)
# Everything is built in $W and renamed into $OUT only at the very end, so an interrupted build never
# leaves a half-written image under the final name.
set -euo pipefail
KX=${KX:?KX = dir with the unpacked cloud kernel .deb}
OUT=${OUT:?OUT = output dir}
W=${W:-$OUT/.build}

# The cloud kernel has its virtio drivers as modules: load them from the initramfs.
MODS="failover net_failover virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk virtio_net virtio_console virtio_balloon evdev button"
# Kernel command line shared by all boot configs: VGA text console (readable screenshots) + serial log.
CMDLINE="console=tty0 console=ttyS0,115200 loglevel=3"

find_kernel() {
  local moddir d
  for moddir in "$KX/lib/modules" "$KX/usr/lib/modules"; do   # usr/lib/modules on merged-/usr (trixie+)
    for d in "$moddir"/*/; do
      [ -d "$d" ] || continue
      KVER=$(basename "$d")
      KMODS=$moddir/$KVER
      K=$KX/boot/vmlinuz-$KVER
      [ -f "$K" ] && return 0
    done
  done
  echo "mk-labos: no kernel found under $KX" >&2
  exit 1
}

# initramfs tree: busybox, virtio modules, qemu-ga with its libraries.
make_tree() {
  mkdir -p "$W"/root/{bin,sbin,etc/acpi/PWRF,proc,sys,dev,run,tmp,lib/modules}
  cp /bin/busybox "$W/root/bin/busybox"          # busybox-static: no libc needed
  local m f
  for m in $MODS; do
    f=$(find "$KMODS" -name "$m.ko" | head -1)
    [ -n "$f" ] || { echo "mk-labos: module $m.ko not found in $KMODS" >&2; exit 1; }
    cp "$f" "$W/root/lib/modules/"
  done
  echo "$MODS" > "$W/root/etc/modules"
  cp /usr/sbin/qemu-ga "$W/root/sbin/"
  local lib
  for lib in $(ldd /usr/sbin/qemu-ga | grep -o '/lib[^ ]*'); do
    mkdir -p "$W/root$(dirname "$lib")"
    cp -L "$lib" "$W/root$lib"
  done
  write_guest_files "$W/root"
}

# /init, inittab and the small service scripts of the guest (unchanged from the LAB.md reference).
write_guest_files() {
  local r=$1
  cat > "$r/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/sbin:/bin
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts; mount -t devpts devpts /dev/pts
for pass in 1 2 3; do for m in $(cat /etc/modules); do grep -q "^$m " /proc/modules || insmod /lib/modules/$m.ko 2>/dev/null; done; done
exec /bin/init
EOF
  cat > "$r/etc/inittab" <<'EOF'
::sysinit:/etc/rc.sysinit
::respawn:/etc/watch.sh
tty1::respawn:-/bin/sh
ttyS0::respawn:-/bin/sh
::ctrlaltdel:/bin/poweroff
::shutdown:/etc/rc.shutdown
EOF
  cat > "$r/etc/rc.sysinit" <<'EOF'
#!/bin/sh
hostname labvm
MODE=live; for a in $(cat /proc/cmdline); do case $a in lab.mode=*) MODE=${a#lab.mode=};; esac; done
banner() { printf '\033[2J\033[H' >/dev/tty1
  for t in /dev/tty1 /dev/ttyS0; do printf '\n==============================\n  LABOS %s  (%s)\n  kernel %s\n==============================\n\n' "$1" "$MODE" "$(uname -r)" >$t; done; }
if [ -f /disk.img.gz ] && [ "$MODE" != live ]; then      # installer initrd
  if [ -b /dev/vda ] && [ "$(dd if=/dev/vda bs=512 count=1 2>/dev/null | tr -d "\000" | wc -c)" -eq 0 ]; then
    banner "INSTALLER: writing /dev/vda"
    t0=$(cut -d' ' -f1 /proc/uptime)
    zcat /disk.img.gz | dd of=/dev/vda bs=1M conv=fsync 2>/dev/null; sync
    echo "LABOS install done in $(awk -v a=$t0 '{print $1-a}' /proc/uptime)s, powering off" | tee /dev/tty1 >/dev/ttyS0
    sleep 1; poweroff -f
  fi
  MODE=live
fi
banner "$( [ $MODE = installed ] && echo 'INSTALLED SYSTEM (booted from disk)' || echo 'LIVE SYSTEM' )"
ip link set lo up
acpid -c /etc/acpi -l /run/acpid.log
echo "boot finished at $(cut -d' ' -f1 /proc/uptime)s uptime" > /dev/ttyS0
EOF
  cat > "$r/etc/watch.sh" <<'EOF'
#!/bin/sh
# every 2 s: DHCP on new NICs, online hot-plugged CPUs + memory, (re)start qemu-ga when its virtio port exists
while :; do
  for n in /sys/class/net/*; do i=${n##*/}; [ $i = lo ] && continue
    [ -f /run/udhcpc.$i.pid ] && kill -0 $(cat /run/udhcpc.$i.pid) 2>/dev/null && continue
    ip link set $i up; udhcpc -b -i $i -p /run/udhcpc.$i.pid -s /etc/udhcpc.script -x hostname:$(hostname) >/dev/null 2>&1
  done
  for c in /sys/devices/system/cpu/cpu*/online; do [ -f $c ] && [ "$(cat $c)" = 0 ] && echo 1 > $c; done 2>/dev/null
  for m in /sys/devices/system/memory/memory*/state; do [ -f $m ] && [ "$(cat $m)" = offline ] && echo online > $m; done 2>/dev/null
  if [ ! -f /run/qga.pid ] || ! kill -0 $(cat /run/qga.pid) 2>/dev/null; then
    for p in /sys/class/virtio-ports/*; do [ "$(cat $p/name 2>/dev/null)" = org.qemu.guest_agent.0 ] && qemu-ga -d -m virtio-serial -p /dev/${p##*/} -f /run/qga.pid -t /run; done
  fi
  sleep 2
done
EOF
  cat > "$r/etc/udhcpc.script" <<'EOF'
#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev $interface; ip link set $interface up ;;
  bound|renew) ip addr flush dev $interface; ip addr add $ip/$mask dev $interface
     [ -n "$router" ] && ip route replace default via ${router%% *} dev $interface
     echo "DHCP $interface: $ip/$mask" | tee /dev/tty1 > /dev/ttyS0 ;;
esac
EOF
  printf '#!/bin/sh\necho "LABOS shutting down" | tee /dev/tty1 >/dev/ttyS0\nsync\n' > "$r/etc/rc.shutdown"
  printf '#!/bin/sh\necho "ACPI power button -> poweroff" | tee /dev/tty1 >/dev/ttyS0\npoweroff\n' > "$r/etc/acpi/PWRF/00000080"
  # qemu-ga's guest-shutdown runs "/sbin/shutdown -P|-H|-r +0 msg"; busybox has no shutdown applet.
  printf '#!/bin/sh\ncase "$*" in *-r*) reboot;; *) poweroff;; esac\n' > "$r/sbin/shutdown"
  chmod +x "$r/init" "$r/etc/rc.sysinit" "$r/etc/watch.sh" "$r/etc/udhcpc.script" "$r/etc/rc.shutdown" \
    "$r/etc/acpi/PWRF/00000080" "$r/sbin/shutdown"
  echo 'root:x:0:0:root:/:/bin/sh' > "$r/etc/passwd"
  echo 'root:x:0:' > "$r/etc/group"
}

# cpio + gzip a tree into an initrd.
pack_initrd() {
  local tree=$1 out=$2 level=$3
  (cd "$tree" && find . | cpio -o -H newc --quiet) | gzip "-$level" > "$out"
}

syslinux_cfg() {
  printf 'DEFAULT labos\nPROMPT 0\nTIMEOUT 0\nLABEL labos\n  LINUX /vmlinuz\n  INITRD /initrd.gz\n  APPEND %s lab.mode=%s\n' \
    "$CMDLINE" "$1"
}

# Pre-installed disk: MBR (syslinux mbr.bin) + FAT16 partition at 1 MiB + syslinux. Built with mtools and
# `syslinux --offset`, so no loop devices (and no privileges) are needed.
make_disk() {
  local img=$W/disk.img
  truncate -s 32M "$img"
  echo 'start=2048, type=6, bootable' | sfdisk -q "$img"
  mkfs.vfat -F 16 -n LABOS --offset 2048 "$img" $((32 * 1024 - 1024)) >/dev/null
  syslinux_cfg installed > "$W/syslinux.cfg"
  mcopy -i "$img@@1M" "$K" ::/vmlinuz
  mcopy -i "$img@@1M" "$W/initrd-live.gz" ::/initrd.gz
  mcopy -i "$img@@1M" "$W/syslinux.cfg" ::/syslinux.cfg
  syslinux --offset $((2048 * 512)) --install "$img"
  dd if=/usr/lib/syslinux/mbr/mbr.bin of="$img" bs=440 count=1 conv=notrunc status=none
}

# isolinux ISO (BIOS, isohybrid) for variant $1 (live|install). The cloud kernel has no AHCI driver, so the
# installer carries its payload in the initrd instead of reading the CD from Linux.
make_iso() {
  local v=$1 d=$W/iso-$1
  mkdir -p "$d/isolinux"
  cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$d/isolinux/"
  cp "$K" "$d/vmlinuz"
  cp "$W/initrd-$v.gz" "$d/initrd.gz"
  syslinux_cfg "$v" > "$d/isolinux/isolinux.cfg"
  xorriso -as mkisofs -quiet -o "$W/labos-$v.iso" -V LABOS -J -R -b isolinux/isolinux.bin -c isolinux/boot.cat \
    -no-emul-boot -boot-load-size 4 -boot-info-table -isohybrid-mbr /usr/lib/ISOLINUX/isohdpfx.bin "$d" 2>/dev/null
}

main() {
  find_kernel
  rm -rf "$W"
  mkdir -p "$W" "$OUT"
  make_tree
  pack_initrd "$W/root" "$W/initrd-live.gz" 9
  make_disk
  # installer initrd = live tree + the gzipped pre-installed disk
  cp -a "$W/root" "$W/rootinst"
  gzip -1 -c "$W/disk.img" > "$W/rootinst/disk.img.gz"
  pack_initrd "$W/rootinst" "$W/initrd-install.gz" 1
  make_iso live
  make_iso install
  # Publish: $W is inside $OUT's filesystem, so mv is an atomic rename. labos-live.iso goes last, and the
  # caller treats the build as complete only when all three exist.
  mv -f "$W/disk.img" "$OUT/labos-disk.img"
  mv -f "$W/labos-install.iso" "$OUT/labos-install.iso"
  mv -f "$W/labos-live.iso" "$OUT/labos-live.iso"
  rm -rf "$W"
  echo "LABOS built from kernel $KVER:"
  ls -l "$OUT"/labos-*
}

main
