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
echo "== tests =="
results=.jest-results.json
rc=0
node --experimental-vm-modules --no-warnings node_modules/jest/bin/jest.js --runInBand \
  --json --outputFile="$results" "$@" || rc=$?
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
const r = JSON.parse(fs.readFileSync(process.argv[1], "utf8"));
let [passed, failed, skipped] = [r.numPassedTests, r.numFailedTests, r.numPendingTests + r.numTodoTests];
for (const f of process.argv.slice(2)) {
  if (!fs.existsSync(f)) { failed++; continue; } // a tier that wrote no counts did not finish
  const [p, x, s] = fs.readFileSync(f, "utf8").trim().split(/\s+/).map(Number);
  passed += p; failed += x; skipped += s;
}
console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$results" "${counts[@]}" || true
exit $rc
