#!/usr/bin/env bash
# Builds the sidecar's container image (docs/image.md): dist/ with tsc, the build context
# dist/sidecar-image (bundled sidecar + stripped Node 20), then `podman build` of the Dockerfile,
# or $CONTAINER_ENGINE's (e.g. docker). The tag is $IMAGE (default peerpod-wg-sidecar:dev); extra
# arguments go to the build, e.g. --build-arg BASE=localhost/debian:bookworm-slim --network host.
set -euo pipefail
cd "$(dirname "$0")/.."
npx tsc -p tsconfig.json
node dist/tools/sidecar-image/main.js
exec "${CONTAINER_ENGINE:-podman}" build -t "${IMAGE:-peerpod-wg-sidecar:dev}" "$@" .
