#!/usr/bin/env bash
# Optional, by hand: applies integrations/caa/patches/0006 to a copy of CAA's checkout, renders the
# real patched daemonset.yaml (hack/caa-chart-render: Go text/template + sprig, no Helm needed) for
# a few settings, and validates each DaemonSet with kubernetes-models. CI cannot run it (no copy of
# CAA); test/unit/chart.test.ts is the offline check. Needs Debian's golang-go,
# golang-github-masterminds-sprig-dev and golang-github-ghodss-yaml-dev, and `npm ci` done.
# Usage: hack/caa-chart-check.sh CAA_CHECKOUT [OUT_DIR]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
caa=${1:?usage: hack/caa-chart-check.sh CAA_CHECKOUT [OUT_DIR]}
work=$(mktemp -d)
out=${2:-$work/out}
trap 'rm -rf "$work"' EXIT
mkdir -p "$out" "$work/src/github.com/Masterminds/sprig" "$work/src/github.com/Masterminds/semver"

# Debian installs sprig and semver without their /v3 import paths.
ln -s /usr/share/gocode/src/github.com/Masterminds/sprig "$work/src/github.com/Masterminds/sprig/v3"
ln -s /usr/share/gocode/src/github.com/Masterminds/semver "$work/src/github.com/Masterminds/semver/v3"
cp -r "$repo/hack/caa-chart-render" "$work/src/"
(cd "$work/src/caa-chart-render" && GO111MODULE=off GOPATH="$work:/usr/share/gocode" GOPROXY=off GOFLAGS= go build -o "$work/render" .)

cp -a "$caa" "$work/caa"
git -C "$work/caa" apply "$repo/integrations/caa/patches/0006-chart-wireguard-sidecar.patch"
chart=$work/caa/src/cloud-api-adaptor/install/charts/peerpods
render() { "$work/render" "$chart" daemonset.yaml "$@"; }
surge=(daemonset.updateStrategy.maxSurge=0 daemonset.updateStrategy.maxUnavailable=1)

# Off (the default) must be exactly what the unpatched chart renders.
"$work/render" "$caa/src/cloud-api-adaptor/install/charts/peerpods" daemonset.yaml -f "$chart/providers/aws.yaml" > "$out/unpatched-aws.yaml"
render -f "$chart/providers/aws.yaml" > "$out/off-aws.yaml"
cmp "$out/unpatched-aws.yaml" "$out/off-aws.yaml" && echo "wireguard.enabled=false: identical to the unpatched chart"

render -f "$chart/providers/aws.yaml" wireguard.enabled=true "${surge[@]}" > "$out/on-aws.yaml"
render -f "$chart/providers/azure.yaml" wireguard.enabled=true "${surge[@]}" wireguard.workerCidr=203.0.113.7/32 > "$out/on-azure-workercidr.yaml"
render -f "$chart/providers/aws.yaml" wireguard.enabled=true "${surge[@]}" wireguard.backend=kernel wireguard.privileged=false > "$out/on-aws-kernel.yaml"
render -f "$chart/providers/libvirt.yaml" wireguard.enabled=true "${surge[@]}" > "$out/on-libvirt.yaml"

# Settings the chart must refuse.
for refused in "-f $chart/providers/aws.yaml wireguard.enabled=true" \
               "-f $chart/providers/libvirt.yaml wireguard.enabled=true ${surge[*]} wireguard.workerCidr=203.0.113.7/32" \
               "-f $chart/providers/aws.yaml wireguard.enabled=true ${surge[*]} providerConfigs.aws.TUNNEL_TYPE=vxlan"; do
  # shellcheck disable=SC2086 # word splitting intended
  if render $refused > /dev/null 2> "$work/err"; then echo "not refused: $refused" >&2; exit 1; fi
  echo "refused: $(sed 's/.*error calling fail: //' "$work/err")"
done

cd "$repo"
node --input-type=module - "$out"/*.yaml <<'EOF'
import { readFileSync } from 'node:fs';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { parse } from 'yaml';
for (const file of process.argv.slice(2)) {
  const ds = parse(readFileSync(file, 'utf8'));
  new DaemonSet(ds).validate();
  const spec = ds.spec.template.spec;
  const volumes = spec.volumes.map((v) => v.name);
  for (const c of spec.containers) {
    for (const m of c.volumeMounts ?? []) if (!volumes.includes(m.name)) throw new Error(`${file}: ${c.name} mounts ${m.name}, which is no volume`);
  }
  if (new Set(volumes).size !== volumes.length) throw new Error(`${file}: a volume name twice`);
  console.log(`valid: ${file.replace(/.*\//, '')}: ${spec.containers.map((c) => c.name).join(' + ')}, ${volumes.length} volumes`);
}
EOF
