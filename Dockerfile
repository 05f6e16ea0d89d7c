# The worker-side daemon peerpod-wg-sidecar as a container image (docs/image.md). Build the
# context first (`bash hack/build-image.sh` does both): dist/sidecar-image holds the bundled sidecar
# and a stripped Node 20, so this build needs apt and nothing else from the network.
#
# BASE only provides apt and Debian's packages (wireguard-go, iproute2, iptables, conntrack); the
# image itself is FROM scratch with just the programs the sidecar runs and their libraries.
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS rootfs
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends wireguard-go iproute2 iptables conntrack procps util-linux coreutils >/dev/null \
 && rm -rf /var/lib/apt/lists/*
COPY dist/sidecar-image/ /opt/peerpod-wg-sidecar/
COPY packaging/image/rootfs.sh /usr/local/sbin/rootfs.sh
RUN /usr/local/sbin/rootfs.sh /rootfs

FROM scratch
COPY --from=rootfs /rootfs/ /
ENV PATH=/usr/sbin:/usr/bin
ENTRYPOINT ["/opt/peerpod-wg-sidecar/bin/node", "/opt/peerpod-wg-sidecar/lib/peerpod-wg-sidecar.mjs"]
