#!/usr/bin/env bash
# The by-hand check of the CAA side against CAA's real tree (docs/caa.md records a run):
#   hack/caa-check.sh <CAA git dir or clone> [commit]
# In a scratch clone of CAA at the commit (default HEAD): copies integrations/caa/src over CAA's
# src/, applies integrations/caa/patches/*.patch with `git apply`, then, with Debian's Go and Go
# packages (GOPATH mode, offline; ../shared/research/caa-integration.md), runs `go vet` and
# `go test` of CAA's pkg/podnetwork/... : CAA's tuntest for vxlan and for wireguard (dedicated
# false and true), CAA's podnetwork flow with wireguard (integrations/caa/check), CAA's own
# podnetwork tests. Root, and a build of ours (npm run build), are needed for the netns tests.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib/program-wrappers.sh
top=$PWD
src=${1:?usage: hack/caa-check.sh <CAA git dir or clone> [commit]}
rev=${2:-HEAD}
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends golang-go \
  golang-github-vishvananda-netlink-dev golang-github-vishvananda-netns-dev golang-golang-x-sys-dev \
  golang-golang-x-exp-dev golang-github-coreos-go-iptables-dev golang-github-stretchr-testify-dev >/dev/null
work=$(mktemp -d /tmp/caa-check.XXXXXX)
trap 'rm -rf "$work"' EXIT
git clone -q --no-checkout "$src" "$work/caa"
git -C "$work/caa" checkout -q "$rev"
echo "CAA commit: $(git -C "$work/caa" rev-parse HEAD) ($(git -C "$work/caa" log -1 --format=%cd --date=short))"

echo "== the overlay and the patches =="
cp -r integrations/caa/src/. "$work/caa/src/"
for p in integrations/caa/patches/*.patch; do
  git -C "$work/caa" apply --whitespace=error-all "$top/$p"
  echo "applied $(basename "$p")"
done
cp integrations/caa/check/*_test.go "$work/caa/src/cloud-api-adaptor/pkg/podnetwork/"
git -C "$work/caa" status --short
echo "== gofmt of every Go file we add or change =="
changed=$(git -C "$work/caa" status --porcelain | awk '{print $2}' | grep '\.go$' || true)
for f in $changed; do
  [ -d "$work/caa/$f" ] && continue
  out=$(gofmt -l -e "$work/caa/$f") || { echo "gofmt failed on $f"; exit 1; }
  [ -z "$out" ] || { echo "not gofmt-clean: $f"; exit 1; }
done
find "$work/caa/src/cloud-api-adaptor/pkg/podnetwork/tunneler/wireguard" -name '*.go' -exec gofmt -l -e {} + | tee "$work/unformatted"
[ ! -s "$work/unformatted" ] || exit 1
echo "ok"

gp=$work/gopath/src/github.com/confidential-containers/cloud-api-adaptor/src/cloud-api-adaptor
mkdir -p "$gp/pkg/util" "$gp/pkg/internal"
cp -r "$work/caa/src/cloud-api-adaptor/pkg/podnetwork" "$gp/pkg/"
cp -r "$work/caa/src/cloud-api-adaptor/pkg/util/netops" "$gp/pkg/util/"
cp -r "$work/caa/src/cloud-api-adaptor/pkg/internal/testing" "$gp/pkg/internal/"
export GO111MODULE=off GOPATH=$work/gopath:/usr/share/gocode GOPROXY=off GOSUMDB=off GOFLAGS=
bin=$work/bin
program_wrappers "$bin"
cd "$gp"
echo "== go vet ./pkg/podnetwork/... (our driver compiled unchanged against CAA's real tunneler) =="
go vet ./pkg/podnetwork/...
echo "ok"
echo "== go test ./pkg/podnetwork/... =="
PATH="$bin:$PATH" go test -count=1 -v ./pkg/podnetwork/... 2>&1 | grep -E '^(=== RUN|--- |PASS|FAIL|ok|\?)'
