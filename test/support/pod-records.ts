// Pod records and pending tunnels as tests need them: valid, with fresh public keys, and any field
// overridden. Shared by the pod store contract, the store and sidecar unit tests and their fakes.
import { pendingIdOf, podIdOf, type PendingTunnel, type WireguardPodRecord } from '../../src/state/store.js';
import { generateKeyPair } from '../../src/wireguard/keys.js';

/** A WireGuard pod's record for the pod netns at `netns`, phase 'inspected'. */
export function wireguardRecord(netns: string, over: Partial<WireguardPodRecord> = {}): WireguardPodRecord {
  return {
    id: podIdOf(netns),
    netns,
    tunnelType: 'wireguard',
    podInterface: 'eth0',
    device: `pwg${podIdOf(netns)}`,
    podIP: '198.18.1.21',
    mtu: 1420,
    podVmIPs: ['203.0.113.10'],
    phase: 'inspected',
    updatedAt: new Date(0).toISOString(),
    vmPublicKey: generateKeyPair().publicKey.toBase64(),
    workerPublicKey: generateKeyPair().publicKey.toBase64(),
    vmListenPort: 51900,
    keepalive: 25,
    ...over,
  };
}

/** A pending tunnel for the worker key `workerPublicKey` (its id follows from it). */
export function pendingTunnel(workerPublicKey: string, over: Partial<PendingTunnel> = {}): PendingTunnel {
  return {
    id: pendingIdOf(workerPublicKey),
    vmPublicKey: generateKeyPair().publicKey.toBase64(),
    workerPublicKey,
    vmListenPort: 51900,
    keepalive: 25,
    mtu: 1420,
    createdAt: new Date(0).toISOString(),
    ...over,
  };
}
