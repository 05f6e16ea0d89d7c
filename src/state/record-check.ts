// What makes a record.json a pod record, and how a corrupt one is put aside. A record that does
// not parse, or parses into something else, must not stop the daemon: FilePodStore.list() moves
// it aside (record.json.corrupt-<time>, next to the keys, which stay) and reports it here, so that
// status, metrics and the log can name it. Pure checks; the renaming is the store's.
import { TUNNEL_TYPES } from '../podnetwork/types.js';

/** A pod folder whose record could not be used: moved aside, or unreadable where it is. */
export interface StateProblem {
  /** The pod id (the folder name). */
  id: string;
  /** The file as it is now (the moved-aside name, for a corrupt record). */
  file: string;
  /** What is wrong, without quoting the file (it is not ours to print). */
  problem: string;
}

export const CORRUPT_SUFFIX = '.corrupt-';

/** A name for a corrupt record that sorts by time and needs no quoting. */
export function corruptName(now: Date): string {
  return `record.json${CORRUPT_SUFFIX}${now.toISOString().replace(/[:.]/g, '-')}`;
}

const PHASES = ['inspected', 'setting-up', 'ready', 'tearing-down', 'orphaned'];

/** Why `value` is not the record of pod `id`, or null when it is one. */
export function recordProblem(value: unknown, id: string): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const r = value as Record<string, unknown>;
  if (r['id'] !== id) return `its id is not the folder name ${id}`;
  for (const k of ['netns', 'device', 'podIP', 'updatedAt']) {
    if (typeof r[k] !== 'string') return `${k}: expected a string`;
  }
  if (!(TUNNEL_TYPES as readonly unknown[]).includes(r['tunnelType'])) return `tunnelType: expected one of ${TUNNEL_TYPES.join(', ')}`;
  if (!PHASES.includes(r['phase'] as string)) return `phase: expected one of ${PHASES.join(', ')}`;
  if (!Array.isArray(r['podVmIPs']) || !r['podVmIPs'].every((ip) => typeof ip === 'string')) return 'podVmIPs: expected an array of strings';
  if (typeof r['mtu'] !== 'number') return 'mtu: expected a number';
  if (r['tunnelType'] === 'wireguard') {
    for (const k of ['podInterface', 'vmPublicKey', 'workerPublicKey']) {
      if (typeof r[k] !== 'string') return `${k}: expected a string`;
    }
    for (const k of ['vmListenPort', 'keepalive']) {
      if (typeof r[k] !== 'number') return `${k}: expected a number`;
    }
  } else {
    for (const k of ['vni', 'port']) {
      if (typeof r[k] !== 'number') return `${k}: expected a number`;
    }
  }
  return null;
}
