#!/usr/bin/env bash
# Builds the pod-VM agent artifact: dist/peerpod-wg-agent/ (bundle, node, launcher, systemd unit)
# and dist/peerpod-wg-agent-linux-x64.tar.gz, to unpack into /opt/peerpod-wg-agent of a VM image.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/deps.sh
npx tsc -p tsconfig.json
node dist/tools/podvm-image/main.js agent dist/peerpod-wg-agent dist/peerpod-wg-agent-linux-x64.tar.gz
