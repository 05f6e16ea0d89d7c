#!/usr/bin/env bash
# The sidecar's container image, end to end, without a registry (docs/image.md):
#   1. podman, runc and debootstrap from apt when missing;
#   2. a Debian base image made with debootstrap from this machine's apt mirror (the tarball is
#      cached in $PEERPOD_IMAGE_CACHE, default /var/cache/peerpod-wireguard/image);
#   3. the Dockerfile built on it (podman build --network host: only apt reaches out);
#   4. the image run in a lab of namespaces and driven through its socket from outside
#      (test/image/sidecar-image-lab.ts): inspect, setup, a ping through the tunnel, teardown.
# podman keeps its store in a temp folder with its own CONTAINERS_CONF, and every container, image,
# namespace and process the test starts is removed on exit, also on failure. Where podman cannot
# run (not root, no podman), it says so loudly and exits 0; otherwise any failure exits 1.
# Prints the image size and how long each part took. Expects dist/ built (npm run build).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s.%N)
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
skip() {
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
  echo "!! image test SKIPPED: $*" >&2
  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
  echo "image test: SKIPPED ($*)"
  exit 0
}

[ "$(id -u)" = 0 ] || skip "not root: building and running the image needs root (namespaces, a private podman store)"
[ -f dist/test/image/sidecar-image-lab.js ] || { echo "image test: dist/ is not built: run npm run build" >&2; exit 1; }
missing=()
for cmd in podman runc debootstrap; do command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "image test: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq || true
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || true
fi
for cmd in podman runc debootstrap; do command -v "$cmd" >/dev/null 2>&1 || skip "no $cmd, and apt-get could not install it"; done

work=$(mktemp -d /var/tmp/peerpod-image-test.XXXXXX)
tag=$(basename "$work" | tr -cd 'a-zA-Z0-9' | tr 'A-Z' 'a-z')
base=localhost/peerpod-image-test-base:$tag
image=localhost/peerpod-wg-sidecar:$tag
podman=(podman --root "$work/podman/root" --runroot "$work/podman/runroot" --storage-driver overlay)
# podman's root default nofile limit cannot be set here without CAP_SYS_RESOURCE, and crun refuses
# this host's hybrid cgroups: both settings are required (see docs/image.md).
nofile=$(ulimit -Hn)
cat >"$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
EOF
export CONTAINERS_CONF=$work/containers.conf

cleanup() {
  local rc=$?
  # The lab driver removes its own container; these are the leftovers of an interrupted run.
  "${podman[@]}" ps -aq 2>/dev/null | while read -r id; do "${podman[@]}" rm -f -t 0 "$id" >/dev/null 2>&1 || true; done
  "${podman[@]}" rmi -f "$image" "$base" >/dev/null 2>&1 || true
  # Unmounts the store's own mounts; whatever the private store held goes with the folder.
  "${podman[@]}" system reset --force >/dev/null 2>&1 || true
  if findmnt -rn -o TARGET | grep -q "^$work"; then
    echo "image test: mounts left under $work:" >&2
    findmnt -rn -o TARGET | grep "^$work" >&2
    rc=1
  else
    rm -rf "$work"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The base: Debian minbase from this machine's mirror, which is read here and written nowhere.
cache=${PEERPOD_IMAGE_CACHE:-/var/cache/peerpod-wireguard/image}
tarball=$cache/debian-bookworm-minbase.tar
t=$(date +%s.%N)
if [ ! -s "$tarball" ]; then
  mirror=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || { echo "image test: no URIs: line in /etc/apt/sources.list.d/debian.sources" >&2; exit 1; }
  echo "image test: debootstrap bookworm (minbase) from $mirror"
  mkdir -p "$cache"
  debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
  tar -C "$work/rootfs" -cf "$tarball.tmp.$$" . && mv "$tarball.tmp.$$" "$tarball"
  rm -rf "$work/rootfs"
  echo "image test: base tarball cached in $tarball"
fi
"${podman[@]}" import -q "$tarball" "$base" >/dev/null
base_s=$(since "$t")

t=$(date +%s.%N)
node dist/tools/sidecar-image/main.js >/dev/null
"${podman[@]}" build -q --network host --build-arg BASE="$base" -t "$image" . >"$work/build.log" 2>&1 ||
  { tail -30 "$work/build.log" >&2; exit 1; }
build_s=$(since "$t")
bytes=$("${podman[@]}" image inspect --format '{{.Size}}' "$image")
size_mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1e6 }')
echo "image test: built $image: $size_mb MB"

t=$(date +%s.%N)
"${podman[@]}" run --rm --network none "$image" --help | grep -q '^peerpod-wg-sidecar: the worker-side daemon' ||
  { echo "image test: the image's default command is not the sidecar" >&2; exit 1; }
# The tools the lab does not reach (VXLAN's NOTRACK rule, conntrack, tc), each in a netns of its own.
for argv in "iptables -w 5 -t raw -A OUTPUT -d 203.0.113.10 -p udp --dport 4789 -m comment --comment peerpod -j NOTRACK" \
  "conntrack -L" "tc qdisc show dev lo" "wireguard-go --version" "sysctl -n net.ipv4.ip_forward"; do
  read -r -a a <<<"$argv"
  "${podman[@]}" run --rm --network none --cap-add NET_ADMIN --entrypoint "${a[0]}" "$image" "${a[@]:1}" >/dev/null 2>"$work/tool.err" ||
    { echo "image test: \`$argv\` fails in the image: $(cat "$work/tool.err")" >&2; exit 1; }
done
mkdir -p "$work/lab"
node dist/test/image/sidecar-image-lab.js --image "$image" --work "$work/lab" -- "${podman[@]}"
lab_s=$(since "$t")
echo "image test: passed: image $size_mb MB; base ${base_s}s, build ${build_s}s, lab ${lab_s}s, total $(since "$started")s"
