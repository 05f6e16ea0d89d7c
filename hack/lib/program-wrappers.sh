# Sourced by hack/go-test.sh and hack/caa-check.sh: `program_wrappers DIR` writes peerpod-wg-sidecar
# and peerpod-wg-agent into DIR as small scripts that run our build (dist/), so that CAA's driver
# finds them on PATH as it would on a node.
program_wrappers() {
  local dir=$1 top
  top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  mkdir -p "$dir"
  for p in peerpod-wg-sidecar peerpod-wg-agent; do
    printf '#!/bin/sh\nexec node %s/dist/cmd/%s.js "$@"\n' "$top" "$p" >"$dir/$p"
    chmod +x "$dir/$p"
  done
}
