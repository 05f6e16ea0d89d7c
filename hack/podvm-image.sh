#!/usr/bin/env bash
# Builds (or takes from the cache) the local pod VM's kernel and initramfs and prints where they
# are. Cache: $PEERPOD_PODVM_CACHE, default /var/cache/peerpod-wireguard/podvm. Needs root (apt).
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/deps.sh
npx tsc -p tsconfig.json
node dist/tools/podvm-image/main.js image
