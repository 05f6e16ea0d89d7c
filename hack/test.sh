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
# CI reads a plain closing line; jest's own summary is not one it understands.
node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const skipped = r.numPendingTests + r.numTodoTests;
console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$results" || true
exit $rc
