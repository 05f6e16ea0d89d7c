// (C) Copyright Confidential Containers Contributors
// SPDX-License-Identifier: Apache-2.0

// Package wireguard is the "wireguard" tunnel type: an encrypted, NAT-friendly alternative to
// vxlan between a worker node's pod netns and its peer-pod VM.
//
// The work is done outside CAA's process, by peerpod-wireguard's programs; this package only
// hands CAA's calls to them:
//
//   - Worker (NewWorkerNodeTunneler): Configure, Setup and Teardown go to peerpod-wg-sidecar, the
//     daemon next to CAA that owns the tunnels, their keys and state, and heals them. By default
//     it is reached over its unix socket (WG_SOCKET). With PEERPOD_WG_WORKER_MODE=exec each call
//     instead runs `peerpod-wg-sidecar call` as a child of the calling thread, so the WireGuard
//     device is born in the caller's network namespace even when no daemon runs there (CAA's
//     tuntest, where the worker is a named netns).
//   - Pod VM (NewPodNodeTunneler): Setup and Teardown run peerpod-wg-agent, which creates the
//     WireGuard interface in the VM's root netns (where its UDP socket stays), moves it into the
//     pod netns under the pod's interface name, and gives it the pod IP and MTU. CAA's podnode
//     adds the routes and neighbours right after, as it does for vxlan.
//
// The worker makes both key pairs (the channel to the VM is one-way); our section of the
// pod-network, Config.WireGuard, carries the VM's private key to the VM in apf.json. Copies of
// apf.json kept on the worker must drop it: see WithoutSecrets.
package wireguard
