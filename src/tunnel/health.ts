// A tunnel's health, derived from what the device reports: the age of the latest handshake and
// whether the device answers at all. The thresholds follow WireGuard's own timers: a session is
// unusable 180 s (REJECT_AFTER_TIME) after its handshake, and while traffic flows a handshake is
// renewed every 120 s (REKEY_AFTER_TIME), so an up tunnel is never older than about 2.5 min.
import type { Peer } from '../wireguard/config.js';

/**
 * What status shows: the four from the device, unreachable (the sidecar's health loop got no
 * answer from the pod VM; see reachability.ts), gone (the pod netns is gone, the keys wait for
 * teardown) and corrupt (a record that could not be read; see PodStore.problems).
 */
export type TunnelState = 'connecting' | 'up' | 'stale' | 'down' | 'unreachable' | 'gone' | 'corrupt';

export const REJECT_AFTER_SECONDS = 180;

export function tunnelState(peer: Peer | null, nowSec: number): TunnelState {
  if (peer === null) return 'down';
  if (peer.lastHandshakeSec === 0) return 'connecting';
  return nowSec - peer.lastHandshakeSec < REJECT_AFTER_SECONDS ? 'up' : 'stale';
}
