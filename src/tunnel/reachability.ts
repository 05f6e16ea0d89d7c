// Is the pod VM still there? A WireGuard peer that has nothing to send sends nothing (the pod VM
// keeps no keepalive: the worker initiates), so silence alone proves nothing. What every live peer
// answers is a handshake: after PROBE_AFTER_MS with nothing received, the health loop starts a
// fresh one; if no handshake completes and nothing arrives within VERDICT_MS, the pod VM is
// unreachable (within 30 s of its last sign of life). Anything received, or a newer handshake,
// clears it. Pure: the loop owns the clock, the device and the nudge.
//
//   silent ≥ 20 s ──probe (fresh handshake)──▶ [probing] ──10 s, no answer──▶ [unreachable]
//        ▲                                        │ answer (rx or handshake)        │ answer
//        └────────────────────────────────────────┴─────────────────────────────────┘
export const PROBE_AFTER_MS = 20_000;
export const VERDICT_MS = 10_000;

export interface ReachTrack {
  /** rx bytes last seen; a probe re-adds the peer, whose counters then start at 0. */
  rx: number;
  rxAt: number;
  /** When the probe under way started, 0 for none. */
  probeAt: number;
  /** The peer's handshake time when the probe started. */
  probeHandshake: number;
  unreachable: boolean;
}

export type ReachStep = 'none' | 'probe' | 'unreachable' | 'reachable';

export function freshReach(now: number): ReachTrack {
  return { rx: -1, rxAt: now, probeAt: 0, probeHandshake: 0, unreachable: false };
}

/** Advance `t` by what the peer reports now; says what the loop should do or log. */
export function reachStep(t: ReachTrack, peer: { rxBytes: number; lastHandshakeSec: number }, now: number): ReachStep {
  if (t.probeAt !== 0) {
    if (peer.lastHandshakeSec > t.probeHandshake || peer.rxBytes > t.rx) {
      const was = t.unreachable;
      Object.assign(t, { rx: peer.rxBytes, rxAt: now, probeAt: 0, probeHandshake: 0, unreachable: false });
      return was ? 'reachable' : 'none';
    }
    if (!t.unreachable && now - t.probeAt >= VERDICT_MS) {
      t.unreachable = true;
      return 'unreachable';
    }
    return 'none';
  }
  if (peer.lastHandshakeSec === 0) return 'none'; // connecting: the loop's nudges handle it
  if (peer.rxBytes !== t.rx) {
    t.rx = peer.rxBytes;
    t.rxAt = now;
    return 'none';
  }
  if (now - t.rxAt >= PROBE_AFTER_MS) {
    Object.assign(t, { probeAt: now, probeHandshake: peer.lastHandshakeSec, rx: 0 });
    return 'probe';
  }
  return 'none';
}
