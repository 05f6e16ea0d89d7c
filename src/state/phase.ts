// The per-pod state machine: which phase a pod's record may go to from which, and why. The drivers
// (../tunnel/*/worker.ts) and the sidecar (../sidecar/service.ts) write the phases; this module
// owns the rules, and checkedPodStore() holds every record write to them, so a write that breaks
// them (a bug: a teardown resurrected by a health check, say) fails loudly instead of landing.
//
//   (no record) ──inspect, or setup adopting a configured (pending) tunnel──▶ [inspected]
//
//   [inspected] ──setup──▶ [setting-up] ──network converged (setup; reconcile after a crash)──▶ [ready]
//        ▲                  │    ▲                                                              │
//        │                  │    └──────────setup again (CAA's retry, new pod VM IPs)───────────┤
//        └──setup failed, or reconcile could not finish it: network rolled back, keys kept      │
//                                                                                                │
//   [inspected], [setting-up], [ready] ──pod netns confirmed gone (reconcile, health loop)──▶ [orphaned]
//   [orphaned]: no data plane, record and keys kept ──setup (a netns at that path again)──▶ [setting-up]
//
//   any phase ──teardown starts (CAA's teardown; a VXLAN pod orphaned)──▶ [tearing-down]
//   [tearing-down] ──everything removed, the state folder last──▶ (no record)
//   [tearing-down] is final: after a crash the sidecar's reconcile resumes the teardown, and an
//   inspect or setup for that netns finishes it first; nothing brings the pod back.
//
//   any phase ──▶ itself: a field update (a repeated inspect, the pod's name).
//
// Not phases, because they are not durable: a ready tunnel's health (connecting, up, stale, down,
// and unreachable, which the health loop decides in memory: ../tunnel/reachability.ts) is read
// from the device on every tick. "could not check" (a netns or device that does not answer) is
// no transition at all.
//
// Removal is not checked: wgctl --direct tears down from any phase without the tearing-down mark
// (no daemon there to resume it; the operator repeats the command).
import { PeerpodError, isPeerpodError } from '../errors.js';
import type { PendingTunnel, PodPhase, PodRecord, PodStore } from './store.js';

/** From each phase (or none: no record), the phases a record write may set. */
export const PHASE_TRANSITIONS: { readonly [F in PodPhase | 'none']: readonly PodPhase[] } = {
  none: ['inspected'],
  inspected: ['inspected', 'setting-up', 'orphaned', 'tearing-down'],
  'setting-up': ['setting-up', 'ready', 'inspected', 'orphaned', 'tearing-down'],
  ready: ['ready', 'setting-up', 'orphaned', 'tearing-down'],
  orphaned: ['orphaned', 'setting-up', 'tearing-down'],
  'tearing-down': ['tearing-down'],
};

export function isLegalTransition(from: PodPhase | null, to: PodPhase): boolean {
  return PHASE_TRANSITIONS[from ?? 'none'].includes(to);
}

/** Throws ESTATE (op phase) for a transition the diagram above does not have. */
export function checkTransition(from: PodPhase | null, to: PodPhase, netns: string): void {
  if (isLegalTransition(from, to)) return;
  // The one a caller can meet without a bug: wgctl --direct on a pod whose teardown a crash cut short.
  const why = from === 'tearing-down' ? 'its teardown is unfinished: run the teardown again first' : 'this is a bug';
  throw new PeerpodError('ESTATE', `pod netns ${netns}: no phase transition ${from ?? '(no record)'} → ${to} (see src/state/phase.ts); ${why}`, {
    op: 'phase',
    netns,
  });
}

const CHECKED = Symbol('phase-checked');

/**
 * `store` with every record write checked against the state machine (one read before each write;
 * writes are rare). A record that cannot be read (corrupt) is no known phase, and is not checked.
 * Wrapping a checked store again gives it back.
 */
export function checkedPodStore(store: PodStore): PodStore {
  if ((store as { [CHECKED]?: true })[CHECKED] === true) return store;
  const phaseOf = async (id: string): Promise<PodPhase | null | undefined> => {
    try {
      return (await store.read(id))?.phase ?? null;
    } catch (e) {
      if (isPeerpodError(e, 'ESTATE')) return undefined;
      throw e;
    }
  };
  const checked: PodStore & { [CHECKED]: true } = {
    [CHECKED]: true,
    dir: store.dir,
    read: (id) => store.read(id),
    async write(record: PodRecord) {
      const from = await phaseOf(record.id);
      if (from !== undefined) checkTransition(from, record.phase, record.netns);
      await store.write(record);
    },
    list: () => store.list(),
    problems: () => store.problems(),
    remove: (id) => store.remove(id),
    readKey: (id, name, kind) => store.readKey(id, name, kind),
    writeKey: (id, name, key) => store.writeKey(id, name, key),
    removeKey: (id, name) => store.removeKey(id, name),
    writePending: (p: PendingTunnel, keys) => store.writePending(p, keys),
    readPending: (id) => store.readPending(id),
    listPending: () => store.listPending(),
    async adoptPending(pendingId: string, record: PodRecord) {
      // The store refuses a pod that already has state; a new record starts where inspect does.
      checkTransition(null, record.phase, record.netns);
      return store.adoptPending(pendingId, record);
    },
    removePending: (id) => store.removePending(id),
  };
  return checked;
}
