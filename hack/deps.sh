#!/usr/bin/env bash
# Installs everything the demo and the tests need on a fresh Debian machine that has only Node and npm:
# the Debian packages (through apt-get, only when one is missing) and the npm packages (npm ci, only
# when the lockfile changed since the last install). Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

# command -> Debian package that provides it
declare -A need=(
  [wireguard-go]=wireguard-go
  [wg]=wireguard-tools
  [ip]=iproute2
  [tc]=iproute2
  [iperf3]=iperf3
  [iptables]=iptables
  [conntrack]=conntrack
  [nsenter]=util-linux
  [ping]=iputils-ping
  [sha256sum]=coreutils
  [ps]=procps
  # The local pod VM (tools/podvm-image/, src/provider/local/): qemu, the NoCloud seed, a static
  # busybox for the initramfs, depmod/modprobe for the guest kernel's modules. The kernel itself
  # is downloaded (apt-get download) and unpacked into the image cache, never installed.
  [qemu-system-x86_64]=qemu-system-x86
  [genisoimage]=genisoimage
  [busybox]=busybox-static
  [depmod]=kmod
  [modprobe]=kmod
  # The CAA side (integrations/caa): Debian's Go 1.19 vets and tests our driver (hack/go-test.sh).
  [go]=golang-go
  # strip: node goes into the initramfs without its debug symbols (99 → 86 MB).
  [strip]=binutils
)
missing=()
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
# The benchmark's control-plane columns use GNU time; bash's builtin `time` would hide it.
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "hack/deps.sh: missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "hack/deps.sh: installing Debian packages: $(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --no-install-recommends: wireguard-tools recommends a kernel image, which we must not install.
  apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
fi

stamp=node_modules/.peerpod-lock-hash
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "hack/deps.sh: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
fi
