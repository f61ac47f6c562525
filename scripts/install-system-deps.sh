#!/usr/bin/env bash
# Install the system packages kvmpanel needs, on Debian or Ubuntu.
#
#   scripts/install-system-deps.sh          panel + libvirt/QEMU + test-lab guest-image tools
#   scripts/install-system-deps.sh --test   the same plus chromium (browser tests)
#   scripts/install-system-deps.sh --lab    only what scripts/lab/lab.sh needs (used by lab.sh itself)
#   --quiet                                 print nothing when all packages are present
#
# Idempotent and fast when everything is present: the check is a local dpkg query; apt-get update and
# apt-get install run only when something is missing.
# Never installs libvirt-daemon-system: it pulls libvirt-daemon-config-network, which defines an autostarted
# NAT "default" network, and kvmpanel must not have one.
set -euo pipefail

usage() { sed -n '2,8s/^# \{0,1\}//p' "$0"; }

# libvirtd + QEMU (TCG is enough) + DHCP for libvirt networks. iptables: libvirt 9.0 installs its
# isolation rules for networks with it, and net-start fails without it.
LIBVIRT_PKGS="libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients qemu-system-x86 qemu-utils dnsmasq-base iptables iproute2"
# What scripts/lab/mk-labos.sh uses to build the tiny test guest (qemu-ga is copied into its initramfs).
GUEST_PKGS="busybox-static syslinux syslinux-common isolinux xorriso mtools dosfstools fdisk cpio gzip qemu-guest-agent"
# pip install libvirt-python builds from source; redis for Celery/Channels; gettext for compilemessages.
PANEL_PKGS="libvirt-dev pkg-config gcc redis-server gettext"

MODE=all WITH_TEST=0 QUIET=0
for arg in "$@"; do
  case $arg in
    --test) WITH_TEST=1 ;;
    --lab) MODE=lab ;;
    --quiet) QUIET=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

# Print the manual instructions for distributions we do not automate, then exit 2.
unsupported_os() {
  local name=$1 like=$2
  echo "install-system-deps: '$name' is not Debian/Ubuntu; this script only automates apt." >&2
  case " $like " in
    *" rhel "*|*" fedora "*|*" centos "*)
      cat >&2 <<'EOF'
Install by hand (as root), for example:
  dnf install libvirt virt-install qemu-kvm qemu-img libvirt-devel pkgconf-pkg-config redis \
              python3.11 python3.11-devel nodejs npm gettext iptables iproute dnsmasq
(older systems: yum install libvirt virt-install qemu-kvm ...)
kvmpanel must not have a NAT network: if your libvirt package created "default", remove it
(virsh net-destroy default; virsh net-undefine default).
The test lab (scripts/lab/lab.sh) is Debian-only: it builds its guest from Debian packages.
EOF
      ;;
    *)
      cat >&2 <<'EOF'
Install by hand the equivalents of: libvirt daemon + QEMU driver + virsh, qemu-system-x86_64, qemu-img,
dnsmasq, iptables, iproute2, libvirt development headers, pkg-config, gcc, Python 3.11 + headers + venv,
redis, gettext, nodejs, npm.
EOF
      ;;
  esac
  exit 2
}

check_os() {
  local id="" id_like=""
  # shellcheck disable=SC1091  # /etc/os-release is a system file
  [ -r /etc/os-release ] && { . /etc/os-release; id=${ID:-}; id_like=${ID_LIKE:-}; }
  case " $id $id_like " in
    *" debian "*|*" ubuntu "*) return 0 ;;
    *) unsupported_os "${PRETTY_NAME:-${id:-unknown}}" "$id $id_like" ;;
  esac
}

# python3 on PATH may be a pyenv build that already has venv + headers; only add Debian's packages
# when the interpreter actually lacks them (Debian splits ensurepip into python3-venv).
python_pkgs() {
  if ! command -v python3 >/dev/null 2>&1; then echo "python3 python3-venv python3-dev"; return; fi
  python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || echo python3-venv
  python3 -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' >/dev/null 2>&1 \
    || echo python3-dev
}

# node/npm may come from NodeSource or nvm (whose nodejs conflicts with Debian's npm): only add when absent.
node_pkgs() {
  command -v node >/dev/null 2>&1 || echo nodejs
  command -v npm >/dev/null 2>&1 || echo npm
}

wanted_pkgs() {
  echo "$LIBVIRT_PKGS $GUEST_PKGS"
  if [ "$MODE" = lab ]; then
    # the lab's namespace init (scripts/lab/reaper.py) needs some python3
    command -v python3 >/dev/null 2>&1 || [ -x /usr/bin/python3 ] || echo python3
    return 0
  fi
  echo "$PANEL_PKGS"
  python_pkgs
  node_pkgs
  # A CJK font, so screenshots of the Chinese UI show characters rather than empty boxes.
  [ "$WITH_TEST" = 1 ] && echo chromium fonts-wqy-microhei
  return 0
}

# Print the packages from $@ that are not in state "installed" (unknown or config-files-only count as missing).
missing_pkgs() {
  local installed
  installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "$@" 2>/dev/null | awk '$2 == "installed" {print $1}')
  local p
  for p in "$@"; do
    grep -qxF -- "$p" <<<"$installed" || echo "$p"
  done
}

main() {
  check_os
  local missing
  # shellcheck disable=SC2046  # word splitting of the package lists is intended
  missing=$(missing_pkgs $(wanted_pkgs) | tr '\n' ' ')
  if [ -z "${missing// }" ]; then
    [ "$QUIET" = 1 ] || echo "system packages: all present"
    return 0
  fi
  local sudo=()
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      echo "install-system-deps: missing packages ($missing) and not root, no sudo: run as root." >&2
      exit 2
    fi
  fi
  echo "system packages: installing $missing"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # shellcheck disable=SC2086  # $missing is a space-separated package list
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
  echo "system packages: done"
}

main
