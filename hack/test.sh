#!/usr/bin/env bash
# The whole test run: dependencies, type-check and build, lint, then every tier of tests
# (unit, contract, lab). Lab tests need root; without it they skip and say so loudly.
# Extra arguments go to jest (for example a path pattern).
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/deps.sh
echo "== build (tsc, strict) =="
rm -rf dist
npx tsc -p tsconfig.json
echo "== lint =="
npx eslint .
echo "== tests =="
results=.jest-results.json
rc=0
node --experimental-vm-modules --no-warnings node_modules/jest/bin/jest.js --runInBand \
  --json --outputFile="$results" "$@" || rc=$?
echo "== go: the CAA driver (integrations/caa) =="
go_counts=.go-test-counts
rm -f "$go_counts"
GO_TEST_COUNTS=$go_counts bash hack/go-test.sh || rc=$?
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
' "$results" "$go_counts" || true
exit $rc
