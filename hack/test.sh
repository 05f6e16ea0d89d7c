#!/usr/bin/env bash
# The whole test run: dependencies, type-check and build, lint, then every tier of tests
# (unit, contract, lab) and the container image test (hack/image-test.sh). Lab and image tests
# need root; without it they skip and say so loudly. Extra arguments go to jest (for example a
# path pattern), and then the image test is left out.
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
# The container image, built and run in a lab (hack/image-test.sh): one more test, counted below.
# A jest pattern asks for a subset, which leaves it out.
image=none
if [ $# -eq 0 ]; then
  echo "== image test =="
  image_log=$(mktemp)
  if bash hack/image-test.sh 2>&1 | tee "$image_log"; then
    if grep -q '^image test: SKIPPED' "$image_log"; then image=skipped; else image=passed; fi
  else
    image=failed
    rc=1
  fi
  rm -f "$image_log"
fi
# CI reads a plain closing line; jest's own summary is not one it understands.
node -e '
const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
const image = process.argv[2];
const passed = r.numPassedTests + (image === "passed" ? 1 : 0);
const failed = r.numFailedTests + (image === "failed" ? 1 : 0);
const skipped = r.numPendingTests + r.numTodoTests + (image === "skipped" ? 1 : 0);
console.log(`${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ""));
' "$results" "$image" || true
exit $rc
