#!/usr/bin/env bash
# The Go side of the CAA integration (integrations/caa), offline: `go vet` and `go test` of our
# driver against the stand-in of CAA's tunneler package (integrations/caa/standin), in a GOPATH
# laid out at CAA's import paths, with Debian's Go (1.19). Then, as root, the lab test
# (integrations/caa/labtest): CAA's call sequence with the real sidecar and agent from dist/.
# Prints "go: N passed, N failed" and writes the counts to $GO_TEST_COUNTS when that is set.
# CAA's real tree is not here (CI cannot fetch it): docs/caa.md shows the same code run there.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib/program-wrappers.sh
top=$PWD
if ! command -v go >/dev/null 2>&1; then
  echo "hack/go-test.sh: go is missing: hack/deps.sh installs golang-go" >&2
  exit 1
fi
work=$(mktemp -d /tmp/peerpod-go.XXXXXX)
trap 'rm -rf "$work"' EXIT
caa=$work/gopath/src/github.com/confidential-containers/cloud-api-adaptor/src/cloud-api-adaptor
lab=$work/gopath/src/peerpod-wireguard/caalab
mkdir -p "$caa" "$(dirname "$lab")"
cp -r integrations/caa/standin/pkg "$caa/"
cp -r integrations/caa/src/cloud-api-adaptor/pkg/podnetwork/tunneler/wireguard "$caa/pkg/podnetwork/tunneler/"
cp -r integrations/caa/labtest "$lab"
export GO111MODULE=off GOPATH=$work/gopath GOPROXY=off GOSUMDB=off GOFLAGS= GOTOOLCHAIN=local
export GOCACHE=${GOCACHE:-/var/cache/peerpod-wireguard/go-build}
mkdir -p "$GOCACHE" 2>/dev/null || export GOCACHE=$work/cache

# Wrappers, so that the driver finds our programs as it would on a node: on PATH.
bin=$work/bin
program_wrappers "$bin"

out=$work/go-test.out
rc=0
echo "== go vet (driver against the tunneler stand-in; lab test) =="
(cd "$caa" && go vet ./pkg/podnetwork/tunneler/wireguard/) || rc=$?
(cd "$lab" && go vet .) || rc=$?
echo "== go test: the driver (unit) =="
(cd "$caa" && go test -count=1 -v ./pkg/podnetwork/tunneler/wireguard/ 2>&1 | tee -a "$out") || rc=$?
if [ "$(id -u)" = 0 ] && [ -f dist/cmd/peerpod-wg-sidecar.js ]; then
  echo "== go test: CAA's call sequence with the real sidecar and agent (root, namespaces) =="
  (cd "$lab" && PATH="$bin:$PATH" go test -count=1 -v -timeout 10m . 2>&1 | tee -a "$out") || rc=$?
else
  echo "!!! hack/go-test.sh: SKIPPED the Go lab test: it needs root and a build (dist/) !!!"
fi
passed=$(grep -c -- '^\s*--- PASS' "$out" || true)
# A package that does not build fails without a "--- FAIL" line: count its "FAIL <package>" too.
failed=$(( $(grep -c -- '^\s*--- FAIL' "$out" || true) + $(grep -cE '^FAIL\s+\S+\s+\[' "$out" || true) ))
skipped=$(grep -c -- '^\s*--- SKIP' "$out" || true)
echo "go: $passed passed, $failed failed, $skipped skipped"
[ -n "${GO_TEST_COUNTS:-}" ] && echo "$passed $failed $skipped" >"$GO_TEST_COUNTS"
if [ "$rc" = 0 ] && [ "$failed" != 0 ]; then rc=1; fi
exit $rc
