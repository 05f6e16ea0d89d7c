// What both ends of a WireGuard tunnel read the same way from a pod-network: its wireguard section,
// the bytes WireGuard adds to each packet, and how two optional keys compare. Shared by the worker
// driver and the pod-VM driver, so that neither imports the other.
import type { PodNetwork, WireguardTunnel } from '../../podnetwork/types.js';
import type { SecretKey } from '../../wireguard/keys.js';
import { tunnelSectionOf } from '../driver.js';

/** IPv6 outer header (40) + UDP (8) + WireGuard's data header and tag (32): the worst case. */
export const WIREGUARD_OVERHEAD = 80;

/** The WireGuard options of a pod-network, or a clear error naming the field. */
export function wireguardOf(p: PodNetwork, netns: string): WireguardTunnel {
  return tunnelSectionOf(p, 'wireguard', { op: 'setup', netns });
}

/** Two keys that may be absent are the same when both are absent or both hold the same bytes. */
export function sameSecret(a: SecretKey | null, b: SecretKey | null): boolean {
  return a === null || b === null ? a === b : a.equals(b);
}
