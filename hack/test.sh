#!/usr/bin/env bash
# The whole test run: dependencies, type-check and build, lint, then every tier of tests
# (unit, contract, lab), the Go driver for CAA (hack/go-test.sh) and the container image test
# (hack/image-test.sh). Lab, Go lab and image tests need root; without it they skip and say so
# loudly. Extra arguments go to jest (for example a path pattern), and then the Go and image tiers
# are left out.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/deps.sh
echo "== build (tsc, strict) =="
rm -rf dist
npx tsc -p tsconfig.json
echo "== lint =="
npx eslint .
echo "== imports: src/ is only the product, no loops =="
node hack/check-imports.mjs
# The unit tier (dist/test/unit: pure code, fakes, contract suites of the fakes) needs no root, and
# runs with every capability dropped when we are root, so that nothing in it can quietly start
# needing root. The rest (contract suites of real implementations, lab tests) runs as root. A jest pattern
# in the arguments runs that subset alone, as root.
results=.jest-results.json
unit_results=.jest-unit-results.json
rc=0
jest=(node --experimental-vm-modules --no-warnings node_modules/jest/bin/jest.js)
rm -f "$results" "$unit_results"
if [ $# -eq 0 ]; then
  echo "== tests: unit tier (no root) =="
  unit_start=$(date +%s.%N)
  if [ "$(id -u)" = 0 ]; then
    # Root without its privileges: no capabilities, and none regained on exec (securebits noroot),
    # so namespaces, links, raw sockets and other users' files are out of reach, while the tree,
    # owned by root, stays readable wherever CI cloned it.
    setpriv --securebits=+noroot,+noroot_locked,+no_setuid_fixup,+no_setuid_fixup_locked \
      --bounding-set=-all --inh-caps=-all -- "${jest[@]}" --json --outputFile="$unit_results" dist/test/unit || rc=$?
  else
    "${jest[@]}" --json --outputFile="$unit_results" dist/test/unit || rc=$?
  fi
  echo "unit tier: $(node -e 'console.log((Number(process.argv[2]) - Number(process.argv[1])).toFixed(1))' "$unit_start" "$(date +%s.%N)") s, without root privileges"
  echo "== tests: contract and lab tiers =="
  "${jest[@]}" --runInBand --json --outputFile="$results" --testPathIgnorePatterns '/dist/test/unit/' || rc=$?
else
  echo "== tests =="
  "${jest[@]}" --runInBand --json --outputFile="$results" "$@" || rc=$?
fi
# The other tiers, each counted in the closing line: the Go driver for CAA (hack/go-test.sh) and
# the container image built and run in a lab (hack/image-test.sh). A jest pattern asks for a
# subset, which leaves them out.
counts=()
if [ $# -eq 0 ]; then
  echo "== go: the CAA driver (integrations/caa) =="
  counts+=(.go-test-counts)
  rm -f .go-test-counts
  GO_TEST_COUNTS=.go-test-counts bash hack/go-test.sh || rc=$?
  echo "== image test =="
  counts+=(.image-test-counts)
  image_log=$(mktemp)
  if bash hack/image-test.sh 2>&1 | tee "$image_log"; then
    if grep -q '^image test: SKIPPED' "$image_log"; then echo "0 0 1"; else echo "1 0 0"; fi >.image-test-counts
  else
    echo "0 1 0" >.image-test-counts
    rc=1
  fi
  rm -f "$image_log"
fi
# CI reads a plain closing line; jest's own summary is not one it understands. It sums every tier.
node -e '
const fs = require("fs");
let [passed, failed, skipped] = [0, 0, 0];
const [jestFiles, tierFiles] = [process.argv[1].split(",").filter(Boolean), process.argv.slice(2)];
for (const f of jestFiles) {
  if (!fs.existsSync(f)) { failed++; continue; } // a jest run that wrote no results did not finish
  const r = JSON.parse(fs.readFileSync(f, "utf8"));
  passed += r.numPassedTests; failed += r.numFailedTests; skipped += r.numPendingTests + r.numTodoTests;
}
for (const f of tierFiles) {
  if (!fs.existsSync(f)) { failed++; continue; } // a tier that wrote no counts did not finish
  const [p, x, s] = fs.readFileSync(f, "utf8").trim().split(/\s+/).map(Number);
  passed += p; failed += x; skipped += s;
}
console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$results$([ $# -eq 0 ] && echo ",$unit_results")" "${counts[@]}" || true
exit $rc
