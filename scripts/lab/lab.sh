#!/usr/bin/env bash
# kvmpanel's hermetic test hypervisor lab: two independent libvirtd "hosts" on this machine, each in its own
# mount/uts/pid/net namespaces, reachable only through unix sockets, running the tiny LABOS guest under TCG.
# See docs/lab.md.
#
# usage: scripts/lab/lab.sh build | up | down | status | uri N | stop-host N | start-host N
#   build         build the LABOS guest images into $VAR/lab/images (only if absent)
#   up            build if needed, start host1 + host2, ensure network lab-iso and pools default + iso
#   down          kill both hosts (like pulling the plug; persistent definitions are kept)
#   status        "hostN up URI" / "hostN down" per host; exit 0 if all up, 3 otherwise
#   uri N         print host N's libvirt URI
#   stop-host N   kill host N only (tests: host becomes unreachable)
#   start-host N  start host N again with its existing state (domains, network, pools survive)
# $VAR is $KVMPANEL_VAR if set, else <repo>/var. Everything the lab writes stays under $VAR/lab.
set -euo pipefail

SELF=$(realpath "${BASH_SOURCE[0]}")
HERE=$(dirname "$SELF")
ROOT=$(cd "$HERE/../.." && pwd)
VAR=$(realpath -m "${KVMPANEL_VAR:-$ROOT/var}")
LAB=$(realpath -m "$VAR/lab")  # a symlinked var/lab must resolve to the running hosts
IMAGES=$LAB/images
HOSTS="1 2"
# Fixed host UUIDs: without DMI data libvirtd invents a random one on every start, and the panel keys hosts by UUID.
UUID_PREFIX=2b4f6c3e-9a1d-4c55-8e0f-00000000000
# The daemons run with a clean environment and this PATH (libvirtd looks up qemu, dnsmasq, iptables in it).
SYS_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

usage() { sed -n '6,14s/^# \{0,1\}//p' "$SELF"; }
log() { echo "lab: $*"; }
die() { echo "lab: $*" >&2; exit 1; }

hostdir() { echo "$LAB/host$1"; }
uri() { echo "qemu+unix:///system?socket=$(hostdir "$1")/run/libvirt-sock"; }
# Every virsh call names its URI explicitly: the lab never talks to the machine's own libvirtd.
vsh() { local n=$1; shift; virsh -q -c "$(uri "$n")" "$@"; }

check_n() {
  case "${1:-}" in 1|2) ;; *) die "host number must be 1 or 2, got '${1:-}'" ;; esac
}

require_root() {
  [ "$(id -u)" = 0 ] || die "must run as root (namespaces, mounts, libvirtd)"
}

# One lab operation at a time (tests may call lab.sh concurrently). launch_host closes fd 9 for the hosts.
take_lock() {
  mkdir -p "$LAB"
  exec 9>"$LAB/.lock"
  flock -w 900 9 || die "timed out waiting for $LAB/.lock"
}

ensure_system() {
  bash "$ROOT/scripts/install-system-deps.sh" --lab --quiet
}

# libvirtd resolves its compiled-in default user "libvirt-qemu" at startup even when qemu.conf says root
# ("Failed to parse user 'libvirt-qemu'" -> "Driver state initialization failed"). Without
# libvirt-daemon-system nobody creates it, so we do (same as the LAB.md reference).
ensure_users() {
  getent group kvm >/dev/null || groupadd -r kvm
  getent group libvirt-qemu >/dev/null || groupadd -r libvirt-qemu
  getent passwd libvirt-qemu >/dev/null \
    || useradd -r -g libvirt-qemu -G kvm -d /var/lib/libvirt -s /usr/sbin/nologin libvirt-qemu
}

# ---------------------------------------------------------------------------------------------- build

images_built() {
  [ -f "$IMAGES/labos-live.iso" ] && [ -f "$IMAGES/labos-install.iso" ] && [ -f "$IMAGES/labos-disk.img" ]
}

# Debian cloud kernel: small, virtio as modules, VGA text console. Unpacked to $LAB/kernel/x, which appears
# only by rename once complete.
fetch_kernel() {
  local kdir=$LAB/kernel
  [ -d "$kdir/x" ] && return 0
  mkdir -p "$kdir"
  local pkg
  pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image/ {print $2; exit}')
  [ -n "$pkg" ] || die "cannot resolve linux-image-cloud-amd64 (needs Debian apt sources; try apt-get update)"
  rm -rf "$kdir/dl"
  mkdir -p "$kdir/dl"
  log "downloading $pkg"
  # Sandbox user root: as root, apt would otherwise warn that _apt cannot write here.
  if ! (cd "$kdir/dl" && apt-get download -qq -o APT::Sandbox::User=root "$pkg"); then
    apt-get update -qq   # stale package lists point to a version the mirror no longer has
    (cd "$kdir/dl" && apt-get download -qq -o APT::Sandbox::User=root "$pkg")
  fi
  rm -rf "$kdir/x.tmp"
  dpkg-deb -x "$kdir"/dl/*.deb "$kdir/x.tmp"
  mv "$kdir/x.tmp" "$kdir/x"
  rm -rf "$kdir/dl"
}

cmd_build() {
  if images_built; then
    log "images present in $IMAGES"
    return 0
  fi
  ensure_system
  fetch_kernel
  log "building LABOS images into $IMAGES"
  KX=$LAB/kernel/x OUT=$IMAGES W=$LAB/build bash "$HERE/mk-labos.sh"
}

# ---------------------------------------------------------------------------------------------- hosts

# Print the outer PID of host N's namespace init, if it is running. The PID in ns.pid must still be our
# init: its command line has the state dir as an argument and it is PID 1 of its own pid namespace.
host_pid() {
  local b pid
  b=$(hostdir "$1")
  pid=$(cat "$b/ns.pid" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && is_ns_init "$pid" "$b" || return 1
  echo "$pid"
}

is_ns_init() {
  local pid=$1 b=$2
  grep -qzxF -- "$b" "/proc/$pid/cmdline" 2>/dev/null \
    && grep -qE '^NSpid:.*[[:space:]]1$' "/proc/$pid/status" 2>/dev/null
}

# Fallback when ns.pid is gone or stale: look for our init by its exact arguments (one grep over all
# command lines, then the PID-1-of-its-namespace check on the few matches).
find_ns_init() {
  local b f pid
  b=$(hostdir "$1")
  grep -lzxF -- "$b" /proc/[0-9]*/cmdline 2>/dev/null | while read -r f; do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    if is_ns_init "$pid" "$b"; then echo "$pid"; fi
  done
  return 0
}

# PIDs of host N's init: the recorded one, else whatever the scan finds (empty when the host is down).
host_pids() { host_pid "$1" || find_ns_init "$1"; }

host_responds() { vsh "$1" uri >/dev/null 2>&1; }

# Config and state dirs of host N; the config files are rewritten on every start (they are ours).
prepare_host() {
  local n=$1 b
  b=$(hostdir "$n")
  mkdir -p "$b"/{etc,run,lib/images,lib/qemu,log/qemu,cache,images} "$IMAGES"
  cat >"$b/etc/libvirtd.conf" <<EOF
# written by scripts/lab/lab.sh
host_uuid = "$UUID_PREFIX$n"
unix_sock_group = "root"
unix_sock_rw_perms = "0770"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:stderr"
EOF
  # user/group root: QEMU as libvirt-qemu cannot open /dev/kvm (no udev here) and libvirt then re-probes
  # QEMU every ~2 s (60-100 s per domain start). No cgroups: the hosts would share /sys/fs/cgroup/*/machine.
  printf '# written by scripts/lab/lab.sh\nuser = "root"\ngroup = "root"\ncgroup_controllers = [ ]\n' >"$b/etc/qemu.conf"
  printf '# written by scripts/lab/lab.sh\nlog_outputs = "3:stderr"\n' >"$b/etc/virtlogd.conf"
  touch "$b/etc/libvirt.conf"
  # Own /etc/hosts: libvirtd resolves its hostname; without an entry it logs a resolver failure each time.
  printf '127.0.0.1 localhost\n127.0.1.1 labhost%s\n' "$n" >"$b/hosts"
  # The bind-mount targets must exist on the machine (they stay empty there).
  mkdir -p /etc/libvirt /var/lib/libvirt /var/log/libvirt /var/cache/libvirt
  # keep host.log bounded across many test runs
  if [ -f "$b/host.log" ] && [ "$(stat -c %s "$b/host.log")" -gt 1048576 ]; then
    mv -f "$b/host.log" "$b/host.log.1"
  fi
}

# Runtime state is meaningless once the namespace is gone (processes, bridge, tmpfs /run): drop it, so the
# next libvirtd neither finds stale sockets nor tries to reconnect to dead QEMUs.
clean_runtime() {
  local b
  b=$(hostdir "$1")
  rm -f "$b/ns.pid" "$b/ns.pid.tmp"
  rm -rf "$b/run" "$b"/lib/qemu/domain-* "$b"/lib/qemu/channel/target/domain-*
  mkdir -p "$b/run"
}

# The interpreter for reaper.py: the system python3 if present, else the real binary behind python3 on
# PATH (a pyenv shim would not work with the daemons' clean environment).
lab_python() {
  if [ -x /usr/bin/python3 ]; then
    echo /usr/bin/python3
  else
    python3 -c 'import sys; print(sys.executable)' 2>/dev/null || die "python3 not found (needed for the ns init)"
  fi
}

# Start host N in the background: setsid detaches it from the caller's session (a Ctrl-C in a test run
# must not kill it), unshare --fork makes `lab.sh _ns-init` PID 1 of the new pid namespace.
launch_host() {
  local n=$1 b py
  b=$(hostdir "$n")
  py=$(lab_python)
  clean_runtime "$n"
  prepare_host "$n"
  echo "=== $(date '+%F %T') lab.sh: starting labhost$n" >>"$b/host.log"
  (
    close_fds
    exec env -i PATH="$SYS_PATH" HOME=/root LANG=C.UTF-8 KVMPANEL_VAR="$VAR" LAB_PYTHON="$py" \
      setsid unshare --mount --uts --pid --net --fork --propagation private \
      bash "$SELF" _ns-init "$n" "$b"
  ) </dev/null >>"$b/host.log" 2>&1 &
}

# Close every fd above 2 (our lock, and whatever the caller leaked to us): the long-lived host processes
# must not keep a caller's pipe open, or e.g. a test runner reading our output would wait for them forever.
close_fds() {
  local fd
  for fd in /proc/"$BASHPID"/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
  done
}

# Runs inside the new namespaces as PID 1 (stdout/stderr go to host.log).
ns_init() {
  local n=$1 b=$2 outer _
  # /proc is still the parent namespace's mount, so /proc/self/stat holds our PID as seen from outside:
  # that is what `stop` must SIGKILL.
  read -r outer _ </proc/self/stat
  echo "$outer" >"$b/ns.pid.tmp"
  mv -f "$b/ns.pid.tmp" "$b/ns.pid"
  echo "labhost$n" >/proc/sys/kernel/hostname
  mount --bind "$b/hosts" /etc/hosts
  mount --bind "$b/etc" /etc/libvirt
  # Fresh /run: only binding /run/libvirt makes virtlogd fail on the machine's /run/virtlogd.pid, and it
  # hides the machine's own libvirt socket from everything in here.
  mount -t tmpfs -o mode=0755 tmpfs /run
  # libvirt locks a console's pty with a file in /var/lock (-> /run/lock), as systemd-tmpfiles makes it.
  mkdir -m 1777 /run/lock  # /run is a fresh tmpfs: only this one level to create
  mkdir -p /run/libvirt
  mount --bind "$b/run" /run/libvirt
  mount --bind "$b/lib" /var/lib/libvirt
  mount --bind "$b/log" /var/log/libvirt
  mount --bind "$b/cache" /var/cache/libvirt
  mount -t proc proc /proc
  # A sysfs mounted from inside the netns lists only this host's NICs (else libvirt's interface and
  # nodedev APIs show the machine's eth0). Detach the old /sys with its cgroup submounts first: merely
  # shadowed, they stay in mountinfo and libvirt logs cgroup errors on every domain start.
  umount -l /sys
  mount -t sysfs sysfs /sys
  ip link set lo up
  # Foreground daemons (no -d): their stderr log lands in host.log; PID 1 below reaps them and all QEMUs.
  virtlogd &
  libvirtd &
  echo "labhost$n: ns init pid $outer (outside), libvirtd pid $! (inside)"
  exec "$LAB_PYTHON" "$HERE/reaper.py" "$b"
}

# Wait (max ~20 s) until host N answers on its socket; give up early if its init died.
wait_host() {
  local n=$1 i
  for i in $(seq 200); do
    host_responds "$n" && return 0
    if [ "$i" -gt 20 ] && ! host_pid "$n" >/dev/null; then break; fi
    sleep 0.1
  done
  echo "lab: host$n did not come up; last lines of $(hostdir "$n")/host.log:" >&2
  tail -n 15 "$(hostdir "$n")/host.log" >&2 || true
  return 1
}

# SIGKILL to the namespace's PID 1 kills everything in it (libvirtd, virtlogd, dnsmasq, QEMUs) at once,
# like pulling the plug. The init stays visible until every process in the namespace is gone and unshare
# has reaped it, so waiting for its /proc entry to vanish means the whole host is down.
stop_host() {
  local n=$1 pid pids i
  pids=$(host_pids "$n")
  for pid in $pids; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  for pid in $pids; do
    for i in $(seq 100); do
      [ -e "/proc/$pid" ] || break
      sleep 0.1
    done
    [ -e "/proc/$pid" ] && echo "lab: warning: host$n init $pid still present after 10 s" >&2
  done
  clean_runtime "$n"
}

xml_lab_iso() {
  cat <<'EOF'
<network>
  <name>lab-iso</name>
  <bridge name='virbr-lab' stp='off' delay='0'/>
  <domain name='lab.test' localOnly='yes'/>
  <ip address='192.168.250.1' netmask='255.255.255.0'>
    <dhcp><range start='192.168.250.100' end='192.168.250.199'/></dhcp>
  </ip>
</network>
EOF
}

# Isolated network: no <forward> element at all, so no NAT and no routing out of the namespace.
# Same bridge name and subnet on both hosts; that is fine because each host has its own netns.
ensure_network() {
  local n=$1 xml
  if ! vsh "$n" net-info lab-iso >/dev/null 2>&1; then
    xml=$(hostdir "$n")/lab-iso.xml
    xml_lab_iso >"$xml"
    vsh "$n" net-define "$xml" >/dev/null
  fi
  vsh "$n" net-autostart lab-iso >/dev/null
  ensure_active "$n" net lab-iso
}

ensure_pool() {
  local n=$1 name=$2 path=$3
  mkdir -p "$path"
  vsh "$n" pool-info "$name" >/dev/null 2>&1 || vsh "$n" pool-define-as "$name" dir --target "$path" >/dev/null
  vsh "$n" pool-autostart "$name" >/dev/null
  ensure_active "$n" pool "$name"
}

# Start network/pool $3 (kind $2 = net|pool) on host $1 unless active. Right after a start, libvirtd's own
# autostart runs concurrently with us, so a failed start is fine if the object is active afterwards.
ensure_active() {
  local n=$1 kind=$2 name=$3
  is_active "$n" "$kind" "$name" && return 0
  vsh "$n" "$kind-start" "$name" >/dev/null 2>&1 && return 0
  is_active "$n" "$kind" "$name" || vsh "$n" "$kind-start" "$name" >/dev/null
}

# (virsh 9.0 pads `pool-list --name` output with blanks, hence awk rather than grep -x)
is_active() { vsh "$1" "$2-list" --name | awk -v x="$3" '$1 == x {f = 1} END {exit !f}'; }

setup_host() {
  local n=$1
  ensure_network "$n"
  ensure_pool "$n" default "$(hostdir "$n")/images"   # per-host local disks
  ensure_pool "$n" iso "$IMAGES"                      # shared: LABOS ISOs + disk image
}

# Start the given hosts (if not running), wait for all, then make sure network and pools exist.
start_hosts() {
  local n pids
  for n in "$@"; do
    pids=$(host_pids "$n")
    if [ -z "$pids" ]; then
      launch_host "$n"
    elif ! host_pid "$n" >/dev/null; then
      echo "${pids%%[[:space:]]*}" >"$(hostdir "$n")/ns.pid"   # running, but its ns.pid was lost
    fi
  done
  for n in "$@"; do
    if ! wait_host "$n"; then
      # running but not answering (e.g. its libvirtd died): restart it once
      stop_host "$n"
      launch_host "$n"
      wait_host "$n" || die "host$n failed to start (see $(hostdir "$n")/host.log)"
    fi
    setup_host "$n"
    echo "host$n up $(uri "$n")"
  done
}

# ---------------------------------------------------------------------------------------------- commands

cmd_up() {
  require_root
  [ ${#LAB} -le 45 ] || echo "lab: warning: $LAB is long; VNC unix sockets under it may exceed 108 bytes" >&2
  take_lock
  ensure_system
  ensure_users
  cmd_build
  # shellcheck disable=SC2086  # HOSTS is a list
  start_hosts $HOSTS
}

cmd_down() {
  require_root
  take_lock
  local n
  for n in $HOSTS; do
    stop_host "$n"
    echo "host$n down"
  done
}

cmd_status() {
  local n rc=0
  for n in $HOSTS; do
    if host_pid "$n" >/dev/null && host_responds "$n"; then
      echo "host$n up $(uri "$n")"
    else
      echo "host$n down"
      rc=3
    fi
  done
  return "$rc"
}

main() {
  local cmd=${1:-}
  [ $# -gt 0 ] && shift
  case "$cmd" in
    build) take_lock; cmd_build ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    uri) check_n "${1:-}"; uri "$1" ;;
    stop-host) check_n "${1:-}"; require_root; take_lock; stop_host "$1"; echo "host$1 down" ;;
    start-host) check_n "${1:-}"; require_root; take_lock; ensure_system; ensure_users; start_hosts "$1" ;;
    _ns-init) ns_init "$@" ;;
    -h|--help|help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

# Unix socket paths must fit in sun_path (108 bytes): libvirt's $LAB/hostN/run/libvirt-sock needs ~25 bytes
# more than $LAB; a VNC socket seen from outside ($LAB/hostN/lib/qemu/domain-ID-NAME20/vnc.sock) ~60.
[ ${#LAB} -le 80 ] || die "lab dir path too long for unix sockets: $LAB (set KVMPANEL_VAR to a shorter path)"

main "$@"
