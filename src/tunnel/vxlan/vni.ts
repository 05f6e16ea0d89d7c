// VXLAN network identifiers on the worker: which ones are taken, and the next free one. CAA derives
// a pod's VNI from an index it keeps only in memory, so after a restart it hands out VNIs that live
// tunnels still use (CAA issues #3055, #3280). Here the VNI is persisted in the pod's record, and a
// new one is chosen only after looking at every record and every VXLAN link the worker can see.
// Pure: reading the records and the links is the driver's job.
import { PeerpodError } from '../../errors.js';
import type { PodRecord } from '../../state/store.js';

/** IANA's VXLAN port; CAA's VXLAN_PORT default. */
export const DEFAULT_VXLAN_PORT = 4789;
/** What Linux uses when a VXLAN device is made without `dstport` (and Go omitted a zero port). */
export const KERNEL_DEFAULT_VXLAN_PORT = 8472;
/** CAA's `-vxlan-min-id` default. */
export const DEFAULT_MIN_VNI = 555000;
/** VNIs are 24 bits. */
export const MAX_VNI = 2 ** 24 - 1;

export interface VniSources {
  /** Every pod record of this worker (other tunnel types are ignored). */
  records: readonly PodRecord[];
  /** VNIs of VXLAN links seen in the host netns and in pod netns. */
  linkVnis: Iterable<number>;
  /** The pod being inspected: its own record does not count against it. */
  except?: string;
}

/** Every VNI some tunnel, ours or not, still uses. */
export function vnisInUse(s: VniSources): Set<number> {
  const used = new Set<number>(s.linkVnis);
  for (const r of s.records) {
    if (r.tunnelType === 'vxlan' && r.id !== s.except) used.add(r.vni);
  }
  return used;
}

export function checkMinVni(minId: number): number {
  if (!Number.isInteger(minId) || minId < 1 || minId > MAX_VNI) {
    throw new PeerpodError('EINVAL', `VXLAN minimum ID ${String(minId)}: expected an integer 1-${MAX_VNI}`, {
      field: 'vxlan-min-id',
    });
  }
  return minId;
}

/**
 * The lowest VNI at or above `minId` that nothing uses. A VNI is given back to the pool only when
 * its record and its link are both gone, so a tunnel that is still alive never shares one.
 */
export function allocateVni(inUse: ReadonlySet<number>, minId: number = DEFAULT_MIN_VNI): number {
  checkMinVni(minId);
  for (let vni = minId; vni <= MAX_VNI; vni++) {
    if (!inUse.has(vni)) return vni;
  }
  throw new PeerpodError(
    'ESETUP',
    `no free VXLAN ID between ${minId} and ${MAX_VNI}: ${inUse.size} are in use`,
    { op: 'inspect', field: 'vxlan-id' },
  );
}
