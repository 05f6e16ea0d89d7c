// What both ends of a WireGuard tunnel read the same way from a pod-network: its wireguard section,
// the bytes WireGuard adds to each packet, the tunnel MTU that follows (and IPv6's floor under it),
// and how two optional keys compare. Shared by the worker driver and the pod-VM driver, so that
// neither imports the other. Pure; where the underlay MTU comes from is the callers' business.
import { PeerpodError, type ErrorContext } from '../../errors.js';
import { IPV6_MIN_MTU, type PodNetwork, type WireguardTunnel } from '../../podnetwork/types.js';
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

/** The tunnel MTU: the pod's, no more than `max`, and no more than the underlay leaves after WireGuard's overhead. */
export function tunnelMtu(podMtu: number, underlayMtu: number, max = 65535): number {
  return Math.min(podMtu, max, underlayMtu - WIREGUARD_OVERHEAD);
}

/** How a refused MTU is explained: where it applies, what it came from, who has the IPv6 address. */
export interface Ipv6MtuWording {
  /** "for pod netns /run/netns/x", "here". */
  where: string;
  /** "pod MTU 1500, underlay MTU − 80". */
  from: string;
  /** "the pod", "pod-network.podip". */
  holder: string;
  /** What to do about it, after a colon; none when the caller cannot tell. */
  advice?: string;
}

/**
 * Refuse a tunnel MTU below IPv6's minimum (1280) when the pod has an IPv6 address (`v6`, as the
 * message should print it; undefined when the pod has none): such a tunnel could not carry it.
 */
export function checkIpv6Mtu(mtu: number, v6: string | undefined, wording: Ipv6MtuWording, ctx: ErrorContext): void {
  if (v6 === undefined || mtu >= IPV6_MIN_MTU) return;
  throw new PeerpodError(
    'EINVAL',
    `the tunnel MTU ${wording.where} would be ${mtu} (${wording.from}), below ${IPV6_MIN_MTU}, IPv6's minimum, ` +
      `but ${wording.holder} has the IPv6 address ${v6}${wording.advice === undefined ? '' : `: ${wording.advice}`}`,
    { ...ctx, field: 'mtu' },
  );
}
