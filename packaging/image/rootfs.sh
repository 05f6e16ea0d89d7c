#!/bin/sh
# Run by the Dockerfile's first stage: copies into $1 the few programs the sidecar runs, the shared
# libraries they load (found by ldd, so nothing is guessed) and the files they read, for a final
# image FROM scratch. The programs are those the sidecar execs (src/netns/netns.ts, the WireGuard
# backends, the VXLAN driver): wireguard-go, ip, tc, iptables (+ its extensions), sysctl,
# nsenter, cat, true; and conntrack, for people debugging a node. Plus node and the bundle.
set -eu
out=$1
# Merged /usr, as Debian has it: the loader's path /lib64/ld-linux-x86-64.so.2 must resolve.
mkdir -p "$out/usr/bin" "$out/usr/sbin" "$out/usr/lib" "$out/usr/lib64"
for d in bin sbin lib lib64; do ln -s "usr/$d" "$out/$d"; done
mkdir -p "$out/tmp" "$out/run" "$out/var/lib/peerpod-wireguard" "$out/etc"
chmod 1777 "$out/tmp"
ln -s ../run "$out/var/run"

copy() { # copy PATH [AS]: the file's content (links followed) at AS (default PATH) under $out
  mkdir -p "$out$(dirname "${2:-$1}")"
  cp -L "$1" "$out${2:-$1}"
}

programs="/usr/bin/wireguard-go /usr/sbin/ip /usr/sbin/tc /usr/sbin/sysctl /usr/bin/nsenter
/usr/bin/cat /usr/bin/true /usr/sbin/conntrack /opt/peerpod-wg-sidecar/bin/node"
for p in $programs; do
  [ -x "$p" ] || { echo "rootfs.sh: $p is missing" >&2; exit 1; }
  copy "$p"
done
# iptables is one multi-call binary; it picks its mode from its name. The nft flavour, as on the
# Debian hosts of today: it shares the kernel's nf_tables with iptables-nft on the host.
xtables=$(readlink -f /usr/sbin/xtables-nft-multi)
copy "$xtables" /usr/sbin/xtables-nft-multi
for n in iptables iptables-save iptables-restore ip6tables; do ln -s xtables-nft-multi "$out/usr/sbin/$n"; done
# Extensions (TCPMSS for the MSS clamp, NOTRACK for VXLAN) are loaded with dlopen: take them all.
ext=$(readlink -f "$(dirname "$(ldd "$xtables" | awk '/libxtables/ {print $3}')")/xtables")
mkdir -p "$out$(dirname "$ext")" && cp -a "$ext" "$out$ext"
cp -a /opt/peerpod-wg-sidecar/lib "$out/opt/peerpod-wg-sidecar/"
for f in /etc/protocols /etc/ethertypes; do [ -f "$f" ] && copy "$f"; done
[ -d /etc/iproute2 ] && cp -a /etc/iproute2 "$out/etc/"

# The shared libraries (and the loader) of every ELF file we copied, at the paths ldd names.
find "$out" -type f \( -perm -u+x -o -name '*.so*' -o -name '*.node' \) | while read -r f; do
  ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'
done | sort -u | while read -r lib; do
  [ -e "$out$lib" ] || copy "$lib"
done
# Root's entry, so that tools asking who they are get an answer.
echo 'root:x:0:0:root:/root:/nonexistent' >"$out/etc/passwd"
echo 'root:x:0:' >"$out/etc/group"
