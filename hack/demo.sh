#!/usr/bin/env bash
# `npm run demo`: install what is needed, build, then run the lab demo (lab/demo.ts).
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/deps.sh
npx tsc -p tsconfig.json
exec node dist/lab/demo.js "$@"
